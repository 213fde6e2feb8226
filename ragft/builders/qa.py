"""Derive the QA set and the house-style training set mechanically from the extracted corpora.

QA items come from the differences between NumPy 1.26.4, 2.0.2 and 2.4.6 (removed names with NumPy's own advice, added
names, changed parameters), unchanged APIs as controls, and names that exist in no version (abstention). Every item carries
code that proves its truth; `build_qa` RUNS it under each NumPy version and drops any item whose truth does not hold.
Nothing here is hand-written truth: only the phrasings (`datasets.PHRASINGS`, train and unseen) are written by hand.
Splits: dev / validation / locked test, by what earlier runs used (`data/qa/earlier_runs.json`, `split_of`).
Run through `python -m ragft.builders qa|train`.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

from ..core.cache import stable_hash as _h
from ..core.house import ABSTAIN_ANSWER
from ..core.io import write_jsonl
from ..core.paths import NUMPY_VERSIONS, OLD_VERSION, cache_dir, qa_path, train_path
from ..data.corpus import Document, changed_params, keyword_params, load_corpus
from ..data.datasets import PHRASING, SPLITS, QAItem, asked_fact, normalized_question, phrasings_of
from ..training.pairs import house_pair, public_callable, short, summary
from .corpora import run_under_numpy
from .leaks import load_qa_rows, pair_names, qa_asked_names

# removed and added are limited by what NumPy changed (47 and 20 verified); changed_param by the parameter changes a
# caller can see (79 candidates, `changed_params`): the QA set takes 40 so that the task pairs, which never name a QA
# function, keep the rest to learn the question's shape from; unchanged and unanswerable grow the locked test.
MAX_PER_KIND = {"removed": 80, "added": 70, "changed_param": 40, "unchanged": 125, "unanswerable": 130}


def earlier_runs_path() -> Path:
    """`data/qa/earlier_runs.json`: the ids every earlier QA file tuned on (dev) or drew for a test sample."""
    return qa_path().parent / "earlier_runs.json"


def load_earlier_runs(path: Path | None = None) -> dict[str, set[str]]:
    data = json.loads(Path(path or earlier_runs_path()).read_text())
    return {k: set(data[k]) for k in ("dev", "drawn", "test")}


def split_of(item_id: str, earlier: dict[str, set[str]] | None = None) -> str:
    """dev if an earlier run tuned on it; validation if an earlier test sample drew it; else the locked test (never
    drawn by any run: earlier test items no sample reached, and items new to the QA set)."""
    earlier = earlier if earlier is not None else load_earlier_runs()
    return "dev" if item_id in earlier["dev"] else "validation" if item_id in earlier["drawn"] else "test"


def accepts_keyword(signature: str, name: str) -> bool | None:
    """Would a call with `name=` get past this signature: `name` is a named parameter, or a `**kwargs` takes it (what
    `_accepts` checks under each NumPy). None if the signature cannot be parsed."""
    kp = keyword_params(signature)
    return None if kp is None else (name in kp[0] or kp[1])


def _item(kind: str, key: str, slots: dict, required: list[str], stale: list[str], gold: dict, code: str, expect: dict,
          reference: str) -> dict:
    """`slots` fill the phrasing chosen later (`assign_phrasings`): {"x": name} or {"s": summary, "hint": ...}, and
    "lost" for a lost parameter."""
    return {"id": f"{kind}:{key}", "kind": kind, "slots": slots, "required_facts": required, "stale_facts": stale,
            "gold_doc_ids": gold, "reference": reference, "verify": {"code": code, "expect": expect}}


def load_api(version: str) -> dict[str, Document]:
    return {d.doc_id: d for d in load_corpus(version)}


def unique_summaries(api: dict[str, Document]) -> dict[str, str]:
    counts = Counter(summary(d) for d in api.values())
    return {k: s for k, d in api.items() if (s := summary(d)) and counts[s] == 1}


_NP_NAME = re.compile(r"\b(?:np|numpy)\.[A-Za-z_][\w.]*[A-Za-z0-9_]")


def _replacement(advice: str) -> tuple[str, str | None] | None:
    """(fact, expression to check) from NumPy's advice; None if it names no replacement. Expression None = not checkable."""
    ticked = re.findall(r"`+([^`]+)`+", advice)
    for seg in ticked + [advice]:
        m = _NP_NAME.search(seg)
        if m:
            name = "np." + m.group(0).split(".", 1)[1]
            return name, name
    for seg in ticked:
        if re.fullmatch(r"[A-Za-z_][\w.]*", seg):
            return seg, None
    return None


