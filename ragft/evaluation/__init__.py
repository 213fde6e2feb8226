"""Grading and metrics as pure functions of answers and rankings: answer scores (`scoring`), retrieval metrics
(`ranking`), calibrations (`calibration`), per-arm tables (`arms`), intervals and paired tests (`stats`), claims
(`claims`), the failure taxonomy (`failures`) and the inputs of notebook 03's probes (`probes`).

Every public name of those modules is re-exported here: `from ragft import evaluation; evaluation.score_answer(...)`.
It measures; it does not answer questions (see `ragft.systems`).
"""

from . import arms, calibration, claims, failures, probes, ranking, scoring, stats
from .arms import (
    ARM_METRICS,
    ARMS_TABLE,
    BEHAVIOUR_TABLE,
    accuracy_by_kind,
    frame_records,
    nan_to_none,
    records,
    summarize_arms,
)
from .calibration import FusionCalibration, ThresholdCalibration, calibrate_fusion, calibrate_threshold
from .claims import CLAIMS, MARGIN, conclusions, paired_values, story
from .failures import FAILURE_KINDS, failure_kind, failure_table
from .probes import plant_fact, version_subsets, wrong_facts
from .ranking import (
    all_versions_retrieved,
    evaluate_retrieval,
    gold_found,
    mrr,
    ndcg_at_k,
    recall_at_k,
    retrieval_scores,
    versions_retrieved,
)
from .scoring import (
    cited_names,
    fact_present,
    facts_present,
    groundedness,
    normalize,
    score_answer,
    stale_present,
    summarize,
)
from .stats import (
    MIN_PAIRS,
    VERDICTS,
    Comparison,
    compare,
    decide,
    mcnemar_exact,
    mcnemar_p,
    paired_bootstrap,
    proportion_ci,
    verdict,
    wilson,
)

__all__ = [
    # modules
    "arms", "calibration", "claims", "failures", "probes", "ranking", "scoring", "stats",
    # scoring: one answer's grades and their means
    "normalize", "fact_present", "stale_present", "cited_names", "groundedness", "facts_present", "score_answer",
    "summarize",
    # ranking: retrieval metrics
    "gold_found", "versions_retrieved", "all_versions_retrieved", "recall_at_k", "mrr", "ndcg_at_k", "retrieval_scores",
    "evaluate_retrieval",
    # calibration
    "FusionCalibration", "calibrate_fusion", "ThresholdCalibration", "calibrate_threshold",
    # arms: tables of scored answers
    "nan_to_none", "frame_records", "ARM_METRICS", "BEHAVIOUR_TABLE", "ARMS_TABLE", "summarize_arms",
    "accuracy_by_kind", "records",
    # claims
    "MARGIN", "CLAIMS", "paired_values", "story", "conclusions",
    # failures
    "FAILURE_KINDS", "failure_kind", "failure_table",
    # probes
    "version_subsets", "plant_fact", "wrong_facts",
    # stats
    "VERDICTS", "MIN_PAIRS", "wilson", "proportion_ci", "paired_bootstrap", "mcnemar_exact", "mcnemar_p",
    "Comparison", "decide", "compare", "verdict",
]
