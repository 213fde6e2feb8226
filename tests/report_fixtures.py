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
