"""docs/results.md is generated, never copied: the committed page equals a fresh render of the committed figures, the
numbers on a rendered page are the figures' own, older figures read "not recorded", and a smoke run never publishes."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
from report_fixtures import FIGURES, GRADED_05, RUN_RECORD, write_fixture_report

from ragft import report

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "docs" / "figures"


def _section(page: str, heading: str) -> str:
    start = page.index(f"## {heading}\n")
    end = page.find("\n## ", start + 1)
    return page[start:end if end > 0 else None]


def _table(text: str) -> list[list[str]]:
    """A markdown table's rows (header first, the --- row left out), cells unescaped."""
    rows = []
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            rows.append([c.strip().replace("\\|", "|") for c in cells])
    return rows


def _by_arm(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    head, *body = rows
    return {r[0]: dict(zip(head, r, strict=True)) for r in body}


def _build_report():
    spec = importlib.util.spec_from_file_location("build_report", ROOT / "scripts" / "build_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not PUBLISHED.exists(), reason="no run published yet (scripts/build_report.py --publish)")
def test_the_committed_results_page_is_the_render_of_the_committed_figures():
    figures, run = report.read_published(PUBLISHED)
    assert report.RESULTS_NOTEBOOK in figures and run, "docs/figures/ holds notebook 05's figures and run.json"
    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert page == report.render_results(figures, run), "docs/results.md drifted: run scripts/build_report.py --publish"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if report.README_START in readme:
        assert report.splice_readme(readme, report.readme_block(figures, run)) == readme, "README's results table drifted"
    assert not list(PUBLISHED.glob("*.png")) and not list(PUBLISHED.glob("*.ipynb")), "JSON only in docs/figures/"


def test_the_page_carries_the_figures_numbers():
    page = report.render_results({"05_hybrid": GRADED_05}, RUN_RECORD)
    assert "commit `0258db8c1a2b` (clean working tree) with the **workshop** profile, 2099-01-02 03:04 UTC" in page
    assert "on 40 dev questions (12 whose answer changed in NumPy 2), model smollm2-360m" in page
    arms = _by_arm(_table(_section(page, "Arms")))
    assert list(arms) == ["base", "rag", "raft"]
    graders = {g["arm"]: g for g in GRADED_05["graders"]}
    for a in GRADED_05["arms"]:
        row, g = arms[a["arm"]], graders[a["arm"]]
        assert row["Strict accuracy [95% interval]"] == report.fmt_interval(a["accuracy"], a["accuracy_ci"], "share")
        assert row["Lenient accuracy"] == f"{a['lenient_accuracy']:.2f}"
        assert row["Answerable, seen phrasings"] == f"{g['answerable, seen phrasings']:.2f}"
        assert row["Answerable, unseen phrasings"] == f"{g['answerable, unseen phrasings']:.2f}"
        assert row["House format kept"] == f"{a['format_compliance']:.2f}"
        assert row["Abstention recall"] == f"{a['abstention_recall']:.2f}"
        assert row["Code runs"] == f"{a['code_runs']:.2f}"
    assert arms["raft"]["Strict accuracy [95% interval]"] == "0.72 [0.57–0.85]"
    assert arms["base"]["Abstention precision"] == "—" and arms["rag"]["Abstention precision"] == "0.80"

    claims = _table(_section(page, "Claims"))
    assert claims[0] == ["Claim", "Numbers", "p (raw)", "p (Holm-adjusted)", "Verdict"]
    assert [r[0] for r in claims[1:]] == [c["claim"] for c in GRADED_05["claims"]]  # a '|' in a claim stays one cell
    for row, c in zip(claims[1:], GRADED_05["claims"], strict=True):
        assert row[1] == c["numbers"]
        assert row[2] == (report.fmt(c["p_raw"]) if "p_raw" in c else "—")
        assert row[3] == (report.fmt(c["p_adjusted"]) if "p_adjusted" in c else "—")
    assert [r[2:] for r in claims[1:3]] == [["0.000015", "0.000046", "✓ supported"],
                                             ["0.031", "0.062", "≈ not separable at this n"]]
    assert claims[4][4] == "– not tested"
    assert "One Holm-Bonferroni family of 3 tested claims at alpha 0.05" in page

    update = _by_arm(_table(_section(page, "The knowledge update")))
    assert update["rag"] == {"Arm": "rag", "How its knowledge moves": "index sync", "Changed-API accuracy before": "0.17",
                             "After": "0.67", "Time (s)": "2.3", "Cold-cache time (s)": "41.5"}
    assert update["base"]["Time (s)"] == "—" and update["fine-tuned"]["After"] == "0.50"

    times = _by_arm(_table(_section(page, "Wall time per notebook")))
    assert {k: v["Minutes"] for k, v in times.items()} == {
        n: report.fmt(s / 60) for n, s in RUN_RECORD["timings"].items()} | {"all": report.fmt(sum(
            RUN_RECORD["timings"].values()) / 60)}
    assert times["05_hybrid"]["Minutes"] == "25.5" and times["all"]["Status"] == "3 of 3 ran"
    assert "not recorded" not in page


def test_older_figures_say_not_recorded_instead_of_failing():
    old = FIGURES["05_hybrid"]  # no graders, no lenient grader, claims as {claim: verdict}, no knowledge update
    run = {"profile": "workshop", "notebooks": ["03_rag", "05_hybrid"], "timings": {"05_hybrid": 61.0},
           "failures": {"03_rag": "PapermillExecutionError: boom"}}
    page = report.render_results({"05_hybrid": old}, run)
    assert "Produced by commit not recorded with the **workshop** profile, date not recorded." in page
    arms = _by_arm(_table(_section(page, "Arms")))
    assert list(arms["rag"]) == ["Arm", "Strict accuracy [95% interval]", "House format kept"]
    assert arms["rag"]["Strict accuracy [95% interval]"] == "0.62 [0.48–0.75]"
    assert "Not recorded by this run: Lenient accuracy; Answerable, seen phrasings;" in page
    claims = _table(_section(page, "Claims"))
    assert [r[2:] for r in claims[1:]] == [["not recorded", "not recorded", "✓ supported"],
                                          ["not recorded", "not recorded", "✗ not supported"],
                                          ["not recorded", "not recorded", "– not tested"]]
    assert "Knowledge update: not recorded." in page
    times = _by_arm(_table(_section(page, "Wall time per notebook")))
    assert times["03_rag"]["Minutes"] == "not recorded" and times["03_rag"]["Status"] == "failed: PapermillExecutionError: boom"
    assert times["all"]["Status"] == "1 of 2 ran"
    # a row of the arms table without a key other rows have; nothing recorded at all
    partial = {"arms": [{"arm": "a", "accuracy": 0.5, "code_runs": 0.2}, {"arm": "b", "accuracy": None}]}
    rows = _by_arm(_table(report.render_results({"05_hybrid": partial}, {})))
    assert rows["b"]["Code runs"] == "not recorded" and rows["b"]["Strict accuracy [95% interval]"] == "—"
    empty = report.render_results({}, {})
    assert "Notebook 05_hybrid: not recorded." in empty and "Wall times: not recorded." in empty


def test_the_readme_table_is_spliced_between_its_markers():
    block = report.readme_block({"05_hybrid": GRADED_05}, RUN_RECORD)
    assert block.startswith(report.README_START) and block.endswith(report.README_END)
    assert _by_arm(_table(block))["raft"]["Strict accuracy [95% interval]"] == "0.72 [0.57–0.85]"
    readme = f"# ragft\n\n## Results\n\n{report.README_START}\nold table\n{report.README_END}\n\n## Layout\n"
    spliced = report.splice_readme(readme, block)
    assert spliced == f"# ragft\n\n## Results\n\n{block}\n\n## Layout\n"
    assert report.splice_readme(spliced, block) == spliced
    assert report.splice_readme("# no markers\n", block) is None


def test_publish_refusals():
    assert report.publish_refusal(RUN_RECORD, {"05_hybrid"}) is None
    assert report.publish_refusal({**RUN_RECORD, "profile": "smoke"}, {"05_hybrid"}) == report.SMOKE_REFUSAL
    assert "not part of this run" in report.publish_refusal({**RUN_RECORD, "notebooks": ["03_rag"]}, {"05_hybrid"})
    assert "failed" in report.publish_refusal({**RUN_RECORD, "failures": {"05_hybrid": "boom"}}, {"05_hybrid"})
    assert "recorded no figures" in report.publish_refusal(RUN_RECORD, set())


def test_a_smoke_run_never_publishes(tmp_path, capsys):
    build_report = _build_report()
    docs = tmp_path / "docs"
    # refused before any notebook runs
    assert build_report.main(["--profile", "smoke", "--publish", "--out", str(tmp_path / "r"), "--docs", str(docs)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"[report] {report.SMOKE_REFUSAL}"] and not (tmp_path / "r").exists()
    # and from an existing smoke report folder
    names, _ = write_fixture_report(tmp_path, with_failure=False)
    (tmp_path / "run.json").write_text(json.dumps({**RUN_RECORD, "profile": "smoke", "notebooks": names}))
    assert build_report.main(["--out", str(tmp_path), "--index-only", "--publish", "--docs", str(docs),
                              "--readme", str(tmp_path / "README.md")]) == 2
    assert report.SMOKE_REFUSAL in capsys.readouterr().err and not docs.exists()


def test_publish_writes_json_only_and_a_page_the_drift_test_re_renders(tmp_path):
    build_report = _build_report()
    names, _ = write_fixture_report(tmp_path, with_failure=False)  # 02 and 05 figures, and 05's PNG
    report.record_figures("05_hybrid", GRADED_05, tmp_path / "figures")
    (tmp_path / "run.json").write_text(json.dumps({**RUN_RECORD, "notebooks": names}))
    docs, readme = tmp_path / "docs", tmp_path / "README.md"
    (docs / "figures").mkdir(parents=True)
    (docs / "figures" / "01_gone.json").write_text("{}")  # from an older publish: removed
    readme.write_text(f"# ragft\n{report.README_START}\nnothing yet\n{report.README_END}\n")
    books = tmp_path / "notebooks"
    books.mkdir()
    (books / "05_hybrid.ipynb").write_text(json.dumps({"cells": [{"cell_type": "markdown", "source": ["# 05 · Hybrid\n", "text"]}]}))
    assert build_report.main(["--out", str(tmp_path), "--index-only", "--publish", "--docs", str(docs),
                              "--readme", str(readme), "--notebooks", str(books)]) == 0
    assert sorted(p.name for p in (docs / "figures").iterdir()) == ["05_hybrid.json", "run.json"]
    assert report.read_timings(docs / "timings.json")["workshop"]["commit"] == RUN_RECORD["commit"][:12]
    opening = json.loads((books / "05_hybrid.ipynb").read_text())["cells"][0]["source"]
    assert opening[0] == "# 05 · Hybrid\n" and opening[1].startswith(report.timings.HOW_LONG_MARK) and opening[2] == "text"
    figures, run = report.read_published(docs / "figures")
    assert figures["05_hybrid"] == json.loads((tmp_path / "figures" / "05_hybrid.json").read_text())
    assert run["commit"] == RUN_RECORD["commit"] and run["profile"] == "workshop"
    page = (docs / "results.md").read_text(encoding="utf-8")
    assert page == report.render_results(figures, run) and "0.72 [0.57–0.85]" in page
    assert readme.read_text() == f"# ragft\n{report.readme_block(figures, run)}\n"


def test_the_run_record_names_the_commit():
    state = _build_report().git_state(ROOT)
    if state["commit"] is None:
        pytest.skip("not a git checkout")
    assert re.fullmatch(r"[0-9a-f]{40}", state["commit"]) and isinstance(state["dirty"], bool)
    assert _build_report().git_state(Path("/")) == {"commit": None, "dirty": None}


def test_no_results_page_without_the_figures_behind_it():
    page = ROOT / "docs" / "results.md"
    assert not page.exists() or (PUBLISHED / report.RUN_FILE).exists(), "docs/results.md is generated: publish its figures"


def test_timings_merge_per_profile_and_skip_failed_notebooks():
    run = {**RUN_RECORD, "timings": {"03_rag": 300.0, "05_hybrid": 420.0}, "failures": {"03_rag": "boom"},
           "cpus": 2, "device": "cpu", "load": {"05_hybrid": 2.5, "03_rag": 9.0}}
    merged = report.merge_run({"full": {"seconds": {"05_hybrid": 9000.0}}}, run)
    assert merged["workshop"]["seconds"] == {"05_hybrid": 420.0} and merged["full"]["seconds"]["05_hybrid"] == 9000.0
    line = report.timings.opening_line("05_hybrid", merged)
    assert merged["workshop"]["load"] == {"05_hybrid": 2.5}
    assert "workshop 7.0 min (2 CPUs, cpu, load 2.5)" in line and "research (full) 150.0 min" in line
    assert "workshop not published yet" in report.timings.opening_line("06_compare", merged)
    assert report.merge_run({}, {**run, "timings": {"03_rag": 1.0}}) == {}  # only failures: nothing to record
    nb = {"cells": [{"cell_type": "markdown", "source": ["# title\n", f"{report.timings.HOW_LONG_MARK}: old\n", "rest"]}]}
    assert report.timings.splice_opening(nb, line) and nb["cells"][0]["source"] == ["# title\n", line + "\n", "rest"]
    assert not report.timings.splice_opening(nb, line)  # the same line twice: unchanged


@pytest.mark.skipif(not report.TIMINGS_FILE.exists(), reason="no run published yet (scripts/build_report.py --publish)")
def test_every_notebook_opens_with_the_published_minutes():
    timings = report.read_timings()
    for path in sorted(report.NOTEBOOK_DIR.glob("*.ipynb")):
        first = next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown")
        assert report.timings.opening_line(path.stem, timings) in "".join(first["source"]).split("\n"), \
            f"{path.name}: its opening's minutes drifted from docs/timings.json: run scripts/build_report.py --publish"
