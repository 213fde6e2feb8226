"""Derive the QA set and the house-style training set mechanically from the extracted corpora.

QA items come from the differences between NumPy 1.26.4, 2.0.2 and 2.4.6 (removed names with NumPy's own advice, added
names, changed parameters), unchanged APIs as controls, and names that exist in no version (abstention). Every item carries
code that proves its truth; `build_qa` RUNS it under each NumPy version and drops any item whose truth does not hold.
Nothing here is hand-written truth: only question templates are written by hand.
Run through `python -m ragft.builders qa|train`.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from ..core.cache import stable_hash as _h
from ..core.house import ABSTAIN_ANSWER
from ..core.io import write_jsonl
from ..core.paths import NUMPY_VERSIONS, OLD_VERSION, cache_dir, qa_path, train_path
from ..data.corpus import Document, changed_params, keyword_params, load_corpus
from ..training.pairs import house_pair, public_callable, short, summary
from .corpora import run_under_numpy
from .leaks import load_qa_rows, pair_names, qa_asked_names

DEV_SHARE = 0.3  # of each kind; fixed by a hash of the item id, so the split never moves between rebuilds
# removed and added are limited by what NumPy changed (47 and 20 verified); changed_param by the parameter changes a
# caller can see (79 candidates, `changed_params`): the QA set takes 35 so that the task pairs, which never name a QA
# function, keep the rest to learn the question's shape from; unchanged and unanswerable fill the set to 300+.
MAX_PER_KIND = {"removed": 80, "added": 70, "changed_param": 35, "unchanged": 105, "unanswerable": 95}


def split_of(item_id: str) -> str:
    return "dev" if _h("split:" + item_id) % 1000 < DEV_SHARE * 1000 else "test"


def accepts_keyword(signature: str, name: str) -> bool | None:
    """Would a call with `name=` get past this signature: `name` is a named parameter, or a `**kwargs` takes it (what
    `_accepts` checks under each NumPy). None if the signature cannot be parsed."""
    kp = keyword_params(signature)
    return None if kp is None else (name in kp[0] or kp[1])


def _item(kind: str, key: str, question: str, required: list[str], stale: list[str], gold: dict, code: str, expect: dict,
          reference: str) -> dict:
    item_id = f"{kind}:{key}"
    return {"id": item_id, "kind": kind, "question": question, "required_facts": required, "stale_facts": stale,
            "gold_doc_ids": gold, "reference": reference, "verify": {"code": code, "expect": expect},
            "split": split_of(item_id)}


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
        q = (f"My code uses `np.{old}`, which fails under NumPy 2.x. What should I use instead?" if _h(old) % 2 else
             f"`np.{old}` raises an AttributeError in NumPy 2.4. What is the replacement?")
        gold = {v: ([f"numpy.{old}"] if f"numpy.{old}" in apis[v] else []) + ([d.doc_id] if d.doc_id in apis[v] else [])
                for v in NUMPY_VERSIONS}
        items.append(_item("removed", old, q, [fact], [f"np.{old}"], gold, code, expect,
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
        q = f"`np.{old}` is gone in NumPy {current}. What should I call instead?"
        gold = {v: [name] if name in apis[v] else ([f"numpy.{new}"] if f"numpy.{new}" in apis[v] else []) for v in NUMPY_VERSIONS}
        items.append(_item("removed", old, q, [f"np.{new}"], [f"np.{old}"], gold, code, expect,
                           f"`np.{old}` was deprecated in NumPy 2.0 and removed later; use `np.{new}`."))
    return items


def which_function_question(s: str, version_hint: str) -> str:
    return f"Which NumPy{version_hint} function does the following: \"{s}\""


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
        items.append(_item("added", path, which_function_question(s, " 2.x"), [short(name)], [], gold,
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
                q = f"Which keyword argument did `{short(name)}` gain in NumPy 2.x that it did not have in NumPy 1.26?"
                if len(gained) > 1:
                    q = f"Name a parameter that `{short(name)}` accepts in NumPy 2.x but not in NumPy 1.26."
                sentence = f"`{short(name)}` gained the `{p}` parameter in NumPy 2.x."
            else:
                q = f"Which parameter of `{short(name)}` from NumPy 1.26 no longer exists in NumPy 2.x?"
                sentence = f"`{short(name)}` lost its `{p}` parameter in NumPy 2.x."
            expect = {v: [accepts_keyword(apis[v][name].metadata["signature"], p)] if name in apis[v] else [None]
                      for v in NUMPY_VERSIONS}
            item = _item("changed_param", f"{path}{sign}{p}", q, [p], [], gold,
                         f"result = [_accepts({path!r}, {p!r})]", expect, sentence)
            several = gained if sign == "+" else lost
            if len(several) > 1:  # "Name a parameter ..." / "Which parameter ...": any one of them is a right answer
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
        items.append(_item("unchanged", path, which_function_question(s, ""), [short(name)], [],
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
    templates = ["What does `np.{x}` return, and how do I call it?", "How do I use `np.{x}` in NumPy 2.4?",
                 "Which arguments does `np.{x}` take?"]
    for name in fabricated_names(apis, limit, salt="qa:"):
        q = templates[_h(name) % len(templates)].format(x=name)
        items.append(_item("unanswerable", name, q, [], [], {v: [] for v in NUMPY_VERSIONS},
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


def build_qa(workdir: Path, out: Path | None = None) -> list[dict]:
    apis = {v: load_api(v) for v in NUMPY_VERSIONS}
    items = removed_items(apis) + added_items(apis) + changed_param_items(apis) \
        + unchanged_items(apis, MAX_PER_KIND["unchanged"] * 2) + unanswerable_items(apis, MAX_PER_KIND["unanswerable"] * 2)
    kept, dropped = verify_items(items, workdir)
    final, per_kind = [], Counter()
    for it in sorted(kept, key=lambda it: _h("order:" + it["id"])):
        if per_kind[it["kind"]] < MAX_PER_KIND[it["kind"]]:
            per_kind[it["kind"]] += 1
            final.append(it)
    final.sort(key=lambda it: (it["kind"], it["id"]))
    write_jsonl(out or qa_path(), final)
    print(f"QA: {len(items)} candidates, {len(kept)} verified under every version, dropped {dict(dropped)}; kept {len(final)}")
    for kind in MAX_PER_KIND:
        n = [it for it in final if it["kind"] == kind]
        print(f"  {kind:14s} {len(n):4d}  dev {sum(i['split'] == 'dev' for i in n):3d}  test {sum(i['split'] == 'test' for i in n):3d}")
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
