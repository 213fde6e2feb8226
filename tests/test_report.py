import json
import math
import re

import pytest
from report_fixtures import FIGURES, write_fixture_report

from ragft import report
from ragft.core import profiles
from ragft.report import labels as report_labels
from ragft.report import page as report_page
from ragft.report import summaries as report_summaries
from ragft.report import tables as report_tables


def test_record_and_read_figures_cleans_nan_and_numpy(tmp_path):
    import numpy as np

    path = report.record_figures("99_x", {"a": np.float32(0.5), "b": math.nan, "t": [{"arm": "rag", "acc": 0.4}]}, tmp_path)
    assert json.loads(path.read_text()) == {"a": 0.5, "b": None, "t": [{"arm": "rag", "acc": 0.4}]}
    assert report.read_figures("99_x", tmp_path)["a"] == 0.5
    with pytest.raises(FileNotFoundError, match="did not record"):
        report.read_figures("98_missing", tmp_path)


def test_save_figure_writes_png_next_to_the_figures(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 2))
    ax.plot([1, 2, 3])
    first = report.save_figure(fig, "05_hybrid", tmp_path / "figures")
    second = report.save_figure(fig, "05_hybrid", tmp_path / "figures", name="update")
    plt.close(fig)
    assert first == tmp_path / "figures" / "05_hybrid.png" and second.name == "05_hybrid--update.png"
    head = first.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert width > height > 100  # a 4x2 inch figure at 110 dpi, cropped to its contents
    results = report_page.collect(tmp_path, ["05_hybrid"], tmp_path / "figures")
    assert [p.name for p in results[0].images] == ["05_hybrid.png", "05_hybrid--update.png"]  # the headline first


@pytest.mark.parametrize(("value", "unit", "headline", "text"), [
    (93612.4, "s", False, "93,612 s"), (93612.4, "q/s", False, "93,612 q/s"), (16.72, "tok/s", False, "16.7 tok/s"),
    (0.383, "", False, "0.38"), (0.0000042, "", False, "0.0000042"), (0.6234, "share", False, "0.62"),
    (0.6234, "share", True, "62%"), (4.1356, "x", False, "4.1×"), (1110, "count", False, "1,110"),
    (True, "bool", False, "yes"), (None, "share", False, "—"), (math.nan, "", False, "—"), ("hybrid", "text", False, "hybrid"),
])
def test_numbers_are_rounded_for_reading(value, unit, headline, text):
    assert report_labels.fmt(value, unit, headline=headline) == text


def test_intervals_and_labels():
    assert report_labels.fmt_interval(0.6234, [0.48, 0.75], "share") == "0.62 [0.48–0.75]"
    assert report_labels.fmt_interval(0.6234, None, "share") == "0.62"
    assert report_labels.describe("changed_accuracy") == report_labels.Label("Accuracy on changed APIs", "share")
    # keys nobody listed still read, with a unit guessed from their spelling
    assert report_labels.describe("warmup_s") == report_labels.Label("Warmup", "s")
    assert report_labels.describe("n_widgets") == report_labels.Label("Number of widgets", "count")
    assert report_labels.describe("wobble_accuracy").unit == "share"
    assert report_labels.describe("index memory MB") == report_labels.Label("Index memory", "MB")
    assert report_labels.describe("recall5_before").unit == "share" and report_labels.describe("bf16").unit == ""


def test_dict_keys_are_data_and_take_the_unit_of_their_figure():
    table = report_tables.small_table({"nf4": 166.4, "bf16": 269.0, "fp32": 538.0}, "MB")
    assert _rows(table) == [["nf4 (MB)", "bf16 (MB)", "fp32 (MB)"], ["166", "269", "538"]]
    table = report_tables.small_table({"changed_param": 70, "removed": 47}, "count")
    assert _rows(table) == [["changed param", "removed"], ["70", "47"]]


