"""Training pairs that ask what the QA set asks, about facts the QA set does not use: `python -m ragft.builders.pairs`.

Each QA kind gets pairs asked in its TRAIN phrasings only (`datasets.TRAIN_PHRASINGS`; the unseen ones are the QA set's
alone, to measure whether a tuned arm reads or recognises a template), built from the extracted
corpora: reverse lookups from docstring summaries (added / unchanged), replacements from removal notices, deprecation
notes and aliases that the QA set leaves out (removed), parameters gained or lost between two versions' signatures of
functions the QA set never names (changed_param), and abstentions on fabricated names the QA set does not use
(unanswerable). Every pair keeps its gold passage so a with-passages (RAFT) form can be built from it later. Every API
name the QA set asks about is excluded (`leaks`), from the prompt and from the whole completion, code example included.
It does not build the QA set (see `ragft/builders/qa.py`) and does not add retrieved passages (see
`ragft.training.pairs.raft_pairs`).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..core import house
from ..core.cache import stable_hash as _h
from ..core.io import write_jsonl
from ..core.paths import CURRENT_VERSION, NUMPY_VERSIONS, OLD_VERSION, task_pairs_path
from ..data.corpus import Document, changed_params
from ..data.datasets import PHRASING, REMOVED_TEMPLATES, phrasing_of, phrasings_of
from ..training.pairs import (
    added_sentence,
    examples,
    first_sentence,
    param_answer,
    public_callable,
    removed_answer,
    short,
)
from .leaks import api_names, load_qa_rows, pair_names, qa_asked_names
from .qa import fabricated_names, load_api, unique_summaries, which_function_question

KINDS = ("removed", "added", "changed_param", "unchanged", "unanswerable")
DEPRECATED_TEMPLATE = "`{old}` is deprecated in NumPy {version}. What should I use instead?"
ALIAS_TEMPLATE = "Which NumPy 2.x name can I use instead of `{old}`?"
UNANSWERABLE_TEMPLATES = ("What does `np.{x}` return, and how do I call it?",)  # "own": the one train phrasing kept
ABSTAIN_SHAPES = ("own", "all")
_VAR_PARAMS = ("args", "kwargs", "params")  # *args / **kwargs wrappers being replaced by real parameters: no fact to learn


def default_path() -> Path:
    """`data/train/task_pairs.jsonl`."""
    return task_pairs_path()


@dataclass(frozen=True)
class PairSettings:
    """What goes into the task pairs. Nothing here is truth: the facts come from the corpora.

    abstain_share: share of abstention pairs in the final set (RAFT uses none, Meta's RAFT recipe 5%; a larger share
    makes a small adapter collapse onto the fixed reply). max_per_kind caps each kind so no one shape floods the set:
    reverse lookups are the easiest facts to mine (250+), so they are capped at 90, under half of the set, and the
    rarer shapes (removed, changed_param) keep a real share of the first pairs that a short run trains on.
    """

    abstain_share: float = 0.10
    max_per_kind: dict = field(default_factory=lambda: {"removed": 200, "added": 200, "changed_param": 250,
                                                         "unchanged": 90})
    max_summary_chars: int = 300
    max_device_pairs: int = 6  # dozens of functions only gained `device`: a few teach the shape, more teach one word
    max_ma_pairs: int = 60  # numpy.ma wrappers gained many explicit parameters in 2.x: keep them from dominating
    passage_chars: int = 1200  # stored gold passages are cut here (prompts cut them further, to 600 by default)
    salt: str = "pairs:"
    # the phrasings of the abstention pairs: "all", every train phrasing the QA set asks invented names in (the same
    # phrasings carry real names in the removed and changed_param pairs, so the phrasing tells nothing); "own", only
    # "What does `np.X` return ...", the one phrasing that used to mean "invented". "all" is the default since the QA set
    # asks invented names in answerable phrasings too (docs/decisions.md, abstain_shapes).
    abstain_shapes: str = "all"
    # "Name a parameter that `np.X` accepts in NumPy 2.x but not in NumPy 1.26." (`param:name-a`) is an UNSEEN phrasing:
    # a share above 0 asks that share of the gained-parameter pairs in it, so a pair would use an unseen phrasing and
    # seen/unseen would no longer mean what the QA set says (tests/test_pair_builder.py checks the default). A share of
    # 0.4 lost on dev: 0 kept, the phrasing stays untrained (docs/decisions.md, name_a_parameter_share).
    name_a_parameter_share: float = 0.0

    def __post_init__(self):
        if not 0 <= self.abstain_share < 0.5:
            raise ValueError(f"abstain_share must be in [0, 0.5), not {self.abstain_share}")
        if not 0 <= self.name_a_parameter_share <= 1:
            raise ValueError(f"name_a_parameter_share must be in [0, 1], not {self.name_a_parameter_share}")
        if self.abstain_shapes not in ABSTAIN_SHAPES:
            raise ValueError(f"abstain_shapes must be one of {ABSTAIN_SHAPES}, not {self.abstain_shapes!r}")


# --- building blocks ------------------------------------------------------------------------------------------------------
def _clean_code(doc: Document | None, banned: set[str], fallback: str) -> str:
    """The doc's first example statements, minus any line that names a banned API; `fallback` if none is left."""
    lines = [ln for ln in (examples(doc).splitlines() if doc is not None else []) if not (api_names(ln) & banned)]
    return "\n".join(lines) if lines else fallback


