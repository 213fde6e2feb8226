import pytest

from ragft import report


@pytest.mark.notebooks
@pytest.mark.slow
def test_rag_notebook_smoke(tmp_path):
    report.execute_notebook("03_rag", tmp_path, profile="smoke")
    figs = report.read_figures("03_rag", tmp_path)
    assert figs["weights_unchanged"] is True
    assert figs["update_context_recall_after"] > figs["update_context_recall_before"]
    assert figs["update_docs"]["changed"] + figs["update_docs"]["added"] + figs["update_docs"]["removed"] > 0
    assert figs["budget_respected"] is True
    assert figs["rag_context_recall"] >= 0.5
    assert figs["latency"]["tokens_per_s"] > 0 and figs["latency"]["ttft_s"] > 0 and figs["retrieval_share"] >= 0
    arms = {r["arm"]: r for r in figs["arms"]}
    assert {"base (no retrieval)", "RAG"} <= set(arms) and all(r["n"] == figs["n_questions"] for r in arms.values())
    lab = {r["arm"]: r for r in figs["lab_threshold"]}
    assert len(lab) == 3 and len(figs["lab_retrieval"]) == 3 and len(figs["lab_cannot_tell"]) == 3
    assert {r["arm"] for r in figs["injection"]} == {"delimited + escaped", "raw text"}