def test_takeaways_are_written_from_the_recorded_numbers():
    text = report_summaries.takeaway("02_hnsw_retrieval", FIGURES["02_hnsw_retrieval"])
    assert text == ("HNSW answered 4.1× more queries per second than the fastest exact search at recall@10 0.95 on 5,000 "
                    "synthetic vectors; after the NumPy update an index sync (2.7 s) instead of a rebuild (4.1 s) raised "
                    "recall@5 on changed APIs from 38% to 100%.")
    text = report_summaries.takeaway("05_hybrid", FIGURES["05_hybrid"])
    assert text == ("Of 3 arms on 12 test questions, rag answered the most correctly (62%), rag the best on changed APIs "
                    "(80%); 1 of 2 tested claims supported.")
    assert report_summaries.takeaway("02_hnsw_retrieval", {"n_synthetic": 10}) is None  # a missing number drops it
    assert report_summaries.takeaway("99_new", {"x": 1}) is None


def test_headlines_pick_labelled_numbers_and_fall_back_for_unknown_notebooks():
    cards = report_summaries.headlines("02_hnsw_retrieval", FIGURES["02_hnsw_retrieval"])
    assert [(c.label, report_labels.fmt(c.value, c.unit, headline=True)) for c in cards] == [
        ("HNSW speed-up over exact search at recall 0.95", "4.1×"), ("HNSW recall@10 on the real chunks", "100%"),
        ("Fastest exact search, real chunks", "98,170 q/s"), ("Index build time", "51.9 s"),
        ("Index sync after the update", "2.7 s"), ("Suggested abstention threshold (cosine)", "0.70")]
    cards = report_summaries.headlines("99_new", {"name": "x", "ok": True, "load_s": 2.25, "n_rows": 7, "nested": {"a": 1}})
    assert [(c.label, c.value, c.unit) for c in cards] == [("Load", 2.25, "s"), ("Number of rows", 7, "count")]


def _rows(table: str) -> list[list[str]]:
    """A table's cells as text, row by row."""
    return [[re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table)]


def _tables(page: str) -> list[str]:
    return re.findall(r"<table[^>]*>.*?</table>", page, flags=re.S)


def test_index_puts_the_verdicts_first_with_intervals_and_claims(tmp_path):
    names, failures = write_fixture_report(tmp_path)
    page = report.write_index(tmp_path, names, tmp_path / "figures", {"05_hybrid": 12.0}, failures, profile="smoke").read_text()
    first = _tables(page)[0]
    assert "class='arms'" in first
    assert _rows(first) == [
        ["shares 0–1 unless marked", "base", "rag", "my new arm"],
        ["Retrieval", "none", "hybrid top3", "bm25 top1"],  # descriptions first, then metrics in the labels' order
        ["Questions scored", "12", "12", "12"],
        ["Accuracy", "0.25 [0.08–0.50]", "0.62 [0.48–0.75]", "0.50 [0.25–0.75]"],
        ["Accuracy on changed APIs", "0.00 [0.00–0.40]", "0.80 [0.40–1.00]", "—"],
        ["House format kept", "0.10", "0.20", "0.90"],
        ["Time per answer (s)", "1.2", "2.5", "3.0"],
        ["Wobble factor", "—", "—", "0.42"],
    ]
    assert "<td>Wobble factor</td>" in first  # a metric nobody labelled still gets a row with a readable label
    assert "accuracy_ci" not in page and "changed_accuracy" not in page  # no raw keys on the page
    assert page.index("id='verdicts'") < page.index("id='nb-02_hnsw_retrieval'")
    assert page.index("<img") < page.index("id='nb-02_hnsw_retrieval'")  # the verdicts' plot is above the sections
    assert "✓ supported</span>: RAG beats the base model on current facts" in page
    assert "✗ not supported</span>: fine-tuning beats RAG" in page and "– not tested</span>: RAFT beats" in page
    assert "93,612 s" in page and "9.36e" not in page  # retrain_s, rounded for reading
    assert "Smoke profile" in page and "2 of 3 notebooks ran" in page