def _pair(kind: str, source: str, key: str, prompt: str, sentence: str, code: str, doc: Document | None, version: str,
          facts: list[str], old_doc: Document | None = None, passage: str | None = None) -> dict:
    sources = [doc.doc_id] if doc is not None else []
    completion = house.render(sentence, code, sources) if doc is not None else house.ABSTAIN_ANSWER
    return {"id": f"pair:{kind}:{key}", "kind": kind, "source": source, "prompt": prompt, "completion": completion,
            "facts": facts, "doc_id": doc.doc_id if doc is not None else None, "version": version,
            "passage": passage or (doc.text if doc is not None else None),
            "old_passage": old_doc.text if old_doc is not None else None,  # the same API in the older release
            "old_version": old_doc.metadata.get("version") if old_doc is not None else None}


def _cut(text: str, n: int) -> str:
    """At most n characters, ending at a line end when one is near (as the prompt builder cuts passages)."""
    if len(text) <= n:
        return text
    nl = text.rfind("\n", 0, n)
    return (text[:nl] if nl > n * 0.6 else text[:n]).rstrip() + " ..."


def reverse_lookup_pairs(apis: dict[str, dict[str, Document]], banned: set[str], s: PairSettings) -> list[dict]:
    """added: "Which NumPy 2.x function does ...?" for names new in 2.x; unchanged: "Which NumPy function does ...?"
    for names present in every version. Same filters as the QA set (unique summary, the name not in it)."""
    current = apis[CURRENT_VERSION]
    uniq = unique_summaries(current)
    out = []
    for name in sorted(current):
        doc, summ = current[name], uniq.get(name, "")
        leaf = name.rsplit(".", 1)[-1]
        if short(name) in banned or not public_callable(doc) or not summ or leaf.lower() in summ.lower() \
                or len(summ) > s.max_summary_chars:
            continue
        code = _clean_code(doc, banned, "")
        if not code:
            continue
        new = name not in apis[OLD_VERSION]
        if not new and not all(name in a for a in apis.values()):
            continue
        kind = "added" if new else "unchanged"
        sentence = added_sentence(short(name), summ) if new else f"`{short(name)}`: {summ}"
        options = phrasings_of(kind, seen=True)
        prompt = which_function_question(summ, " 2.x" if new else "", options[_h(s.salt + "phrasing:" + name) % len(options)].id)
        out.append(_pair(kind, "summary", name.removeprefix("numpy."), prompt, sentence, code, doc, CURRENT_VERSION,
                         [short(name)]))
    return out


def removal_notice_pairs(apis: dict[str, dict[str, Document]], banned: set[str]) -> list[dict]:
    """removed: NumPy's own removal notices that the QA set does not ask about (their advice names no NumPy function)."""
    out = []
    for d in sorted(apis[CURRENT_VERSION].values(), key=lambda d: d.doc_id):
        if d.metadata.get("kind") != "removal_notice":
            continue
        old = d.metadata["name"].removeprefix("numpy.")
        advice = first_sentence(d.metadata.get("advice", ""))
        if short(d.metadata["name"]) in banned or not advice or api_names(advice) & banned:
            continue
        sentence, code = removed_answer(f"np.{old}", advice)
        facts = [t for t in re.findall(r"`+([^`]+)`+", advice)][:1]
        for i, prompt in enumerate(_removed_prompts(f"np.{old}")):
            out.append(_pair("removed", "removal_notice", f"{old}#{i}", prompt, sentence, code, d, CURRENT_VERSION, facts))
    return out