def removed_items(apis: dict[str, dict[str, Document]]) -> list[dict]:
    items = []
    current = NUMPY_VERSIONS[-1]
    notices = [d for d in apis[current].values() if d.metadata.get("kind") == "removal_notice"]
    for d in sorted(notices, key=lambda d: d.doc_id):
        old = d.metadata["name"].removeprefix("numpy.")
        rep = _replacement(d.metadata.get("advice", ""))
        if rep is None:
            continue
        fact, expr = rep
        check = f"_has({expr.removeprefix('np.')!r})" if expr else "None"
        code = f"result = [_has({old!r}), {check}]"
        expect = {v: ([True, None] if v == OLD_VERSION else [False, True if expr else None]) for v in NUMPY_VERSIONS}
        gold = {v: ([f"numpy.{old}"] if f"numpy.{old}" in apis[v] else []) + ([d.doc_id] if d.doc_id in apis[v] else [])
                for v in NUMPY_VERSIONS}
        items.append(_item("removed", old, {"x": f"np.{old}"}, [fact], [f"np.{old}"], gold, code, expect,
                           f"`np.{old}` was removed in NumPy 2.0: {d.metadata.get('advice', '').strip()}"))
    # Removed between 2.0 and the current version: the 2.0 docstring carries the deprecation and the replacement.
    mid = NUMPY_VERSIONS[1]
    for name in sorted(set(apis[mid]) - set(apis[current])):
        doc = apis[mid][name]
        m = re.search(r"deprecated.{0,80}?[Uu]se (?::func:)?`(?:np\.|numpy\.)?(\w+)`", doc.text, re.S)
        if not m or not name.startswith("numpy.") or name.count(".") != 1:
            continue
        old, new = name.removeprefix("numpy."), m.group(1)
        code = f"result = [_has({old!r}), _has({new!r})]"
        expect = {OLD_VERSION: [True, None], mid: [True, True], current: [False, True]}
        gold = {v: [name] if name in apis[v] else ([f"numpy.{new}"] if f"numpy.{new}" in apis[v] else []) for v in NUMPY_VERSIONS}
        items.append(_item("removed", old, {"x": f"np.{old}"}, [f"np.{new}"], [f"np.{old}"], gold, code, expect,
                           f"`np.{old}` was deprecated in NumPy 2.0 and removed later; use `np.{new}`."))
    return items


def which_function_question(s: str, version_hint: str, phrasing: str = "summary:which") -> str:
    return PHRASING[phrasing].ask(s=s, hint=version_hint)


def added_items(apis: dict[str, dict[str, Document]]) -> list[dict]:
    items = []
    current = NUMPY_VERSIONS[-1]
    uniq = unique_summaries(apis[current])
    for name in sorted(set(apis[current]) - set(apis[OLD_VERSION])):
        doc = apis[current][name]
        s = uniq.get(name, "")
        leaf = name.rsplit(".", 1)[-1]
        if not public_callable(doc) or not s or leaf.lower() in s.lower() or len(s) > 300:
            continue
        path = name.removeprefix("numpy.")
        expect = {v: [name in apis[v]] for v in NUMPY_VERSIONS}
        gold = {v: [name] if name in apis[v] else [] for v in NUMPY_VERSIONS}
        items.append(_item("added", path, {"s": s, "hint": " 2.x"}, [short(name)], [], gold,
                           f"result = [_has({path!r})]", expect, f"`{short(name)}` (new in NumPy 2.x): {s}"))
    return items