def test_index_shows_a_failed_notebook_in_red_with_its_error_and_partial_output(tmp_path):
    names, failures = write_fixture_report(tmp_path)
    page = report.write_index(tmp_path, names, tmp_path / "figures", failures=failures).read_text()
    section = page[page.index("id='nb-03_rag'"):page.index("id='nb-05_hybrid'")]
    assert "class='failed'" in section and "no attribute &#x27;build_retriever&#x27;" in section
    assert "href='03_rag.html'>the partial output</a>" in section
    assert "(failed)" in page[:page.index("id='verdicts'")]  # flagged in the contents line too


def test_index_reads_the_error_of_an_executed_notebook_when_no_failure_was_passed(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1/0")
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="division by zero", traceback=[])]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "04_qlora_finetuning.ipynb")
    page = report.write_index(tmp_path, ["04_qlora_finetuning"], tmp_path / "figures").read_text()
    assert "<code>ZeroDivisionError: division by zero</code>" in page
    assert "href='04_qlora_finetuning.ipynb'>the partial output</a>" in page


def test_index_without_verdicts_or_known_notebooks_still_renders(tmp_path):
    report.record_figures("07_extra", {"n_rows": 3, "table": [{"name": "a", "score": 0.5}], "note": "x"}, tmp_path)
    page = report.write_index(tmp_path, ["07_extra"], tmp_path).read_text()
    assert "id='verdicts'" not in page and "<div class='v'>3</div><div class='l'>Number of rows</div>" in page
    assert "<th>Name</th><th>Score</th>" in page and "href='07_extra.json'>all recorded figures (JSON)</a>" in page


def test_single_file_index_carries_its_images_and_figures(tmp_path):
    names, failures = write_fixture_report(tmp_path)
    out = report.write_index(tmp_path, names, tmp_path / "figures", failures=failures, single_file=True)
    page = out.read_text()
    assert out.name == "ragft_report.html"
    srcs = re.findall(r"<img src='([^']*)'", page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "download='05_hybrid.json' href='data:application/json;base64," in page
    assert "figures/" not in page  # nothing points into the report folder's figures


def test_notebooks_that_plot_save_a_headline_figure_under_their_own_name():
    import nbformat

    for name in report.list_notebooks():
        nb = nbformat.read(report.NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if "plt.show()" not in code:
            continue
        calls = re.findall(r"report\.save_figure\([^,]+, \"([^\"]+)\", RESULTS_DIR", code)
        assert calls and set(calls) == {name}, f"{name} plots but saves no headline figure under its name: {calls}"


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



def test_build_report_rewrites_the_pages_from_a_report_folder(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_report", report.NOTEBOOK_DIR.parent / "scripts" / "build_report.py")
    build_report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_report)
    names, failures = write_fixture_report(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"profile": "smoke", "notebooks": names, "timings": {"05_hybrid": 61.0},
                                                   "failures": failures}))
    assert build_report.main(["--out", str(tmp_path), "--index-only", "--single-file"]) == 1  # 03 failed
    index, single = (tmp_path / "index.html").read_text(), (tmp_path / "ragft_report.html").read_text()
    assert "profile smoke · 2 of 3 notebooks ran · 1.0 min of notebooks" in index
    assert "<img src='figures/05_hybrid.png'" in index and "<img src='data:image/png;base64," in single


def test_a_card_taken_from_a_table_leaves_the_table_on_the_page(tmp_path):
    names, failures = write_fixture_report(tmp_path)
    page = report.write_index(tmp_path, names, tmp_path / "figures", failures=failures).read_text()
    section = page[page.index("id='nb-02_hnsw_retrieval'"):page.index("id='nb-03_rag'")]
    assert "Index sync after the update</div>" in section  # the card reads update.sync_s ...
    assert "<h3>The knowledge update</h3>" in section  # ... and the update table still shows
    table = section[section.index("<h3>The knowledge update</h3>"):]
    assert _rows(_tables(table)[0]) == [["Recall@5 before the sync (0–1)", "Recall@5 after the sync (0–1)",
                                         "Index sync time (s)", "Full rebuild time (s)"], ["0.38", "1.00", "2.7", "4.1"]]