def _removed_prompts(old: str) -> list[str]:
    """Every phrasing the QA set uses for a replacement question. Removals outside the QA set are few (ten against its
    47 removed items), so each fact is asked in all three shapes rather than one: the question shape is what the small
    model learns to read. On dev (benchmarks/raft_recipe.py --pairs) the rebalanced set tied the earlier one overall
    and got more removed and changed-parameter questions right."""
    return [t.format(old=old, current=CURRENT_VERSION) for t in REMOVED_TEMPLATES]


_DEPRECATED = re.compile(
    r"(?:\.\. deprecated::[^\n]*\n(?P<note>(?:[ \t]*\S[^\n]*\n?){1,4})|This function has been deprecated\.(?P<note2>[^\n]*))")
_USE = re.compile(r"(?:[Uu]se|[Aa]lias for)\s+(?:the\s+)?(?::\w+:)?(?:``(?P<a>[^`]+)``|`(?P<b>[^`]+)`|(?P<c>\w+)\s+instead)")


def _replacement_in(note: str, module: str, apis: dict[str, dict[str, Document]]) -> str | None:
    """The replacement a deprecation note names, as written (`np.sort(a, axis=0)`) or as `np.<module>.X` when it is a
    bare name that exists in that module. None if the note names nothing usable."""
    m = _USE.search(note)
    if not m:
        return None
    rep = (m.group("a") or m.group("b") or m.group("c")).strip()
    if re.fullmatch(r"\w+", rep):
        for mod in (module, "numpy"):
            if f"{mod}.{rep}" in apis[CURRENT_VERSION]:
                return short(f"{mod}.{rep}")
        return None
    return rep if "(" in rep or "." in rep else None


def deprecation_pairs(apis: dict[str, dict[str, Document]], banned: set[str]) -> list[dict]:
    """removed: functions whose own docstring says they are deprecated and names the replacement ("Please use `prod`
    instead", "Use randint instead"). Removed names get the QA's phrasings; names still present ask "is deprecated"."""
    out, seen = [], set()
    for v in NUMPY_VERSIONS:
        for name, doc in sorted(apis[v].items()):
            head = doc.text.split("\nParameters\n", 1)[0]
            m = _DEPRECATED.search(head)
            leaf = name.rsplit(".", 1)[-1]
            if not m or name in seen or short(name) in banned or doc.metadata.get("kind") not in ("function", "class"):
                continue
            note = m.group("note") or m.group("note2") or ""
            if "deprecated::" in m.group(0) and leaf not in note and "This " not in note:
                continue  # a deprecation of a parameter or a behaviour, not of the function itself
            rep = _replacement_in(note if m.group("note") else m.group(0) + head[m.end():m.end() + 80],
                                  name.rsplit(".", 1)[0], apis)
            if rep is None or api_names(rep) & banned or rep == short(name):
                continue
            seen.add(name)
            gone = name not in apis[CURRENT_VERSION]
            when = "NumPy 2.0" if name not in apis[NUMPY_VERSIONS[1]] else f"NumPy {CURRENT_VERSION}"
            if gone:
                prompts = _removed_prompts(short(name))
                sentence = f"`{short(name)}` was deprecated and removed by {when}; use `{rep}` instead."
            else:
                prompts = [DEPRECATED_TEMPLATE.format(old=short(name), version=v)]
                sentence = f"`{short(name)}` is deprecated; use `{rep}` instead."
            target = apis[CURRENT_VERSION].get("numpy." + rep.removeprefix("np.").split("(")[0])
            code = _clean_code(target, banned | {short(name)}, rep if "(" in rep else f"{rep}  # replaces {short(name)}")
            for i, prompt in enumerate(prompts):
                key = name.removeprefix("numpy.") + (f"#{i}" if gone else "")
                out.append(_pair("removed", "deprecation", key, prompt, sentence, code, doc, v, [rep.split("(")[0]]))
    return out


