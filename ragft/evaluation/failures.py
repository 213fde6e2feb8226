"""The failure taxonomy: why a retrieval arm got a question wrong, and the counts of each reason per arm.

It labels wrong answers from their grades and the doc_ids that reached the prompt; it does not grade (see `scoring`)
or retrieve.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..core.paths import CURRENT_VERSION
from .arms import frame_records
from .ranking import gold_found
from .scoring import score_answer, stale_present

# Why a retrieval arm got a question wrong: did retrieval fail (the gold document never reached the prompt) or did
# reading fail (it was there and the model did not use it)? Retrieval causes are checked first, since a model cannot
# read a passage it was never shown. Issue 13's stacked bars per arm are counts of these labels.
FAILURE_KINDS = ("gold not retrieved", "gold cut by the token budget", "gold in prompt, abstained",
                 "stale name used", "format broken", "gold in prompt, wrong name", "should have abstained")


def failure_kind(item, answer: str, retrieved: Sequence[str], in_prompt: Sequence[str] | None = None,
                 version: str | None = None) -> str | None:
    """The failure label of one answer of a retrieval arm; None if the answer is correct.

    retrieved: doc_ids the retriever returned; in_prompt: those that fit into the prompt (default: all of them; the
    rest were cut by the token budget); version: whose gold documents count (default: the item's current version).
    Answerable items, in order: "gold not retrieved" | "gold cut by the token budget" (retrieved, not in the prompt) |
    "gold in prompt, abstained" | "stale name used" (the removed name, used as if it worked) | "format broken" (not in
    the house format and the facts missing) | "gold in prompt, wrong name" (well-formed, wrong fact). An unanswerable item
    answered instead of abstained is "should have abstained".

    >>> failure_kind(item, "Answer: use np.float32 ...", retrieved=["removed:numpy.float_"])  # doctest: +SKIP
    'gold in prompt, wrong name'
    """
    score = score_answer(item, answer)
    if score["correct"]:
        return None
    if item.kind == "unanswerable":
        return FAILURE_KINDS[6]
    version = version or CURRENT_VERSION
    gold = item.gold(version)
    if not gold_found(gold, retrieved if in_prompt is None else in_prompt, version):
        return FAILURE_KINDS[1] if gold_found(gold, retrieved, version) else FAILURE_KINDS[0]
    if score["abstained"]:
        return FAILURE_KINDS[2]
    if item.stale_facts and stale_present(answer, item.stale_facts):
        return FAILURE_KINDS[3]
    if not score["compliant"]:
        return FAILURE_KINDS[4]
    return FAILURE_KINDS[5]


def failure_table(df, items, version: str | None = None, by: str = "arm"):
    """Counts of `failure_kind` per arm (rows) and label (columns, in FAILURE_KINDS order) for the wrong answers in an
    answers table with columns id, answer and the doc_ids in the prompt ("sources" or "doc_ids"); a "retrieved" column,
    when present, holds every retrieved doc_id (so budget cuts are seen). Give it retrieval arms only."""
    import pandas as pd

    by_id = {it.id: it for it in items}
    counts: dict[str, dict[str, int]] = {}
    for r in frame_records(df):
        item = by_id.get(r["id"])
        if item is None:
            continue
        prompt_ids = list(r.get("sources") if r.get("sources") is not None else r.get("doc_ids") or [])
        retrieved = list(r["retrieved"]) if r.get("retrieved") is not None else prompt_ids
        label = failure_kind(item, r["answer"], retrieved, prompt_ids, version)
        row = counts.setdefault(r[by], dict.fromkeys(FAILURE_KINDS, 0))
        if label is not None:
            row[label] += 1
    return pd.DataFrame.from_dict(counts, orient="index", columns=list(FAILURE_KINDS)).fillna(0).astype(int)