def changed_param_items(apis: dict[str, dict[str, Document]]) -> list[dict]:
    """Parameters a function gained or lost between 1.26 and 2.x, as a caller sees them (`changed_params`): verified
    under each version by whether a call with that keyword gets past the signature (`_accepts`), so a name that
    1.26 forwarded through `**kwargs` is not "gained", and `*args` is never "lost"."""
    items, device_only = [], 0
    current = NUMPY_VERSIONS[-1]
    for name in sorted(set(apis[OLD_VERSION]) & set(apis[current])):
        old_doc, new_doc = apis[OLD_VERSION][name], apis[current][name]
        if old_doc.metadata.get("kind") != "function" or not public_callable(new_doc):
            continue
        changed = changed_params(old_doc.metadata["signature"], new_doc.metadata["signature"])
        if changed is None:
            continue
        gained, lost = changed
        path = name.removeprefix("numpy.")
        gold = {v: [name] if name in apis[v] else [] for v in NUMPY_VERSIONS}
        for p, sign in [(p, "+") for p in gained] + [(p, "-") for p in lost]:
            if sign == "+" and p == "device":
                device_only += 1
                if device_only > 8:  # 30-odd functions only gained `device`: keep a few, not a flood of one fact
                    continue
            if sign == "+":
                sentence = f"`{short(name)}` gained the `{p}` parameter in NumPy 2.x."
            else:
                sentence = f"`{short(name)}` lost its `{p}` parameter in NumPy 2.x."
            expect = {v: [accepts_keyword(apis[v][name].metadata["signature"], p)] if name in apis[v] else [None]
                      for v in NUMPY_VERSIONS}
            item = _item("changed_param", f"{path}{sign}{p}", {"x": short(name), "lost": sign == "-"}, [p], [], gold,
                         f"result = [_accepts({path!r}, {p!r})]", expect, sentence)
            several = gained if sign == "+" else lost
            if len(several) > 1:  # asked once per function and direction (`dedupe`): any one of them is right
                item["accepted_facts"] = sorted(several)
            items.append(item)
    return items


def unchanged_items(apis: dict[str, dict[str, Document]], limit: int) -> list[dict]:
    uniq = [unique_summaries(apis[v]) for v in NUMPY_VERSIONS]
    names = set.intersection(*(set(a) for a in apis.values()))
    cands = []
    for name in names:
        docs = [apis[v][name] for v in NUMPY_VERSIONS]
        sigs = {d.metadata["signature"] for d in docs}
        sums = {u.get(name, "") for u in uniq}
        s = sums.pop() if len(sums) == 1 else ""
        leaf = name.rsplit(".", 1)[-1]
        if len(sigs) != 1 or not s or not public_callable(docs[-1]) or leaf.lower() in s.lower() or len(s) > 300 \
                or name.startswith(("numpy.ma.", "numpy.char.")):
            continue
        cands.append(name)
    cands.sort(key=lambda n: _h("unchanged:" + n))
    items = []
    for name in cands[:limit]:
        path = name.removeprefix("numpy.")
        s = uniq[-1][name]
        items.append(_item("unchanged", path, {"s": s, "hint": ""}, [short(name)], [],
                           {v: [name] for v in NUMPY_VERSIONS}, f"result = [_has({path!r})]",
                           {v: [True] for v in NUMPY_VERSIONS}, f"`{short(name)}`: {s}"))
    return items


def fabricated_names(apis: dict[str, dict[str, Document]], n: int, salt: str) -> list[str]:
    """Plausible NumPy-like names that exist in no version: halves of two real snake_case names recombined,
    plus stdlib function names NumPy does not have. `("nan" + "_sort")` -> `nansort`-like candidates."""
    import itertools
    import math
    import statistics

    every = set().union(*(set(a) for a in apis.values()))
    leaves = sorted({k.removeprefix("numpy.") for k in every if k.startswith("numpy.") and k.count(".") == 1})
    known = {x.lower() for x in leaves}
    heads = sorted({x.split("_")[0] for x in leaves if "_" in x and x[0].islower()})
    tails = sorted({x.split("_", 1)[1] for x in leaves if "_" in x and x[0].islower()})
    cands = {f"{h}_{t}" for h in heads for t in tails}
    cands |= {x for m in (math, statistics, itertools) for x in dir(m) if not x.startswith("_") and x.islower()}
    cands = sorted(c for c in cands if c.lower() not in known and len(c) <= 24)
    cands.sort(key=lambda c: _h(salt + c))
    return cands[:n]


