"""Grading and metrics as pure functions of answers and rankings: answer scores (`scoring`), whether an answer's code
runs (`code_runs`, in a sandboxed child process), retrieval metrics
(`ranking`), calibrations (`calibration`), per-arm tables (`arms`), intervals and paired tests (`stats`), claims
and their Holm correction (`claims`), the failure taxonomy (`failures`) and the inputs of notebook 03's probes (`probes`).

Every public name of those modules is re-exported here: `from ragft import evaluation; evaluation.score_answer(...)`.
It measures; it does not answer questions (see `ragft.systems`).
"""

from . import arms, calibration, claims, code_runs, failures, probes, ranking, scoring, stats
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
from .claims import (
    CLAIMS,
    CLAIMS_FILE_SCHEMA,
    DIRECTIONS,
    MARGIN,
    PER_QUESTION_COLUMNS,
    SUBSETS,
    ClaimsFile,
    LockedClaim,
    claims_sha256,
    conclusions,
    correct,
    decide_claims_file,
    load_claims_file,
    paired_values,
    per_question_records,
    story,
)
from .code_runs import REMOVED_FAILURES, RunResult, add_code_runs, run_answers, run_snippets
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
    answer_sentence,
    cited_names,
    code_names,
    fact_present,
    facts_present,
    groundedness,
    hedged,
    marked_gone,
    normalize,
    recommends_stale,
    score_answer,
    source_ok,
    stale_in_code,
    stale_present,
    states_fact,
    strict_facts,
    summarize,
)
from .stats import (
    MIN_PAIRS,
    VERDICTS,
    Comparison,
    bootstrap_p,
    compare,
    decide,
    decide_adjusted,
    holm,
    holm_family,
    mcnemar_exact,
    mcnemar_p,
    paired_bootstrap,
    proportion_ci,
    verdict,
    wilson,
)

__all__ = [
    # modules
    "arms", "calibration", "claims", "code_runs", "failures", "probes", "ranking", "scoring", "stats",
    # scoring: one answer's grades and their means
    "normalize", "fact_present", "stale_present", "cited_names", "groundedness", "facts_present", "score_answer",
    "summarize",
    # scoring: strict grading (what the Answer: sentence claims) and the Source line
    "answer_sentence", "marked_gone", "states_fact", "recommends_stale", "code_names", "stale_in_code", "hedged",
    "strict_facts", "source_ok",
    # code_runs: does the suggested code run under NumPy 2.4.6 (sandboxed)
    "REMOVED_FAILURES", "RunResult", "run_snippets", "run_answers", "add_code_runs",
    # ranking: retrieval metrics
    "gold_found", "versions_retrieved", "all_versions_retrieved", "recall_at_k", "mrr", "ndcg_at_k", "retrieval_scores",
    "evaluate_retrieval",
    # calibration
    "FusionCalibration", "calibrate_fusion", "ThresholdCalibration", "calibrate_threshold",
    # arms: tables of scored answers
    "nan_to_none", "frame_records", "ARM_METRICS", "BEHAVIOUR_TABLE", "ARMS_TABLE", "summarize_arms",
    "accuracy_by_kind", "records",
    # claims
    "MARGIN", "CLAIMS", "paired_values", "story", "correct", "conclusions",
    # claims: the locked claims file
    "CLAIMS_FILE_SCHEMA", "DIRECTIONS", "SUBSETS", "PER_QUESTION_COLUMNS", "LockedClaim", "ClaimsFile", "claims_sha256",
    "load_claims_file", "per_question_records", "decide_claims_file",
    # failures
    "FAILURE_KINDS", "failure_kind", "failure_table",
    # probes
    "version_subsets", "plant_fact", "wrong_facts",
    # stats
    "VERDICTS", "MIN_PAIRS", "wilson", "proportion_ci", "paired_bootstrap", "mcnemar_exact", "mcnemar_p",
    "Comparison", "decide", "compare", "verdict", "bootstrap_p", "holm", "decide_adjusted", "holm_family",
]
