"""Human labels, units and readable numbers for the keys the notebooks record (used by the report's index page).

`describe(key)` gives a label and a unit for any key: from the `LABELS` table when it is there, otherwise guessed from
the key's spelling (`build_s` -> "Build (s)"), so a key nobody listed still reads. `fmt(value, unit)` rounds for
reading: no scientific notation, thousands separated, shares as percentages or two decimals.
Not a units library: it converts nothing, it only prints what a notebook measured in the unit it was measured in.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# units: "share" (a fraction 0-1), "s", "ms", "MB", "q/s", "tok/s", "x" (a ratio), "count", "" (a plain number),
# "text", "bool"
SHARE, COUNT, TEXT, BOOL = "share", "count", "text", "bool"


@dataclass(frozen=True)
class Label:
    """What a recorded key means to a reader: `text` ("Build time") and `unit` (one of the units above)."""

    text: str
    unit: str = ""


LABELS: dict[str, Label] = {
    # arms and answers (notebooks 03, 05, 06)
    "arm": Label("Arm", TEXT), "system": Label("System", TEXT), "retrieval": Label("Retrieval", TEXT),
    "model": Label("Model", TEXT), "adapter": Label("Adapter", TEXT), "llm": Label("Language model", TEXT),
    "n": Label("Questions scored", COUNT), "accuracy": Label("Accuracy", SHARE),
    "lenient_accuracy": Label("Accuracy, lenient grader (a fact anywhere)", SHARE),
    "code_runs": Label("Suggested code runs (NumPy 2.4.6)", SHARE), "source_accuracy": Label("Gold document cited", SHARE),
    "lenient_correct": Label("Correct, lenient grader", BOOL),
    "changed_accuracy": Label("Accuracy on changed APIs", SHARE), "fact_accuracy": Label("Fact accuracy", SHARE),
    "stale_rate": Label("Stale answers (lower is better)", SHARE), "format_compliance": Label("House format kept", SHARE),
    "abstention_precision": Label("Abstentions that were right", SHARE),
    "abstention_recall": Label("Should abstain: did", SHARE), "groundedness": Label("Grounded in the passages", SHARE),
    "gold_retrieved": Label("Gold passage retrieved", SHARE), "latency_s": Label("Time per answer", "s"),
    "context_recall": Label("Context recall", SHARE), "confidence": Label("Mean token probability", SHARE),
    "correct": Label("Correct", BOOL), "compliant": Label("House format", BOOL), "abstained": Label("Abstained", SHARE),
    "answered_in_format": Label("Answered in the house format", SHARE),
    "answerable_accuracy": Label("Accuracy on answerable questions", SHARE),
    "one_release_accuracy": Label("Accuracy on removed / added / unchanged APIs", SHARE),
    "reading_rate": Label("Correct when the gold passage was in the prompt", SHARE),
    "kind_accuracy": Label("Accuracy per question kind", TEXT),
    # retrieval (01, 02)
    "mrr": Label("MRR", SHARE), "recall@1": Label("Recall@1", SHARE), "recall@5": Label("Recall@5", SHARE),
    "recall@10": Label("Recall@10", SHARE), "ndcg@10": Label("nDCG@10", SHARE), "chunks": Label("Chunks", COUNT),
    "queries/s": Label("Queries per second", "q/s"), "build s": Label("Build time", "s"),
    "memory MB": Label("Index memory", "MB"), "ef": Label("ef (query beam)", COUNT),
    "ef_construction": Label("ef_construction (build beam)", COUNT), "M": Label("M (links per node)", COUNT),
    "top_k": Label("Passages per question (top_k)", COUNT), "chunk_size": Label("Chunk size (tokens)", COUNT),
    "chunk_overlap": Label("Chunk overlap (tokens)", COUNT), "truncated share": Label("Chunks over the 256-token limit", SHARE),
    "mean tokens": Label("Mean chunk length (tokens)", ""), "best_strategy": Label("Best chunking strategy", TEXT),
    "n_answerable": Label("Answerable questions", COUNT), "n_unanswerable": Label("Unanswerable questions", COUNT),
    "n_docs": Label("Documents", COUNT), "n_chunks": Label("Chunks", COUNT), "n_questions": Label("Questions", COUNT),
    "build_s": Label("Index build time", "s"), "n_synthetic": Label("Synthetic vectors", COUNT),
    "real_recall_at_ef": Label("HNSW recall@10 on the real chunks", SHARE),
    "synthetic_speedup_at_095": Label("HNSW speed-up over exact search at recall 0.95", "x"),
    "real_exact_qps": Label("Exact search on the real chunks", "q/s"),
    "synthetic_exact_qps": Label("Exact search on synthetic vectors", "q/s"),
    "suggested_threshold": Label("Suggested abstention threshold (cosine)", ""),
    "threshold_f1": Label("F1 at that threshold", SHARE), "threshold": Label("Abstention threshold (cosine)", ""),
    "recall5_before": Label("Recall@5 before the sync", SHARE), "recall5_after": Label("Recall@5 after the sync", SHARE),
    "sync_s": Label("Index sync time", "s"), "rebuild_s": Label("Full rebuild time", "s"),
    "sync_embedded": Label("Chunks embedded by the sync", COUNT),
    "rebuild_embedded": Label("Chunks embedded by a rebuild", COUNT),
    # overview (00)
    "documents": Label("Documents per NumPy version", COUNT), "characters": Label("Characters per NumPy version", COUNT),
    "removed_1_26_to_2_0": Label("Names removed, 1.26 to 2.0", COUNT),
    "added_1_26_to_2_0": Label("Names added, 1.26 to 2.0", COUNT), "qa_items": Label("Questions in the QA set", COUNT),
    "qa_by_kind": Label("Questions by kind", COUNT), "qa_dev": Label("Dev questions", COUNT),
    "qa_test": Label("Locked test questions", COUNT), "qa_validation": Label("Validation questions", COUNT),
    "train_pairs": Label("Training pairs", COUNT),
    "train_abstentions": Label("Training pairs that abstain", COUNT),
    "demo_truth_holds": Label("Demo fact checked under each NumPy", BOOL),
    "baseline_plain_correct": Label("Plain model answered the demo correctly", BOOL),
    "baseline_told_compliant": Label("Model told the format kept it", BOOL), "llm_load_s": Label("Model load time", "s"),
    "tokens_per_s": Label("Generation speed", "tok/s"),
    # RAG (03)
    "rag_fact_accuracy": Label("RAG fact accuracy", SHARE), "base_fact_accuracy": Label("Base model fact accuracy", SHARE),
    "rag_context_recall": Label("RAG context recall", SHARE), "index_build_s": Label("Index build time", "s"),
    "update_accuracy_before": Label("Changed-API accuracy before the sync", SHARE),
    "update_accuracy_after": Label("Changed-API accuracy after the sync", SHARE),
    "update_seconds": Label("Index sync time", "s"), "retrieval_share": Label("Share of answer time spent retrieving", SHARE),
    "retrieve_ms": Label("Retrieval", "ms"), "prompt_ms": Label("Prompt building", "ms"),
    "ttft_s": Label("Time to first token", "s"), "generate_s": Label("Generation", "s"), "total_s": Label("Total", "s"),
    "batched_s_per_answer": Label("Batched, per answer", "s"), "weights_unchanged": Label("Model weights untouched", BOOL),
    "arms": Label("Arms", TEXT), "update": Label("The knowledge update", ""),
    "update_docs": Label("Documents the sync touched", COUNT), "latency": Label("Latency of one RAG answer", ""),
    "lab_retrieval": Label("Failure lab: worse retrieval", ""), "lab_threshold": Label("Failure lab: the threshold", ""),
    "lab_cannot_tell": Label("Failure lab: right, irrelevant or planted context", ""),
    "injection": Label("A prompt injection inside a passage", ""), "n_changed": Label("Changed-API questions", COUNT),
    "n_lab": Label("Questions per failure-lab condition", COUNT), "dtype": Label("Weights dtype", TEXT),
    "update_context_recall_before": Label("Context recall before the sync", SHARE),
    "update_context_recall_after": Label("Context recall after the sync", SHARE),
    "update_embedded": Label("Chunks embedded by the sync", COUNT), "budget_respected": Label("Prompt budget kept", BOOL),
    # fine-tuning (04)
    "quantization": Label("Quantization", TEXT), "nf4_ratio_to_fp32": Label("4-bit footprint vs fp32", "x"),
    "train_steps": Label("Training steps", COUNT), "train_s": Label("Training time", "s"),
    "seconds_per_step": Label("Time per training step", "s"), "peak_rss_mb": Label("Peak memory while training", "MB"),
    "adapter_mb": Label("Adapter size on disk", "MB"), "loss_before": Label("Held-out loss before", ""),
    "loss_after": Label("Held-out loss after", ""), "compliance_base": Label("House format kept, base model", SHARE),
    "compliance_tuned": Label("House format kept, tuned model", SHARE),
    "format_claim": Label("House format, tuned vs base (paired)", TEXT),
    "tuned_cut_at_cap": Label("Tuned answers cut at the token cap", COUNT),
    "stale_rate_changed": Label("Stale answers on changed APIs", SHARE), "retrain_s": Label("Retraining time", "s"),
    "reindex_s": Label("Re-indexing time", "s"), "merge_max_logit_diff": Label("Largest logit change after merging", ""),
    "rss_before_mb": Label("Memory before training", "MB"), "peak_gpu_mb": Label("Peak GPU memory", "MB"),
    "pairs_to_regenerate": Label("Training pairs to regenerate after the update", COUNT),
    "chunks_to_embed": Label("Chunks to embed after the update", COUNT), "sweep": Label("LoRA rank and steps sweep", ""),
    "footprint_mb": Label("Model in memory", "MB"),
    # hybrid (05) and dashboard (06)
    "compare_s": Label("Time to answer every question with every arm", "s"),
    "rerun_s": Label("Same comparison again (cached)", "s"), "raft_s_per_step": Label("RAFT time per step", "s"),
    "sft_s_per_step": Label("Plain fine-tuning time per step", "s"), "sync_cold_s": Label("Index sync, cold cache", "s"),
    "dashboard_first_s": Label("First dashboard answer", "s"), "setup_s": Label("Dashboard setup", "s"),
    "n_questions_in_menu": Label("Questions in the menu", COUNT), "cold_seconds": Label("Update time, cold cache", "s"),
    "knowledge_update": Label("The knowledge update, arm by arm", ""), "raft_mix": Label("RAFT training mix", COUNT),
    "refresh_counts": Label("Training pairs after the update", COUNT), "systems_over_models": Label("Systems over models", ""),
    "raft_pairs": Label("RAFT training pairs", COUNT), "update_pairs": Label("Training pairs the update rewrote", COUNT),
    "sync_changed_docs": Label("Documents the sync touched", COUNT), "large_available": Label("Larger model installed", BOOL),
    "rerun_all_cached": Label("Second comparison answered from the cache", BOOL), "split": Label("Question split", TEXT),
    "before": Label("Before", SHARE), "after": Label("After", SHARE), "seconds": Label("Update time", "s"),
    "prompt": Label("System prompt", TEXT), "contrast": Label("Context-aware decoding (alpha)", ""),
    "examples": Label("Worked examples in the prompt", COUNT),
    "unanswerable_by_phrasing": Label("Abstention on fabricated names, by the question's phrasing", ""),
    "name_check": Label("The name check: each retrieving arm without and with it", ""),
    "raft_contrast": Label("RAFT arm's context-aware decoding (alpha)", ""),
    "answers": Label("Answers to the first question", ""), "first_question": Label("First question", TEXT),
    "top_k_1_doc_ids": Label("Documents retrieved with top_k 1", TEXT),
    "static_call_all_cached": Label("Static call answered from the cache", BOOL),
    # claims and their correction (05, scripts/final.py)
    "claims": Label("Claims, each decided by a paired comparison", ""), "claim": Label("Claim", TEXT),
    "a": Label("Arm a", TEXT), "b": Label("Arm b", TEXT), "metric": Label("Per-question result compared", TEXT),
    "questions": Label("Questions compared", TEXT), "margin": Label("Margin a may lose by", ""),
    "a_share": Label("Arm a", SHARE), "b_share": Label("Arm b", SHARE), "diff": Label("Difference a − b", ""),
    "p_mcnemar": Label("Exact paired test p (raw)", ""), "p_raw": Label("p (raw)", ""), "p_test": Label("Test behind p", TEXT),
    "p_adjusted": Label("p (Holm-adjusted)", ""), "family": Label("Claims corrected together", COUNT),
    "alpha": Label("Alpha", ""), "verdict": Label("Verdict (from the adjusted p)", TEXT),
    "unadjusted_verdict": Label("Verdict alone, before correction", TEXT), "numbers": Label("Numbers", TEXT),
    "direction": Label("Direction", TEXT), "hypothesis": Label("Hypothesis", TEXT),
    "claims_sha256": Label("Claims file sha256", TEXT), "commit": Label("Commit", TEXT),
}

_UNIT_SUFFIXES = [("_ms", "ms"), (" ms", "ms"), ("_mb", "MB"), (" mb", "MB"), ("_qps", "q/s"), ("queries/s", "q/s"),
                  ("tokens_per_s", "tok/s"), ("tokens/s", "tok/s"), ("_seconds", "s"), ("seconds", "s"), ("_s", "s"),
                  (" s", "s")]
_SHARE_WORDS = ("accuracy", "recall", "precision", "compliance", "rate", "share", "mrr", "ndcg", "f1", "groundedness",
                "abstained", "confidence")
_COUNT_PREFIXES = ("n_", "num_")
_COUNT_SUFFIXES = ("_pairs", "_items", "_docs", "_chunks", "_questions", "_count", "_counts", "_embedded", "_steps")
_RATIO_WORDS = ("speedup", "ratio")


def describe(key: str) -> Label:
    """The label and unit for a recorded key; a readable guess for keys not in `LABELS`.

    >>> describe("accuracy")
    Label(text='Accuracy', unit='share')
    >>> describe("warmup_s")
    Label(text='Warmup', unit='s')
    """
    if key in LABELS:
        return LABELS[key]
    base = key.removesuffix("_ci")
    if base != key and base in LABELS:
        return Label(LABELS[base].text + " (95% interval)", LABELS[base].unit)
    return Label(_humanize(key), guess_unit(key))


def guess_unit(key: str) -> str:
    """The unit a key's spelling suggests ("" when it suggests none)."""
    k = key.lower()
    for suffix, unit in _UNIT_SUFFIXES:
        if k.endswith(suffix):
            return unit
    words = [w for w in re.split(r"[^a-z0-9]+", k) if w]
    if any(w.startswith(_RATIO_WORDS) for w in words):
        return "x"
    if any(w == s or (len(s) > 3 and w.startswith(s)) for w in words for s in _SHARE_WORDS):  # "recall5", not "bf16"
        return SHARE
    if k.startswith(_COUNT_PREFIXES) or k.endswith(_COUNT_SUFFIXES):
        return COUNT
    return ""


