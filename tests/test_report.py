import json
import math

import pytest

from ragft import profiles, report


def test_record_and_read_figures_cleans_nan_and_numpy(tmp_path):
    import numpy as np

    path = report.record_figures("99_x", {"a": np.float32(0.5), "b": math.nan, "t": [{"arm": "rag", "acc": 0.4}]}, tmp_path)
    assert json.loads(path.read_text()) == {"a": 0.5, "b": None, "t": [{"arm": "rag", "acc": 0.4}]}
    assert report.read_figures("99_x", tmp_path)["a"] == 0.5
    with pytest.raises(FileNotFoundError, match="did not record"):
        report.read_figures("98_missing", tmp_path)


def test_index_lists_notebooks_tables_and_failures(tmp_path):
    report.record_figures("05_hybrid", {"arms": [{"arm": "hybrid", "accuracy": 0.61}], "n": 3}, tmp_path)
    out = report.write_index(tmp_path, ["05_hybrid", "06_compare"], tmp_path, {"05_hybrid": 12.0},
                             {"06_compare": "CellExecutionError: boom"})
    html = out.read_text()
    assert "href='05_hybrid.html'" in html and "<th>accuracy</th>" in html and "0.61" in html
    assert "FAILED: CellExecutionError: boom" in html and "no figures recorded" in html


def test_notebooks_are_numbered_and_committed_without_outputs():
    import nbformat

    names = report.list_notebooks()
    assert names and names[0] == "00_overview"
    for name in names:
        nb = nbformat.read(report.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.get("outputs") for c in code), f"{name} is committed with outputs"
        tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{name} needs exactly one cell tagged 'parameters'"
        assert "PROFILE: str" in tagged[0].source and "RESULTS_DIR: str" in tagged[0].source


def test_profiles():
    assert profiles.get("smoke").n_questions < profiles.get("workshop").n_questions
    with pytest.raises(ValueError, match="choose one of"):
        profiles.get("huge")