def unanswerable_items(apis: dict[str, dict[str, Document]], limit: int) -> list[dict]:
    items = []
    for name in fabricated_names(apis, limit, salt="qa:"):
        slots = {"x": f"np.{name}", "lost": bool(_h("lost:" + name) % 2)}  # a parameter phrasing asks gained or lost
        items.append(_item("unanswerable", name, slots, [], [], {v: [] for v in NUMPY_VERSIONS},
                           f"result = [_has({name!r})]", {v: [False] for v in NUMPY_VERSIONS}, ABSTAIN_ANSWER))
    return items


def run_verification(items: list[dict], workdir: Path | None = None, versions=NUMPY_VERSIONS) -> dict[str, dict]:
    """Run each item's `verify.code` under each NumPy version (real wheels, one subprocess per version).

    Returns {version: {item id: result list or "error: ..."}}. Wheels are cached in the user cache by default.
    """
    script = Path(__file__).parent / "_scripts" / "verify_items.py"
    workdir = workdir or cache_dir("numpy-wheels")
    payload = json.dumps([{"id": it["id"], "code": it["verify"]["code"]} for it in items])
    got = {}
    for v in versions:
        out = json.loads(run_under_numpy(v, [str(script)], workdir, stdin=payload))
        if out["version"] != v:
            raise RuntimeError(f"expected numpy {v}, but the subprocess imported {out['version']}")
        got[v] = out["results"]
    return got


def verify_items(items: list[dict], workdir: Path) -> tuple[list[dict], Counter]:
    """Run every item's code under each NumPy version; keep items whose results match `expect` (None = any)."""
    got = run_verification(items, workdir)
    kept, dropped = [], Counter()
    for it in items:
        ok = True
        for v in NUMPY_VERSIONS:
            res, exp = got[v][it["id"]], it["verify"]["expect"][v]
            if not isinstance(res, list) or len(res) != len(exp) or any(e is not None and r != e for r, e in zip(res, exp, strict=True)):
                ok = False
        if ok:
            it["verify"]["observed"] = {v: got[v][it["id"]] for v in NUMPY_VERSIONS}
            kept.append(it)
        else:
            dropped[it["kind"]] += 1
    return kept, dropped


def earlier_use(item_id: str, earlier: dict[str, set[str]]) -> int:
    """0 tuned on (dev), 1 drawn for a test sample, 2 in an earlier test split, 3 new to the QA set."""
    return next((i for i, k in enumerate(("dev", "drawn", "test")) if item_id in earlier[k]), 3)


def dedupe(items: list[dict], earlier: dict[str, set[str]] | None = None) -> tuple[list[dict], list[str]]:
    """One item per asked fact (`datasets.asked_fact`: a question that accepts any of several parameters is asked once
    per function and direction) and per normalized question text. Of a group, the item an earlier run used is kept
    (dev, then drawn, then earlier test), else the first id, so a new sibling never takes a used fact to the locked test."""
    earlier = earlier or {"dev": set(), "drawn": set(), "test": set()}
    seen, kept, dropped = set(), [], []
    for it in sorted(items, key=lambda it: (earlier_use(it["id"], earlier), it["id"])):
        keys = {("fact", asked_fact(_as_item(it)))}
        if "question" in it:
            keys.add(("text", normalized_question(it["question"])))
        if keys & seen:
            dropped.append(it["id"])
            continue
        seen |= keys
        kept.append(it)
    return kept, dropped


def _as_item(row: dict) -> QAItem:
    return QAItem(row["id"], row["kind"], row.get("question", ""), row["required_facts"], row["stale_facts"],
                  row["gold_doc_ids"], row.get("split", ""), accepted_facts=row.get("accepted_facts", []))


def assign_phrasings(items: list[dict]) -> None:
    """Each (kind, split) asks its items in every phrasing of its kind in turn (hash order), so every phrasing holds
    real and invented names alike and every split holds train and unseen phrasings."""
    groups = defaultdict(list)
    for it in items:
        groups[(it["kind"], it["split"])].append(it)
    for (kind, _), group in groups.items():
        options = phrasings_of(kind)
        for i, it in enumerate(sorted(group, key=lambda it: _h("phrasing:" + it["id"]))):
            ph, slots = options[i % len(options)], it.pop("slots")
            it["question"] = ph.ask(x=slots.get("x", ""), s=slots.get("s", ""), hint=slots.get("hint", ""),
                                    lost=slots.get("lost", False))
            it["phrasing"], it["phrasing_seen"] = ph.id, ph.seen


