import pytest

from ragft import report


@pytest.mark.notebooks
@pytest.mark.slow
def test_overview_notebook_smoke(tmp_path):
    report.execute_notebook("00_overview", tmp_path, profile="smoke")
    figs = report.read_figures("00_overview", tmp_path)
    assert figs["documents"]["1.26.4"] > 900 and figs["documents"]["2.4.6"] > 900
    assert figs["removed_1_26_to_2_0"] > 50
    assert figs["qa_items"] == figs["qa_dev"] + figs["qa_test"]
    assert figs["demo_truth_holds"] is True
    assert figs["train_pairs"] > 500