CORRECTED = [  # notebook 05's claims after evaluation.correct: raw p, Holm-adjusted p, the verdict from the adjusted one
    {"claim": "RAG beats the base model on current facts", "a": "rag", "b": "base", "n": 40, "diff": 0.5,
     "diff_ci": [0.3, 0.7], "numbers": "rag 80% vs base 30% on 40 questions", "p_mcnemar": 0.0001, "p_raw": 0.0001,
     "p_test": "mcnemar", "p_adjusted": 0.0003, "family": 3, "alpha": 0.05, "unadjusted_verdict": "supported",
     "verdict": "supported"},
    {"claim": "the change notes help", "a": "rag", "b": "rag, no notes", "n": 40, "diff": 0.1, "diff_ci": [0.02, 0.2],
     "numbers": "rag 80% vs rag, no notes 70%", "p_mcnemar": 0.021, "p_raw": 0.021, "p_test": "mcnemar",
     "p_adjusted": 0.042, "family": 3, "alpha": 0.01, "unadjusted_verdict": "supported",
     "verdict": "not separable at this n"},
    {"claim": "RAFT beats hybrid", "a": "raft", "b": "hybrid", "n": 0, "verdict": "not tested",
     "numbers": "raft or hybrid not run on these questions"},
]


def test_claims_list_shows_raw_and_adjusted_p_and_the_adjusted_verdict():
    html_list = report_tables.claims_list(CORRECTED)
    items = re.findall(r"<li>(.*?)</li>", html_list)
    text = [re.sub(r"<[^>]+>", "", i) for i in items]
    assert text[0] == ("✓ supported: RAG beats the base model on current facts (rag 80% vs base 30% on 40 questions) "
                       "p 0.0001 · Holm 0.0003")
    assert text[1].startswith("≈ not separable at this n: the change notes help") and text[1].endswith(
        "p 0.021 · Holm 0.042 · supported alone")
    assert text[2].startswith("– not tested: RAFT beats hybrid") and "Holm" not in text[2]
    assert "Holm-Bonferroni over the 3 claims" in html_list
    # an older figures file: McNemar's p only, said to be uncorrected; the oldest: verdicts only
    old = [{k: v for k, v in c.items() if k not in ("p_raw", "p_adjusted", "family", "unadjusted_verdict")}
           for c in CORRECTED]
    assert "p 0.021 · uncorrected" in report_tables.claims_list(old) and "Holm" not in report_tables.claims_list(old)
    assert "Holm" not in report_tables.claims_list(FIGURES["05_hybrid"]["claims"])


def test_corrected_claims_and_per_question_results_on_the_page(tmp_path):
    figures = {**FIGURES["05_hybrid"], "claims": CORRECTED,
               "per_question": [{"arm": "rag", "id": f"q{i}", "kind": "removed", "correct": True} for i in range(50)],
               "change_notes": {"claims": CORRECTED[:2]}}
    report.record_figures("05_hybrid", figures, tmp_path / "figures")
    page = report.write_index(tmp_path, ["05_hybrid"], tmp_path / "figures").read_text()
    assert "Holm 0.042 · supported alone" in page
    assert "q49" not in page and "Per question" not in page  # the per-question results stay in the JSON
    assert "1 of 2 tested claims supported after Holm-Bonferroni" in page
    table = report_tables.records_table(CORRECTED[:2])  # a section's claims as a table (turned: a row per key)
    labels = [row[0] for row in _rows(table)]
    assert {"p (raw)", "p (Holm-adjusted)", "Verdict (from the adjusted p)", "Verdict alone, before correction"} <= set(labels)