def alias_pairs(apis: dict[str, dict[str, Document]], banned: set[str]) -> list[dict]:
    """added: names NumPy 2.x introduced as aliases of an existing function (`np.acos` for `np.arccos`), asked as
    "which NumPy 2.x name can I use instead of the old one" and answered from the alias note in the docs."""
    current, old_api = apis[CURRENT_VERSION], apis[OLD_VERSION]
    out = []
    for name, doc in sorted(current.items()):
        target = doc.metadata.get("alias_of")
        # top-level functions only: dtype aliases such as np.long depend on the platform, and np.strings.X aliases of
        # np.X are the same ufunc exposed in a second namespace, not a new name for old code
        if not target or target not in current or name.count(".") != 1 or target.count(".") != 1 \
                or doc.metadata.get("kind") not in ("function", "ufunc"):
            continue
        pair = {name, target}
        new = [n for n in pair if n not in old_api]
        old = [n for n in pair if n in old_api]
        if len(new) != 1 or len(old) != 1 or {short(n) for n in pair} & banned:
            continue
        new_name, old_name = new[0], old[0]
        prompt = ALIAS_TEMPLATE.format(old=short(old_name))
        sentence = f"`{short(new_name)}` (new in NumPy 2.x) is the same function as `{short(old_name)}`."
        code = f"{short(new_name)} is {short(old_name)}  # True: one function, two names"
        # the corpus states the alias in the docstring's last line, which a cut passage loses: keep signature + that line
        lines = doc.text.strip().splitlines()
        passage = f"{lines[0]}\n\n{lines[-1]}" if "alias of" in lines[-1] else None
        if passage is None:
            continue
        out.append(_pair("added", "alias", new_name.removeprefix("numpy."), prompt, sentence, code, doc, CURRENT_VERSION,
                         [short(new_name)], passage=passage))
    return out


def changed_param_pairs(apis: dict[str, dict[str, Document]], banned: set[str], s: PairSettings) -> list[dict]:
    """changed_param: parameters a function gained or lost between two releases (1.26.4 -> 2.4.6, and 2.0.2 -> 2.4.6
    for changes made within 2.x), for functions the QA set never names. Gold passage: the newer docstring; the
    older one rides along as `old_passage`, so a two-version prompt can show both signatures."""
    out, device, ma = [], 0, 0
    current = apis[CURRENT_VERSION]
    train = phrasings_of("changed_param", seen=True)
    seen = set()
    for old_v in (OLD_VERSION, NUMPY_VERSIONS[1]):
        old_label = "1.26" if old_v == OLD_VERSION else "2.0"
        new_label = "2.x" if old_v == OLD_VERSION else CURRENT_VERSION.rsplit(".", 1)[0]
        for name in sorted(set(apis[old_v]) & set(current)):
            old_doc, new_doc = apis[old_v][name], current[name]
            if old_doc.metadata.get("kind") != "function" or not public_callable(new_doc) or short(name) in banned:
                continue
            changed = changed_params(old_doc.metadata["signature"], new_doc.metadata["signature"])
            if changed is None:
                continue
            gained, lost = changed  # as a caller sees them: nothing a `**kwargs` took already, never `*args` itself
            path = name.removeprefix("numpy.")
            for p, sign in [(p, "+") for p in gained] + [(p, "-") for p in lost]:
                if (path, p, sign) in seen:
                    continue
                seen.add((path, p, sign))
                if p == "device":
                    device += 1
                    if device > s.max_device_pairs:
                        continue
                if path.startswith("ma."):
                    ma += 1
                    if ma > s.max_ma_pairs:
                        continue
                ph = train[_h(f"{s.salt}phrasing:{path}{sign}{p}") % len(train)]
                if sign == "+" and _h(f"{s.salt}name-a-parameter:{path}+{p}") % 1000 < s.name_a_parameter_share * 1000:
                    ph = PHRASING["param:name-a"]  # an unseen phrasing: only when the setting asks for it (0 by default)
                q = ph.ask(x=short(name), lost=sign == "-").replace("NumPy 2.x", f"NumPy {new_label}") \
                    .replace("NumPy 1.26", f"NumPy {old_label}")
                sentence, code = param_answer(short(name), p, sign == "+", new_label)
                out.append(_pair("changed_param", "signature", f"{old_v}:{path}{sign}{p}", q, sentence, code, new_doc,
                                 CURRENT_VERSION, [p], old_doc=old_doc))
    return out


