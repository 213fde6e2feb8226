"""Calibrations of a retriever chosen on dev questions: the convex fusion's dense weight of a hybrid retriever, and
the top-1 score threshold below which a retriever should stop answering.

It measures retrievers from outside (their rankings and scores); retrieval itself never grades.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..retrieval.index import check_query
from ..retrieval.retrievers import HybridRetriever
from .ranking import mrr, recall_at_k


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
    cands = retriever.candidate_scores([check_query(q) for q in questions], top_k)
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


# Where a retriever should stop answering: top-1 scores of answerable vs unanswerable questions. Notebook 02.
@dataclass
class ThresholdCalibration:
    """Top-1 scores of answerable and unanswerable questions, and what each threshold would do.

    A question is answered when its top hit scores >= threshold. precision = answerable among answered; recall = answered
    among answerable. `suggested` maximizes F1 unless `min_precision` was asked for.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    answerable_scores: np.ndarray
    unanswerable_scores: np.ndarray
    suggested: float

    def table(self):
        import pandas as pd

        return pd.DataFrame({"threshold": self.thresholds, "precision": self.precision, "recall": self.recall, "f1": self.f1})


def calibrate_threshold(retriever, answerable: Sequence[str], unanswerable: Sequence[str],
                        min_precision: float | None = None) -> ThresholdCalibration:
    """Sweep thresholds over the observed top-1 scores of answerable vs unanswerable questions."""
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable questions")

    def top1(qs):
        return np.array([h[0].score if h else -np.inf for h in retriever.search_batch(list(qs), top_k=1)])

    pos, neg = top1(answerable), top1(unanswerable)
    ths = np.unique(np.concatenate([pos, neg])[np.isfinite(np.concatenate([pos, neg]))])
    prec, rec = [], []
    for t in ths:
        tp, fp = int((pos >= t).sum()), int((neg >= t).sum())
        prec.append(tp / (tp + fp) if tp + fp else 1.0)
        rec.append(tp / len(pos))
    prec, rec = np.array(prec), np.array(rec)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    if min_precision is not None and (prec >= min_precision).any():
        ok = np.flatnonzero(prec >= min_precision)
        best = ok[np.argmax(rec[ok])]
    else:
        best = int(np.argmax(f1))
    return ThresholdCalibration(ths, prec, rec, f1, pos, neg, float(ths[best]))
