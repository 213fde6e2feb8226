"""Retrieval metrics of rankings against gold documents: recall@k, MRR, nDCG@k, and which versions' gold was found.

Pure functions of doc_ids (or hits with a .doc_id); `evaluate_retrieval` runs a retriever's search and scores it. It
does not grade answers (see `scoring`) or calibrate a retriever (see `calibration`).
Introduced in notebooks/01_chunking.ipynb.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.paths import CURRENT_VERSION
from ..data.corpus import MIGRATION_VERSIONS, split_doc_id

# A ranking is a list of hits (anything with a .doc_id) or of doc_ids, best first; gold is a set of doc_ids. A hit counts
# when its doc_id is gold, and each gold document counts once, at its first position (several chunks of one document do
# not inflate a score). k counts positions in the ranking: the top_k chunks a RAG prompt would receive.
# In an index of several versions (corpus.migration_corpus) ids are tagged "numpy.sort@1.26.4" while the QA set's gold
# ids stay plain: a tagged id counts as its plain id, for the gold of its own version when a `version` is given.


def _doc_ids(ranking) -> list[str]:
    return [h if isinstance(h, str) else h.doc_id for h in ranking]


def _gold_key(doc_id: str, gold: set, version: str | None) -> str | None:
    """The gold id that doc_id stands for, or None: itself, or its plain id if it is tagged with `version` (any
    version when None)."""
    if doc_id in gold:
        return doc_id
    plain, tag = split_doc_id(doc_id)
    if tag is not None and plain in gold and (version is None or tag == version):
        return plain
    return None


def gold_found(gold, ranking, version: str | None = None) -> set[str]:
    """The gold documents among a ranking's doc_ids (hits or ids). A version-tagged id counts for the gold of its own
    version only, when `version` (whose gold this is) is given: a 1.26.4 chunk is not 2.4.6's gold document.

    >>> gold_found({"numpy.sort"}, ["numpy.sort@1.26.4", "numpy.sort@2.4.6"], "2.4.6")
    {'numpy.sort'}
    >>> gold_found({"numpy.sort"}, ["numpy.sort@1.26.4"], "2.4.6"), gold_found({"numpy.sort"}, ["numpy.sort"], "2.4.6")
    (set(), {'numpy.sort'})
    """
    gold = set(gold)
    return {g for d in _doc_ids(ranking) if (g := _gold_key(d, gold, version)) is not None}


def versions_retrieved(item, ranking, k: int | None = None, versions: Sequence[str] = MIGRATION_VERSIONS,
                       untagged: str = CURRENT_VERSION) -> list[str]:
    """The versions among `versions` whose gold documents for `item` appear in the first k of a ranking. A tagged id
    counts for its own version; an untagged one for `untagged`, the version a one-version index holds.

    >>> versions_retrieved(item, ["numpy.fft.ifft@2.4.6", "numpy.fft.ifft@1.26.4"])  # doctest: +SKIP
    ['1.26.4', '2.4.6']
    """
    ids = _doc_ids(ranking)[:k]
    out = []
    for v in versions:
        gold = item.gold(v)
        mine = [plain for plain, tag in map(split_doc_id, ids) if (tag or untagged) == v]
        if gold and gold & set(mine):
            out.append(v)
    return out


def all_versions_retrieved(item, ranking, k: int | None = None, versions: Sequence[str] = MIGRATION_VERSIONS,
                           untagged: str = CURRENT_VERSION) -> bool:
    """Whether every version of `versions` that has gold documents for `item` has one in the first k (a changed
    parameter's question: both signatures in front of the model). False when no version has gold documents."""
    want = [v for v in versions if item.gold(v)]
    return bool(want) and versions_retrieved(item, ranking, k, versions, untagged) == want


def _first_gold_positions(ranking, gold, k: int | None = None, version: str | None = None) -> list[int]:
    """0-based positions (within the first k) where a gold document appears for the first time."""
    seen, out = set(), []
    for pos, doc_id in enumerate(_doc_ids(ranking)[:k]):
        key = _gold_key(doc_id, gold, version)
        if key is not None and key not in seen:
            seen.add(key)
            out.append(pos)
    return out


def recall_at_k(ranking, gold, k: int, version: str | None = None) -> float:
    """Share of the gold documents found in the first k positions (`version`: see `gold_found`).

    >>> recall_at_k(["a", "b", "a", "c"], {"a", "c"}, k=3)
    0.5
    """
    gold = set(gold)
    if not gold:
        raise ValueError("recall is undefined without gold documents (an unanswerable question?)")
    return len(_first_gold_positions(ranking, gold, k, version)) / len(gold)


def mrr(ranking, gold, k: int | None = None, version: str | None = None) -> float:
    """Reciprocal rank of the first gold hit (1-based), 0 if none within the first k (all positions if k is None).

    >>> mrr(["x", "a", "b"], {"a", "b"})
    0.5
    """
    pos = _first_gold_positions(ranking, set(gold), k, version)
    return 1.0 / (pos[0] + 1) if pos else 0.0


def ndcg_at_k(ranking, gold, k: int = 10, version: str | None = None) -> float:
    """Binary-relevance nDCG@k: DCG of the gold first occurrences over the DCG of all gold documents ranked first.

    >>> round(ndcg_at_k(["x", "a"], {"a"}, k=10), 4)  # 1/log2(3) / (1/log2(2))
    0.6309
    """

    gold = set(gold)
    if not gold:
        raise ValueError("nDCG is undefined without gold documents (an unanswerable question?)")
    dcg = sum(1.0 / math.log2(p + 2) for p in _first_gold_positions(ranking, gold, k, version))
    ideal = sum(1.0 / math.log2(p + 2) for p in range(min(len(gold), k)))
    return dcg / ideal


def retrieval_scores(rankings: Sequence, golds: Sequence, ks: Sequence[int] = (1, 5, 10), ids: Sequence[str] | None = None,
                     version: str | None = None):
    """Per-question recall@k for each k, MRR (over the whole ranking) and nDCG@10, as a DataFrame (one row per question).

    Questions without gold documents are skipped (score abstention separately). `.mean(numeric_only=True)` gives the means.
    version: whose gold `golds` are, so a tagged chunk of another version does not count (see `gold_found`).
    """
    import pandas as pd

    rows = []
    for i, (ranking, gold) in enumerate(zip(rankings, golds, strict=True)):
        gold = set(gold)
        if not gold:
            continue
        row = {"id": ids[i] if ids is not None else i}
        row.update({f"recall@{k}": recall_at_k(ranking, gold, k, version) for k in ks})
        row["mrr"] = mrr(ranking, gold, version=version)
        row["ndcg@10"] = ndcg_at_k(ranking, gold, 10, version)
        row["first_gold_rank"] = (_first_gold_positions(ranking, gold, version=version) or [None])[0]
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_retrieval(retriever, items, version: str, top_k: int = 10, ks: Sequence[int] = (1, 5, 10)) -> tuple:
    """Run every answerable QA item's question through `retriever` and score it against `item.gold(version)`.

    Returns (per_question DataFrame with kind and question, means dict). Items without gold docs in `version` are skipped.
    """
    items = [it for it in items if it.gold(version)]
    if not items:
        raise ValueError(f"no QA item has gold documents for version {version}")
    results = retriever.search_batch([it.question for it in items], top_k=top_k)
    per_q = retrieval_scores(results, [it.gold(version) for it in items], ks=ks, ids=[it.id for it in items],
                             version=version)
    per_q.insert(1, "kind", [it.kind for it in items])
    per_q["question"] = [it.question for it in items]
    means = per_q.drop(columns=["first_gold_rank"]).mean(numeric_only=True).to_dict()
    means["n"] = len(items)
    return per_q, means
