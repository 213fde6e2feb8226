import pytest

from ragft import profiles, report


@pytest.mark.notebooks
@pytest.mark.slow
def test_qlora_notebook_smoke(tmp_path):
    report.execute_notebook("04_qlora_finetuning", tmp_path, profile="smoke")
    figs = report.read_figures("04_qlora_finetuning", tmp_path)
    assert figs["footprint_mb"]["fp32"] > figs["footprint_mb"]["bf16"] > figs["footprint_mb"]["nf4"]
    assert figs["nf4_ratio_to_fp32"] <= 0.35
    assert "4-bit NF4" in figs["quantization"]
    assert figs["train_steps"] == profiles.get("smoke").train_steps and figs["seconds_per_step"] > 0 and figs["peak_rss_mb"] > 0
    assert figs["loss_after"] < figs["loss_before"]
    assert figs["n_questions"] == 8
    assert figs["compliance_tuned"] >= figs["compliance_base"]
    assert set(figs["answered_in_format"]) == set(figs["abstained"]) == {"base", "tuned"}
    assert figs["chunks_to_embed"] > 100 and 0 < figs["pairs_to_regenerate"] < 772
    assert figs["retrain_s"] > 0 and figs["reindex_s"] > 0
    assert figs["merge_max_logit_diff"] < 1e-3
    assert figs["sweep"] == []  # no sweep in the smoke profile
