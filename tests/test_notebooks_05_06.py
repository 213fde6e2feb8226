import pandas as pd
import pytest

from ragft import hybrid, report


@pytest.mark.notebooks
@pytest.mark.slow
def test_hybrid_notebook_smoke(tmp_path):
    report.execute_notebook("05_hybrid", tmp_path, profile="smoke")
    figs = report.read_figures("05_hybrid", tmp_path)
    arms = figs["arms"]
    assert [a["arm"] for a in arms] == list(hybrid.ARMS)
    assert list(figs)[0] == "arms"  # the report index shows it first
    assert all(a["n"] == figs["n_questions"] for a in arms)
    for a in arms:
        for k in ("accuracy", "format_compliance", "stale_rate"):
            assert a[k] is None or 0.0 <= a[k] <= 1.0
    assert figs["rerun_all_cached"] is True
    assert figs["n_changed"] >= 3  # one question per changed kind, even in smoke
    assert {u["arm"] for u in figs["knowledge_update"]} == set(hybrid.ARMS)
    assert figs["sync_changed_docs"] > 0 and figs["sync_cold_s"] >= figs["sync_s"] > 0
    assert figs["retrain_s"] > 0 and figs["update_pairs"] > 0
    assert set(figs["raft_mix"]) <= {"oracle", "distractors", "abstain"} and sum(figs["raft_mix"].values()) == figs["raft_pairs"]
    assert len(figs["systems_over_models"]) == (5 if figs["large_available"] else 3)
    assert set(figs["claims"]) == {c["claim"] for c in hybrid.story(pd.DataFrame())}


@pytest.mark.notebooks
@pytest.mark.slow
def test_compare_notebook_smoke(tmp_path):
    report.execute_notebook("06_compare", tmp_path, profile="smoke")
    figs = report.read_figures("06_compare", tmp_path)
    assert figs["arms"] == list(hybrid.ARMS)
    assert [a["arm"] for a in figs["answers"]] == list(hybrid.ARMS)
    assert figs["static_call_all_cached"] is True
    assert all(len(ids) <= 1 for ids in figs["top_k_1_doc_ids"].values())
