"""The QA set (migration questions with verifiable answers) and training pairs: loading, checking, subsetting.

Loads what `ragft/builders/qa.py` wrote, and users' own JSONL of training pairs (every bad line reported with its number).
It does not build data (see `ragft/builders/qa.py`) or score answers (see `ragft.evaluation.scoring`).
Introduced in notebooks/00_overview.ipynb.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.cache import seeded_key, stable_hash
from ..core.io import DataError, ReadReport, read_jsonl
from ..core.paths import CURRENT_VERSION, qa_path, train_path
from .corpus import Document

KINDS = ("removed", "added", "changed_param", "unchanged", "unanswerable")
CHANGED_KINDS = ("removed", "added", "changed_param")  # questions whose truth moved between 1.26 and 2.x
# answerable questions that one release's document answers (a removal notice, a new API, an unchanged one); a
# changed_param question also needs the other release's signature, which a single-version index never holds
ONE_RELEASE_KINDS = ("removed", "added", "unchanged")
SPLITS = ("dev", "validation", "test")  # tune freely / build and report while building / the locked test, run once


@dataclass(frozen=True)
class Phrasing:
    """One way of asking a question: `text` with `{x}` (an API name, `np.X`), or `{s}` (a docstring summary) and `{hint}`
    (" 2.x" for a new API, "" otherwise); `lost` is a changed-parameter phrasing's text for a lost parameter. `seen`: a
    train phrasing (task pairs are asked in it); the others are asked only by the QA set."""

    id: str
    kinds: tuple[str, ...]
    text: str
    lost: str = ""
    seen: bool = True

    def ask(self, x: str = "", s: str = "", hint: str = "", lost: bool = False) -> str:
        return (self.lost if lost and self.lost else self.text).format(x=x, s=s, hint=hint)

    def pattern(self, lost: bool = False) -> re.Pattern:
        """Matches any question asked in this phrasing, whatever name or summary fills it."""
        text = re.escape(self.lost if lost else self.text)
        return re.compile(text.replace(r"\{x\}", "[^`]+").replace(r"\{s\}", ".+").replace(r"\{hint\}", "(?: 2\\.x)?") + "$")


_NAME, _PARAM, _SUMMARY = ("removed", "unanswerable"), ("changed_param", "unanswerable"), ("added", "unchanged")
# Name phrasings hold real names (removed, changed_param) and invented ones (unanswerable) alike, so the phrasing says
# nothing about whether the name exists; the three that used to mean "invented" (what-return, how-use, and arguments)
# now ask about real names too. Summary phrasings name no API, so no invented name can be asked in them.
PHRASINGS = (
    Phrasing("name:uses-fails", _NAME, "My code uses `{x}`, which fails under NumPy 2.x. What should I use instead?"),
    Phrasing("name:attribute-error", _NAME, "`{x}` raises an AttributeError in NumPy 2.4. What is the replacement?"),
    Phrasing("name:what-return", _NAME, "What does `{x}` return, and how do I call it?"),
    Phrasing("name:gone", _NAME, "`{x}` is gone in NumPy 2.4.6. What should I call instead?", seen=False),
    Phrasing("name:how-use", _NAME, "How do I use `{x}` in NumPy 2.4?", seen=False),
    Phrasing("name:porting", _NAME, "I am porting code from NumPy 1.26 to 2.4. What do I write instead of `{x}`?",
             seen=False),
    Phrasing("param:gain", _PARAM, "Which keyword argument did `{x}` gain in NumPy 2.x that it did not have in NumPy 1.26?",
             lost="Which parameter of `{x}` from NumPy 1.26 no longer exists in NumPy 2.x?"),
    Phrasing("param:arguments", _PARAM, "Which arguments does `{x}` take in NumPy 2.x that it did not take in NumPy 1.26?",
             lost="Which arguments did `{x}` take in NumPy 1.26 that it no longer takes in NumPy 2.x?"),
    Phrasing("param:name-a", _PARAM, "Name a parameter that `{x}` accepts in NumPy 2.x but not in NumPy 1.26.",
             lost="Name a parameter that `{x}` accepted in NumPy 1.26 but no longer accepts in NumPy 2.x.", seen=False),
    Phrasing("param:upgrade", _PARAM, "I am upgrading from NumPy 1.26 to 2.x. Which new keyword can I pass to `{x}`?",
             lost="I am upgrading from NumPy 1.26 to 2.x. Which keyword of `{x}` must I stop passing?", seen=False),
    Phrasing("summary:which", _SUMMARY, 'Which NumPy{hint} function does the following: "{s}"'),
    Phrasing("summary:need", _SUMMARY, 'I need a NumPy{hint} function for this: "{s}" What is it called?'),
    Phrasing("summary:name-of", _SUMMARY, 'What is the name of the NumPy{hint} function described as "{s}"?', seen=False),
    Phrasing("summary:is-there", _SUMMARY, 'Is there a NumPy{hint} function that does the following: "{s}" Which one?',
             seen=False),
)
PHRASING = {p.id: p for p in PHRASINGS}
TRAIN_PHRASINGS = frozenset(p.id for p in PHRASINGS if p.seen)  # the only phrasings a training pair may be asked in


def phrasings_of(kind: str, seen: bool | None = None) -> list[Phrasing]:
    """The phrasings a question kind is asked in (only the train ones, or only the unseen ones, if `seen` is given)."""
    return [p for p in PHRASINGS if kind in p.kinds and (seen is None or p.seen == seen)]


def phrasing_of(question: str) -> Phrasing | None:
    """The phrasing a question (or a training prompt) is asked in; None if it is asked in none of `PHRASINGS`."""
    return next((p for p in PHRASINGS for lost in (False, True) if (p.lost or not lost) and p.pattern(lost).match(question)),
                None)


REMOVED_TEMPLATES = tuple(p.text.replace("{x}", "{old}") for p in phrasings_of("removed", seen=True))  # train only
# The answerable kinds' name phrasings with `{x}` for a name: `in_answerable_shape` asks a fabricated name in one.
ANSWERABLE_SHAPES = tuple(p.text.replace("{x}", "np.{x}") for p in phrasings_of("removed") + phrasings_of("changed_param"))


@dataclass
class QAItem:
    """One question. `required_facts` must appear in a correct answer, `stale_facts` must not; `gold_doc_ids` per version.

    `accepted_facts`, when set, replaces the all-of rule: any one of them makes the answer right. A question that asks
    for "a parameter" a function gained, where it gained several, is asked once per parameter (each item verifies its
    own) and each of those items accepts every one of them.
    """

    id: str
    kind: str
    question: str
    required_facts: list[str]
    stale_facts: list[str]
    gold_doc_ids: dict[str, list[str]]
    split: str
    reference: str = ""
    verify: dict = field(default_factory=dict)
    accepted_facts: list[str] = field(default_factory=list)
    phrasing: str = ""  # the id of its phrasing in `PHRASINGS`
    phrasing_seen: bool = True  # asked in a train phrasing (`TRAIN_PHRASINGS`); False: a phrasing no training pair uses

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable"

    def gold(self, version: str = CURRENT_VERSION) -> set[str]:
        return set(self.gold_doc_ids.get(version, []))


def load_qa(split: str | None = "dev", kinds: tuple[str, ...] | None = None, path: str | os.PathLike | None = None) -> list[QAItem]:
    """QA items of one split ("dev" | "validation" | "test" | None for all), optionally only some kinds, in file order.

    "test" is the locked test: no earlier run drew it, and it is run once (`make final`); choose every knob on dev or
    validation."""
    if split not in (*SPLITS, None):
        raise ValueError(f"unknown split {split!r}: choose one of {', '.join(map(repr, SPLITS))} (or None for every item)")
    rows, _ = read_jsonl(path or qa_path(), required=("id", "kind", "question", "split"))
    items = [QAItem(**{k: r[k] for k in QAItem.__dataclass_fields__ if k in r}) for r in rows]
    bad = [i.id for i in items if i.kind not in KINDS]
    if bad:
        raise DataError(f"unknown kind in items {bad[:5]}; kinds are {KINDS}")
    return [i for i in items if (split is None or i.split == split) and (kinds is None or i.kind in kinds)]


def in_answerable_shape(item: QAItem) -> QAItem:
    """An unanswerable item (a fabricated name) asked in one of `ANSWERABLE_SHAPES` (chosen by a hash of the name, so
    the same every run); its truth is unchanged: the name exists in no release, the right reply is the abstention.

    >>> in_answerable_shape(item).question  # doctest: +SKIP
    '`np.add_chkfinite` raises an AttributeError in NumPy 2.4. What is the replacement?'
    """
    if item.kind != "unanswerable":
        raise ValueError(f"only an unanswerable item can be asked in another shape, not {item.kind!r} ({item.id})")
    name = re.search(r"`(np\.[^`]+)`", item.question).group(1)
    index = stable_hash("probe:" + name) % len(ANSWERABLE_SHAPES)
    return replace(item, question=ANSWERABLE_SHAPES[index].format(x=name.removeprefix("np.")))


def asked_fact(item: QAItem) -> str:
    """What a question asks, whatever its wording: two items with the same asked fact are duplicates. A question that
    accepts any of several facts asks for one of them: its function and direction (`changed_param:var+`)."""
    if item.accepted_facts:
        return re.sub(r"(?<=[+-])\w+$", "", item.id)
    return item.id


def normalized_question(text: str) -> str:
    return " ".join(text.lower().split())


def sample(items: list[QAItem], n: int | None, seed: int = 0) -> list[QAItem]:
    """A deterministic, kind-stratified sample of n items (all if n is None or >= len). Order is stable across runs."""
    if n is None or n >= len(items):
        return list(items)
    by_kind: dict[str, list[QAItem]] = {}
    for it in sorted(items, key=lambda it: seeded_key(seed, it.id)):
        by_kind.setdefault(it.kind, []).append(it)
    out, queues = [], list(by_kind.values())
    while len(out) < n:  # round-robin over kinds so every kind is represented even in a tiny sample
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return sorted(out, key=lambda it: items.index(it))


def subset_corpus(docs: list[Document], items: list[QAItem], version: str, n_docs: int | None, seed: int = 0) -> list[Document]:
    """The gold documents of `items` for `version` plus deterministic distractors, n_docs in all (None = every doc).

    Used by the smoke profile to embed a few hundred documents instead of a thousand, without removing any answer.
    """
    if n_docs is None or n_docs >= len(docs):
        return list(docs)
    gold = set().union(*(it.gold(version) for it in items)) if items else set()
    keep = [d for d in docs if d.doc_id in gold]
    rest = sorted((d for d in docs if d.doc_id not in gold),
                  key=lambda d: seeded_key(seed, d.doc_id))
    chosen = {d.doc_id for d in keep + rest[: max(0, n_docs - len(keep))]}
    return [d for d in docs if d.doc_id in chosen]


PROMPT_KEYS = ("prompt", "question", "instruction")
COMPLETION_KEYS = ("completion", "answer", "output", "response")
# kept from a pair's row besides its prompt and completion: what RAFT needs to put the gold passage(s) in the prompt
PAIR_KEYS = ("kind", "doc_id", "passage", "old_passage", "version", "old_version", "facts")


def load_train_pairs(path: str | os.PathLike | None = None, on_error: str = "raise") -> tuple[list[dict], ReadReport]:
    """Training pairs from JSONL: each line an object with a prompt and a completion.

    Accepted key names: prompt/question/instruction and completion/answer/output/response. on_error="raise" stops with
    every bad line listed (line number and reason); "skip" keeps the good rows and returns the report of the bad ones.
    """
    path = Path(path or train_path())
    rows, report = read_jsonl(path, on_error="skip")
    pairs = []
    for lineno, row in _numbered(path, rows):
        p = next((row[k] for k in PROMPT_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
        c = next((row[k] for k in COMPLETION_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
        if p is None or c is None:
            missing = "prompt" if p is None else "completion"
            report.problems.append((f"{path.name}:{lineno}", f"no non-empty {missing} (keys tried: "
                                    f"{', '.join(PROMPT_KEYS if p is None else COMPLETION_KEYS)})"))
            continue
        pairs.append({"prompt": p.strip(), "completion": c.strip(), **{k: v for k, v in row.items() if k in PAIR_KEYS}})
    report.problems.sort(key=lambda wp: int(wp[0].rsplit(":", 1)[1]))
    report.loaded = len(pairs)
    if report.problems and on_error == "raise":
        raise DataError(str(report))
    if not pairs:
        raise DataError(f"{path}: no usable training pairs\n{report}")
    return pairs, report


def _numbered(path: Path, rows: list[dict]):
    """Pair parsed rows with their line numbers (read_jsonl keeps order and skips blank/bad lines)."""
    import json

    it = iter(rows)
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            yield lineno, next(it)
