"""Small recorded figures shaped like the notebooks' own, for the report page tests (unit and browser)."""

from pathlib import Path

from ragft import report

ARMS = [  # as notebook 05 records them, with the [low, high] intervals of a bootstrap
    {"arm": "base", "retrieval": "none", "n": 12, "accuracy": 0.25, "accuracy_ci": [0.083, 0.5],
     "changed_accuracy": 0.0, "changed_accuracy_ci": [0.0, 0.4], "format_compliance": 0.1, "latency_s": 1.234},
    {"arm": "rag", "retrieval": "hybrid top3", "n": 12, "accuracy": 0.6234, "accuracy_ci": [0.48, 0.75],
     "changed_accuracy": 0.8, "changed_accuracy_ci": [0.4, 1.0], "format_compliance": 0.2, "latency_s": 2.5},
    {"arm": "my new arm", "retrieval": "bm25 top1", "n": 12, "accuracy": 0.5, "accuracy_ci": [0.25, 0.75],
     "changed_accuracy": None, "format_compliance": 0.9, "latency_s": 3.0, "wobble_factor": 0.42},
]
CLAIMS = {"RAG beats the base model on current facts": True, "fine-tuning beats RAG on the house format": False,
          "RAFT beats plain hybrid on accuracy": None}
FIGURES = {
    "02_hnsw_retrieval": {
        "n_synthetic": 5000, "synthetic_speedup_at_095": 4.135640336048969, "real_recall_at_ef": 1.0, "build_s": 51.938,
        "real_exact_qps": {"faiss": 56805.25, "numpy": 68041.73, "torch": 98170.4}, "suggested_threshold": 0.70036,
        "update": {"sync_s": 2.6557, "rebuild_s": 4.1117, "recall5_before": 0.375, "recall5_after": 1.0},
        "real_curve": [{"M": 16, "ef": ef, "queries/s": 1e5 / ef, "recall@10": min(1.0, 0.9 + ef / 1000)}
                       for ef in (10, 16, 32, 64, 128, 256)],
    },
    "05_hybrid": {"arms": ARMS, "claims": CLAIMS, "split": "test", "n_questions": 12, "llm": "smollm2-135m",
                  "retrieval": "hybrid", "top_k": 3, "sync_s": 2.1, "retrain_s": 93612.4, "compare_s": 40.2,
                  "raft_mix": {"oracle": 0.8, "distractors only": 0.2}},
}