def _humanize(key: str) -> str:
    """'synthetic_exact_qps' -> 'Synthetic exact' (the unit says the rest); 'n_docs' -> 'Number of docs'."""
    words = re.split(r"[_\s]+", key.strip("_ "))
    if words and words[0].lower() in ("n", "num"):
        words = ["number", "of", *words[1:]]
    unit_words = {"s", "ms", "mb", "qps", "seconds"}
    if len(words) > 1 and words[-1].lower() in unit_words:
        words = words[:-1]
    text = " ".join(words)
    return text[:1].upper() + text[1:] if text else key


def unit_suffix(unit: str) -> str:
    """How a unit reads after a column label: 'Time per answer (s)'; '' for plain numbers, text and yes/no."""
    return {SHARE: " (0–1)", "s": " (s)", "ms": " (ms)", "MB": " (MB)", "q/s": " (q/s)", "tok/s": " (tok/s)",
            "x": " (×)"}.get(unit, "")


def readable(x: float) -> str:
    """A number rounded for reading: 93612.4 -> '93,612'; 16.72 -> '16.7'; 0.3833 -> '0.38'; 4.2e-06 -> '0.0000042'."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return "—"
    if isinstance(x, int):
        return f"{x:,}"
    a = abs(x)
    if a == 0:
        return "0"
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 1:
        return f"{x:.1f}"
    digits = max(2, 1 - math.floor(math.log10(a)))  # two significant digits below 1
    return f"{x:.{digits}f}"


def fmt(value, unit: str = "", headline: bool = False, with_unit: bool = True) -> str:
    """A recorded value as a reader sees it; `headline` shows shares as percentages, `with_unit=False` leaves the unit
    to a column header.

    >>> fmt(0.6234, "share"), fmt(0.6234, "share", headline=True), fmt(12.34, "s"), fmt(93612.4, "q/s", with_unit=False)
    ('0.62', '62%', '12.3 s', '93,612')
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if not isinstance(value, (int, float)):
        return str(value)
    if unit == SHARE and 0 <= value <= 1:
        if 0 < value < 0.01:  # would print as 0% / 0.00
            return f"{readable(value * 100)}%" if headline else readable(value)
        return f"{value:.0%}" if headline else f"{value:.2f}"
    if unit == COUNT and float(value).is_integer():
        return readable(int(value))
    text = readable(value)
    if not with_unit:
        return text
    if unit == "x":
        return f"{text}×"
    return f"{text} {unit}" if unit in ("s", "ms", "MB", "q/s", "tok/s") else text


def fmt_interval(value, interval, unit: str = "") -> str:
    """A value with its interval, the unit left to the header: (0.62, [0.48, 0.75]) -> '0.62 [0.48–0.75]'.

    The value alone when the interval is not a pair of numbers.
    """
    if (isinstance(interval, (list, tuple)) and len(interval) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval)):
        lo, hi = (fmt(v, unit, with_unit=False) for v in interval)
        return f"{fmt(value, unit, with_unit=False)} [{lo}–{hi}]"
    return fmt(value, unit, with_unit=False)
