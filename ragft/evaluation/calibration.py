"""Calibrations chosen on dev questions: the convex fusion's dense weight of a hybrid retriever.

It measures retrievers from outside (their rankings against gold documents); retrieval itself never grades.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..retrieval.index import _check_query
from ..retrieval.retrievers import HybridRetriever
from .scoring import mrr, recall_at_k


@dataclass
class FusionCalibration:
    """What `calibrate_fusion` tried: one row per dense weight (1 = dense alone, 0 = BM25 alone) and the one it chose."""

    weight: float
    rows: list[dict]

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.rows).set_index("weight")


def calibrate_fusion(retriever: HybridRetriever, questions: Sequence[str], golds: Sequence[set[str] | str],
                     weights: Sequence[float] = tuple(np.round(np.linspace(0, 1, 11), 2)), top_k: int = 10,
                     apply: bool = True) -> FusionCalibration:
    """Choose the convex fusion's dense weight on dev questions: the weight with the best recall@5 + MRR@10 of
    documents (ties go to the larger dense weight). Weights 0 and 1 are the two parts alone, so on these questions the
    chosen fusion is never worse than its better part. Sets retriever.fusion = "convex" and .weight when apply.

    >>> cal = calibrate_fusion(hybrid, dev_questions, dev_golds); cal.weight  # doctest: +SKIP
    0.8
    """
    if not questions:
        raise ValueError("calibrate_fusion needs at least one dev question")
    golds = [{g} if isinstance(g, str) else set(g) for g in golds]
    cands = retriever.candidate_scores([_check_query(q) for q in questions], top_k)
    saved = retriever.fusion
    retriever.fusion = "convex"
    rows = []
    try:
        for w in sorted({float(x) for x in weights}, reverse=True):
            rankings = []
            for c in cands:
                ranked = retriever.fuse(c, w)
                rankings.append(list(dict.fromkeys(c[cid]["hit"].doc_id for cid, _ in ranked))[:top_k])
            r5 = float(np.mean([recall_at_k(r, g, 5) for r, g in zip(rankings, golds, strict=True)]))
            m10 = float(np.mean([mrr(r, g, 10) for r, g in zip(rankings, golds, strict=True)]))
            rows.append({"weight": w, "recall@5": r5, "mrr@10": m10})
    finally:
        retriever.fusion = saved
    best = max(rows, key=lambda r: (round(r["recall@5"] + r["mrr@10"], 9), r["weight"]))
    if apply:
        retriever.fusion, retriever.weight = "convex", best["weight"]
    return FusionCalibration(best["weight"], sorted(rows, key=lambda r: r["weight"]))
