"""Grading answers against the QA set's mechanically derived truth: one answer's metrics, and their means for a system.

Fact accuracy (required facts present), stale-answer rate (stale facts used), abstention precision and recall,
groundedness (cited API names occur in the retrieved passages), format compliance (the house parser), latency. These are
string checks of facts, not a judge model: cheap, reproducible, and blind to paraphrase (a correct answer that never
names the fact counts as wrong). It does not rank passages (see `ranking`) or tabulate arms (see `arms`).
Introduced in notebooks/03_rag.ipynb.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..core import house

_USED_AS_GONE = re.compile(r"remov(?:ed|al)|deprecat|no longer|instead|replace|gone|expired|raises|AttributeError", re.I)
_API_NAME = re.compile(r"\b(?:np|numpy)\.[A-Za-z_][\w.]*[A-Za-z0-9_]")


def normalize(text: str) -> str:
    """`numpy.linalg.norm` and `np.linalg.norm` read the same. `"numpy.float64" -> "np.float64"`."""
    return re.sub(r"\bnumpy\.", "np.", text)


def fact_present(answer: str, fact: str) -> bool:
    """Is `fact` stated in `answer`? For an API name `np.X`: `np.X`, `numpy.X`, `` `X` `` or a call `X(`; else a whole word.

    >>> fact_present("Use `float64` instead.", "np.float64"), fact_present("use them all", "np.all")
    (True, False)
    """
    text = normalize(answer)
    if fact.startswith("np."):
        leaf = re.escape(fact[3:])
        pat = rf"(?<![\w.])np\.{leaf}(?![\w])|`{leaf}`|(?<![\w.]){leaf}\("
    else:
        pat = rf"(?<![\w.]){re.escape(fact)}(?![\w])"
    return re.search(pat, text) is not None


def stale_present(answer: str, stale_facts: Sequence[str]) -> bool:
    """Does the answer USE a stale API? In its code example if it has one; otherwise in a sentence that does not say
    the name is removed/deprecated/replaced. `stale_present("x = np.float_(1)", ["np.float_"]) -> True`."""
    parsed = house.parse(answer)
    code = parsed.code or "\n".join(re.findall(r"```\w*\n(.*?)(?:```|$)", answer, re.S))
    for fact in stale_facts:
        leaf = re.escape(fact.removeprefix("np."))
        pat = re.compile(rf"(?<![\w.])(?:np\.)?{leaf}(?![\w])" if fact.startswith("np.") else rf"(?<![\w.]){leaf}(?![\w])")
        if code:
            if pat.search(normalize(code)):
                return True
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", normalize(answer)):
            if pat.search(sentence) and not _USED_AS_GONE.search(sentence):
                return True
    return False


def cited_names(answer: str) -> set[str]:
    """API names an answer cites: `np.X` names in its text plus the ids on its `Source:` line (normalized to np.)."""
    names = {m.group(0) for m in _API_NAME.finditer(normalize(answer))}
    names |= {normalize(s).removeprefix("removed:") for s in house.parse(answer).sources}
    return {n.rstrip(".") for n in names if n.startswith("np.")}


def groundedness(answer: str, passages: Sequence[str]) -> float | None:
    """Share of the answer's cited API names that occur in the retrieved passages; None if it cites none.

    >>> groundedness("Use np.float64. Source: numpy.float64", ["numpy.float64(x)..."])
    1.0
    """
    names = cited_names(answer)
    if not names:
        return None
    context = normalize("\n".join(passages))
    return sum(1 for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", context)) / len(names)


def facts_present(item, answer: str) -> bool:
    """Every required fact in the answer, or, for an item with `accepted_facts` (one of several right answers), any one
    of those."""
    accepted = getattr(item, "accepted_facts", None)
    if accepted:
        return any(fact_present(answer, f) for f in accepted)
    return all(fact_present(answer, f) for f in item.required_facts)


def score_answer(item, answer: str, passages: Sequence[str] | None = None) -> dict:
    """Every per-answer metric for one QA item (an object with kind, required_facts, stale_facts, answerable)."""
    parsed = house.parse(answer)
    answerable = item.kind != "unanswerable"
    facts_ok = answerable and not parsed.abstained and facts_present(item, answer)
    return {
        "id": item.id, "kind": item.kind,
        "correct": facts_ok if answerable else parsed.abstained,  # for unanswerable items the correct answer IS abstaining
        "fact_ok": facts_ok if answerable else None,
        "stale": stale_present(answer, item.stale_facts) if item.stale_facts else None,
        "abstained": parsed.abstained,
        "compliant": parsed.compliant,
        "grounded": groundedness(answer, passages) if passages is not None else None,
    }


def summarize(rows: Sequence[dict]) -> dict:
    """Aggregate `score_answer` rows (plus optional `latency_s`) into the headline metrics of one system."""

    def mean(xs):
        xs = [float(x) for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else float("nan")

    answerable = [r for r in rows if r["kind"] != "unanswerable"]
    unanswerable = [r for r in rows if r["kind"] == "unanswerable"]
    abstained = [r for r in rows if r["abstained"]]
    return {
        "n": len(rows),
        "accuracy": mean(r["correct"] for r in rows),
        "fact_accuracy": mean(r["fact_ok"] for r in answerable),
        "stale_rate": mean(r["stale"] for r in rows),
        "abstention_precision": (sum(r["kind"] == "unanswerable" for r in abstained) / len(abstained)) if abstained else float("nan"),
        "abstention_recall": mean(r["abstained"] for r in unanswerable),
        "format_compliance": mean(r["compliant"] for r in rows),
        "groundedness": mean(r.get("grounded") for r in rows),
        "latency_s": mean(r.get("latency_s") for r in rows),
    }