QA_FIELDS = ("id", "kind", "question", "phrasing", "phrasing_seen", "required_facts", "accepted_facts", "stale_facts",
             "gold_doc_ids", "reference", "verify", "split")


def build_qa(workdir: Path, out: Path | None = None) -> list[dict]:
    apis = {v: load_api(v) for v in NUMPY_VERSIONS}
    items = removed_items(apis) + added_items(apis) + changed_param_items(apis) \
        + unchanged_items(apis, MAX_PER_KIND["unchanged"] * 2) + unanswerable_items(apis, MAX_PER_KIND["unanswerable"] * 2)
    kept, dropped = verify_items(items, workdir)
    earlier = load_earlier_runs()
    kept, duplicates = dedupe(kept, earlier)
    final, per_kind = [], Counter()
    # every item of an earlier QA file first (notebook 05's test sample stays whole), then new ones, in hash order
    for it in sorted(kept, key=lambda it: (earlier_use(it["id"], earlier) == 3, _h("order:" + it["id"]))):
        if per_kind[it["kind"]] < MAX_PER_KIND[it["kind"]]:
            per_kind[it["kind"]] += 1
            final.append(it)
    for it in final:
        it["split"] = split_of(it["id"], earlier)
    assign_phrasings(final)
    final = [{k: it[k] for k in QA_FIELDS if k in it} for it in sorted(final, key=lambda it: (it["kind"], it["id"]))]
    write_jsonl(out or qa_path(), final)
    print(f"QA: {len(items)} candidates, {len(kept) + len(duplicates)} verified under every version, dropped "
          f"{dict(dropped)}; {len(duplicates)} duplicates of an asked fact left out ({', '.join(duplicates)}); kept {len(final)}")
    for kind in MAX_PER_KIND:
        n = [it for it in final if it["kind"] == kind]
        print(f"  {kind:14s} {len(n):4d}  " + "  ".join(f"{sp} {sum(i['split'] == sp for i in n):3d} "
              f"(unseen {sum(i['split'] == sp and not i['phrasing_seen'] for i in n):3d})" for sp in SPLITS))
    return final


# ------------------------------------------------------------------------------------------- house-style training set
ABSTAIN_TEMPLATES = ["What does `np.{x}` do?", "How do I call `np.{x}`?", "Explain `np.{x}` with an example."]


def build_train(out: Path | None = None, abstain_share: float = 0.15) -> list[dict]:
    """(prompt -> house-format completion) pairs from the 1.26 docs, plus abstentions on names that exist nowhere.

    No pair names an API that a QA item asks about (`leaks.qa_asked_names`: its gold documents in every version
    and the names in its question), so the fine-tuned arm cannot have learned a test answer by heart; the check is
    tests/test_pair_builder.py's. The fabricated names use a different salt than the QA set's, and any that a QA item
    names is excluded by the same list. Abstentions are `abstain_share` of the pairs kept.
    """
    apis = {v: load_api(v) for v in NUMPY_VERSIONS}
    pairs = [p for _, doc in sorted(apis[OLD_VERSION].items()) if (p := house_pair(doc))]
    qa_rows = load_qa_rows() if qa_path().exists() else []
    banned = qa_asked_names(qa_rows)
    kept = [p for p in pairs if not pair_names(p) & banned]
    print(f"train: {len(pairs) - len(kept)} of {len(pairs)} documents left out: a QA item asks about their API")
    pairs = kept
    n_abstain = int(len(pairs) * abstain_share / (1 - abstain_share))
    fakes = [x for x in fabricated_names(apis, n_abstain * 3, salt="train:") if f"np.{x}" not in banned][:n_abstain]
    for x in fakes:
        pairs.append({"prompt": ABSTAIN_TEMPLATES[_h(x) % 3].format(x=x), "completion": ABSTAIN_ANSWER,
                      "kind": "abstain", "doc_id": None})
    pairs.sort(key=lambda p: _h("train:" + p["prompt"]))
    write_jsonl(out or train_path(), pairs)
    print(f"train: {len(pairs)} pairs ({sum(p['kind'] == 'abstain' for p in pairs)} abstentions) from numpy {OLD_VERSION}")
    return pairs