def abstention_pairs(apis: dict[str, dict[str, Document]], banned: set[str], n: int, salt: str,
                     shapes: str = "own") -> list[dict]:
    """unanswerable: abstention questions about fabricated names that the QA set does not use, in every train phrasing
    the QA set asks invented names in (shapes "all") or in the one that used to mean "invented" (shapes "own")."""
    banned_leaves = {b.removeprefix("np.") for b in banned}
    names = [x for x in fabricated_names(apis, n * 3 + 20, salt=salt) if x not in banned_leaves][:n]

    train = phrasings_of("unanswerable", seen=True)

    def question(x: str) -> str:
        if shapes == "own":
            return UNANSWERABLE_TEMPLATES[0].format(x=x)
        ph = train[_h(salt + "shape:" + x) % len(train)]
        return ph.ask(x=f"np.{x}", lost=bool(_h(salt + "lost:" + x) % 2))

    return [_pair("unanswerable", "fabricated", x, question(x), "", "", None, CURRENT_VERSION, []) for x in names]


def _cap(pairs: list[dict], n: int, salt: str) -> list[dict]:
    return sorted(pairs, key=lambda p: _h(salt + p["id"]))[:n]


def build_pairs(settings: PairSettings | None = None, qa: list[dict] | None = None,
                apis: dict[str, dict[str, Document]] | None = None) -> list[dict]:
    """Every task pair, deterministic (hash-ordered, hash-capped), no API name of the QA set anywhere in a pair."""
    s = settings or PairSettings()
    qa = load_qa_rows() if qa is None else qa
    apis = apis or {v: load_api(v) for v in NUMPY_VERSIONS}
    banned = qa_asked_names(qa)
    by_kind: dict[str, list[dict]] = {k: [] for k in KINDS}
    for p in (reverse_lookup_pairs(apis, banned, s) + removal_notice_pairs(apis, banned) + deprecation_pairs(apis, banned)
              + alias_pairs(apis, banned) + changed_param_pairs(apis, banned, s)):
        if house.parse(p["completion"]).compliant and not (pair_names(p) & banned):
            by_kind[p["kind"]].append(p)
    answerable = [p for k in KINDS[:-1] for p in _cap(by_kind[k], s.max_per_kind.get(k, 10**9), s.salt)]
    n_abstain = round(len(answerable) * s.abstain_share / (1 - s.abstain_share))
    pairs = answerable + abstention_pairs(apis, banned, n_abstain, s.salt, s.abstain_shapes)
    qa_ids = {it["id"] for it in qa}
    pairs = [p for p in pairs if p["id"].removeprefix("pair:") not in qa_ids]
    for p in pairs:
        for k in ("passage", "old_passage"):
            if p[k]:
                p[k] = _cut(p[k], s.passage_chars)
    for p in pairs:
        p["phrasing"] = ph.id if (ph := phrasing_of(p["prompt"])) else None  # None: a training-only shape (alias, 2.0 -> 2.4)
    pairs.sort(key=lambda p: _h(s.salt + "order:" + p["id"]))
    return pairs


def describe(pairs: list[dict]) -> str:
    kinds = Counter(p["kind"] for p in pairs)
    sources = Counter(f"{p['kind']}/{p['source']}" for p in pairs)
    return (f"{len(pairs)} pairs; " + ", ".join(f"{k} {kinds[k]}" for k in KINDS) + f"; abstention share "
            f"{kinds['unanswerable'] / max(len(pairs), 1):.1%}\n  by source: " + ", ".join(f"{k} {v}" for k, v in sorted(sources.items())))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ragft.builders.pairs", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="where to write the JSONL (default: data/train/task_pairs.jsonl)")
    ap.add_argument("--abstain-share", type=float, default=PairSettings.abstain_share)
    ap.add_argument("--abstain-shapes", choices=ABSTAIN_SHAPES, default=PairSettings.abstain_shapes,
                    help="abstention questions in the QA set's abstention phrasings only, or half in answerable ones")
    args = ap.parse_args(argv)
    pairs = build_pairs(PairSettings(abstain_share=args.abstain_share, abstain_shapes=args.abstain_shapes))
    out = args.out or default_path()
    write_jsonl(out, pairs)
    print(f"wrote {out}: {describe(pairs)}")


if __name__ == "__main__":
    main()