def write_fixture_report(root: Path, with_failure: bool = True) -> tuple[list[str], dict[str, str]]:
    """Figures JSON for 02 and 05, one PNG for 05, a failed 03 with partial output; returns (notebooks, failures)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = root / "figures"
    for name, figs in FIGURES.items():
        report.record_figures(name, figs, figures)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([a["arm"] for a in ARMS], [a["accuracy"] for a in ARMS])
    ax.set_ylabel("accuracy (0-1)")
    report.save_figure(fig, "05_hybrid", figures)
    plt.close(fig)
    names, failures = ["02_hnsw_retrieval", "03_rag", "05_hybrid"], {}
    if with_failure:
        (root / "03_rag.html").write_text("<p>partial output</p>")
        failures["03_rag"] = "PapermillExecutionError: AttributeError: 'dict' object has no attribute 'build_retriever'"
    return names, failures


def _arm(name, retrieval, acc, ci, lenient, answerable, fmt_, recall, precision, runs, **extra):
    """One arm as notebook 05 records it (systems.System.describe + evaluation.ARMS_TABLE, accuracy_ci merged)."""
    return {"arm": name, "retrieval": retrieval, "top_k": 4 if retrieval != "none" else None, "n": 40, "accuracy": acc,
            "accuracy_ci": ci, "lenient_accuracy": lenient, "lenient_accuracy_low": lenient - 0.1,
            "lenient_accuracy_high": min(1.0, lenient + 0.1), "answerable_accuracy": answerable,
            "format_compliance": fmt_, "abstention_recall": recall, "abstention_precision": precision,
            "code_runs": runs, "changed_accuracy": acc, "latency_s": 1.5, **extra}


GRADED_05 = {  # notebook 05's figures with the strict grading: graders, Holm-corrected claims, the knowledge update
    "split": "dev", "n_questions": 40, "n_changed": 12, "llm": "smollm2-360m", "retrieval": "hybrid", "top_k": 4,
    "arms": [_arm("base", "none", 0.1, [0.025, 0.2], 0.3, 0.125, 0.05, 0.0, None, 0.4),
             _arm("rag", "hybrid", 0.575, [0.425, 0.725], 0.7, 0.656, 0.15, 0.5, 0.8, 0.55),
             _arm("raft", "hybrid", 0.725, [0.575, 0.85], 0.8, 0.781, 0.925, 0.875, 0.778, 0.6, contrast=0.5)],
    "graders": [  # evaluation.records(graders.round(3)): the arm, then notebook 05's grader columns
        {"arm": "base", "strict (the sentence)": 0.1, "lenient (a fact anywhere)": 0.3,
         "answerable, seen phrasings": 0.15, "answerable, unseen phrasings": 0.1, "code runs": 0.4,
         "gold source cited": 0.0, "lenient - strict": 0.2, "seen - unseen": 0.05},
        {"arm": "rag", "strict (the sentence)": 0.575, "lenient (a fact anywhere)": 0.7,
         "answerable, seen phrasings": 0.688, "answerable, unseen phrasings": 0.625, "code runs": 0.55,
         "gold source cited": 0.6, "lenient - strict": 0.125, "seen - unseen": 0.063},
        {"arm": "raft", "strict (the sentence)": 0.725, "lenient (a fact anywhere)": 0.8,
         "answerable, seen phrasings": 0.875, "answerable, unseen phrasings": 0.688, "code runs": 0.6,
         "gold source cited": 0.7, "lenient - strict": 0.075, "seen - unseen": 0.187}],
    "claims": [  # evaluation.correct(evaluation.story(...)): raw p, Holm-adjusted p, the verdict from the adjusted one
        {"claim": "RAG beats the base model on current facts: accuracy", "a": "rag", "b": "base", "metric": "correct",
         "questions": "all", "margin": None, "n": 40, "a_share": 0.575, "b_share": 0.1, "diff": 0.475,
         "diff_ci": [0.3, 0.625], "p_mcnemar": 0.0000153, "p_raw": 0.0000153, "p_test": "mcnemar",
         "p_adjusted": 0.0000459, "family": 3, "alpha": 0.05, "unadjusted_verdict": "supported",
         "verdict": "supported", "numbers": "rag 57% vs base 10% on 40 questions; difference +0.47 [+0.30, +0.62]"},
        {"claim": "RAFT beats plain hybrid | accuracy", "a": "raft", "b": "rag", "metric": "correct",
         "questions": "all", "margin": None, "n": 40, "a_share": 0.725, "b_share": 0.575, "diff": 0.15,
         "diff_ci": [0.0, 0.3], "p_mcnemar": 0.031, "p_raw": 0.031, "p_test": "mcnemar", "p_adjusted": 0.062,
         "family": 3, "alpha": 0.05, "unadjusted_verdict": "supported", "verdict": "not separable at this n",
         "numbers": "raft 72% vs rag 57% on 40 questions; difference +0.15 [+0.00, +0.30]"},
        {"claim": "the name check keeps RAG's accuracy", "a": "rag + name check", "b": "rag", "metric": "correct",
         "questions": "answerable", "margin": 0.05, "n": 32, "a_share": 0.656, "b_share": 0.656, "diff": 0.0,
         "diff_ci": [-0.04, 0.04], "p_mcnemar": 1.0, "p_raw": 0.012, "p_test": "non-inferiority",
         "p_adjusted": 0.024, "family": 3, "alpha": 0.05, "unadjusted_verdict": "supported", "verdict": "supported",
         "numbers": "rag + name check 66% vs rag 66% on 32 questions; difference +0.00 [-0.04, +0.04], margin 0.05"},
        {"claim": "fine-tuning beats RAG on the house format", "a": "fine-tuned", "b": "rag", "metric": "compliant",
         "questions": "all", "margin": None, "n": 0, "verdict": "not tested",
         "numbers": "fine-tuned or rag not run on these questions"}],
    "knowledge_update": [
        {"arm": "base", "before": 0.083, "after": 0.083, "update": "none possible", "seconds": None,
         "cold_seconds": None},
        {"arm": "rag", "before": 0.167, "after": 0.667, "update": "index sync", "seconds": 2.34, "cold_seconds": 41.5},
        {"arm": "fine-tuned", "before": 0.25, "after": 0.5, "update": "retraining", "seconds": 812.6,
         "cold_seconds": 812.6}],
    "per_question": [{"arm": "rag", "id": "q1", "correct": True}],
}
RUN_RECORD = {"profile": "workshop", "notebooks": ["00_overview", "03_rag", "05_hybrid"],
              "timings": {"00_overview": 95.0, "03_rag": 412.3, "05_hybrid": 1530.0}, "failures": {},
              "commit": "0258db8c1a2b3c4d5e6f708192a3b4c5d6e7f809", "dirty": False, "date": "2099-01-02 03:04 UTC"}
