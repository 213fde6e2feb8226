"""Inputs for notebook 03's probes: the same slice of two corpus versions (a small, real knowledge update) and planted
wrong facts (plausible passages that name another item's answer).

It prepares documents and hits; it does not retrieve, answer or grade them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from ..data.datasets import subset_corpus


def version_subsets(old_docs, new_docs, items, old_version: str, new_version: str, n_docs: int | None, seed: int = 0):
    """The same slice of two corpus versions, for a knowledge update that is small but real: the gold documents of
    `items` in both versions plus the same distractors, so `sync` sees the true added/removed/changed documents.

    A name removed in 2.0 is `numpy.X` in the old corpus and `removed:numpy.X` in the new one: both are kept together.
    n_docs None (or at least the corpus size) keeps both corpora whole.
    """
    if n_docs is None or n_docs >= max(len(old_docs), len(new_docs)):
        return list(old_docs), list(new_docs)
    gold_old = [d for d in old_docs if any(d.doc_id in it.gold(old_version) for it in items)]
    new = subset_corpus(new_docs, items, new_version, n_docs, seed)
    keep = {d.doc_id for d in new} | {d.doc_id for d in gold_old}
    keep |= {i.removeprefix("removed:") for i in keep} | {f"removed:{i}" for i in keep}
    return [d for d in old_docs if d.doc_id in keep], [d for d in new_docs if d.doc_id in keep]


def _leaf(fact: str) -> str:
    return fact.removeprefix("np.").rsplit(".", 1)[-1]


def plant_fact(hits: Sequence, fact: str, wrong: str) -> list:
    """Copies of `hits` with every whole-word occurrence of `fact`'s last name part replaced by `wrong`'s (in the text
    and the doc_id): a plausible, wrong passage. `plant_fact(hits, "np.inf", "np.nan")` makes the passages say nan."""
    old, new = _leaf(fact), _leaf(wrong)
    pat = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(old)}(?![A-Za-z0-9_])")
    return [dataclasses.replace(h, text=pat.sub(new, h.text), doc_id=pat.sub(new, h.doc_id)) for h in hits]


def wrong_facts(items) -> dict[str, str]:
    """For each answerable item, a required fact of ANOTHER item to plant instead of its own: {item.id: wrong_fact}.

    Deterministic: the next item of the same kind (cyclic), else the next one whose fact has the same shape (an API
    name `np.X` for an API name, a parameter name for a parameter name). Items with no such partner are left out.
    """
    pool = [it for it in items if it.kind != "unanswerable" and it.required_facts]
    out = {}
    for i, it in enumerate(pool):
        mine = it.required_facts[0]
        ring = pool[i + 1:] + pool[:i]
        same_kind = [o for o in ring if o.kind == it.kind]
        same_shape = [o for o in ring if o.kind != it.kind and o.required_facts[0].startswith("np.") == mine.startswith("np.")]
        for other in same_kind + same_shape:
            if _leaf(other.required_facts[0]) != _leaf(mine):
                out[it.id] = other.required_facts[0]
                break
    return out
