"""Does the suggested code run? (issue 34, item 7): answers' code blocks run under NumPy 2.4.6 in a sandboxed child."""

import os
import time

import pandas as pd

from ragft import evaluation as ev
from ragft.core.house import ABSTAIN_ANSWER, render
from ragft.evaluation import code_runs as cr


def test_one_child_runs_every_kind_of_snippet(tmp_path):
    outside = tmp_path / "escaped.txt"
    snippets = {
        "runs": "x = np.trapezoid([1, 2, 3])",
        "removed name": "np.trapz([1, 2])",
        "raises": "np.zeros(2) + np.zeros(3)",
        "syntax": "def f(:",
        "too much memory": "b = bytearray(8 * 2**30)",
        "socket": "import socket\nsocket.create_connection(('127.0.0.1', 9))",
        "subprocess": "import subprocess\nsubprocess.run(['true'])",
        "writes here": "open('out.txt', 'w').write('hi')\nimport os\nassert os.path.exists('out.txt')",
        "writes outside": f"open({str(outside)!r}, 'w').write('x')",
        "patches numpy": "np.trapz = np.trapezoid",
        "after the patch": "np.trapz([1, 2])",
        "no secrets": "import os\nassert 'RAGFT_SECRET' not in os.environ and not os.getcwd().startswith('/work')",
        "prints": "print('hi' * 1000)",
        "times out": "while True:\n    pass",
    }
    os.environ["RAGFT_SECRET"] = "x"
    try:
        start = time.perf_counter()
        results = dict(zip(snippets, cr.run_snippets(list(snippets.values()), timeout_s=1.0), strict=True))
        seconds = time.perf_counter() - start
    finally:
        del os.environ["RAGFT_SECRET"]
    kinds = {k: r.error_type for k, r in results.items()}
    assert kinds == {"runs": None, "removed name": "AttributeError", "raises": "ValueError", "syntax": "SyntaxError",
                     "too much memory": "MemoryError", "socket": "Refused", "subprocess": "Refused",
                     "writes here": None, "writes outside": "Refused", "patches numpy": None,
                     "after the patch": "AttributeError", "no secrets": None, "prints": None, "times out": "Timeout"}
    assert not outside.exists() and not os.path.exists("out.txt")
    assert seconds < 6


def test_a_snippet_that_swallows_the_alarm_is_stopped_and_the_rest_still_run(monkeypatch):
    monkeypatch.setattr(cr, "GRACE_S", 0.5)
    swallow = "import time\nwhile True:\n    try:\n        time.sleep(0.01)\n    except BaseException:\n        pass"
    results = cr.run_snippets([swallow, "np.ones(2)"], timeout_s=0.5)
    assert [r.error_type for r in results] == ["Timeout", None]


def test_grades_per_answer_and_the_removed_name_rule():
    answers = [render("Use `np.trapezoid`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"]),
               render("Use `np.trapezoid`.", "np.trapz([1, 2])", ["numpy.trapezoid"]),
               render("Use `np.trapezoid`.", "np.trapezoid(y)", ["numpy.trapezoid"]),  # a fragment: y undefined
               render("`np.eye` gained `device`.", "np.eye(..., device=...)", ["numpy.eye"]),
               ABSTAIN_ANSWER, "Answer: use np.trapezoid.\nSource: numpy.trapezoid"]
    kinds = ["removed", "removed", "removed", "changed_param", "unanswerable", "removed"]
    rows = cr.run_answers(kinds, answers)
    assert [r["code_runs"] for r in rows] == [True, False, True, False, None, None]
    assert rows[1]["code_error"].startswith("AttributeError") and rows[0]["code_error"] is None


def test_identical_snippets_run_once_and_the_cache_answers_again():
    cache = {}
    first = cr.run_snippets(["np.ones(2)", "np.ones(2)", "np.trapz"], cache=cache)
    assert len(cache) == 2 and [r.ok for r in first] == [True, True, False]
    again = cr.run_snippets(["np.trapz", "np.ones(2)"], cache=cache, python="/nonexistent/python")  # never started
    assert [r.ok for r in again] == [False, True]


def test_add_code_runs_feeds_the_arms_table():
    df = pd.DataFrame({"arm": ["a", "a", "b"], "kind": ["removed", "added", "removed"], "correct": [True, True, False],
                       "fact_ok": [True, True, False], "stale": [False, None, True], "abstained": [False, False, False], "compliant": [True, True, True],
                       "answer": [render("Use `np.trapezoid`.", "np.trapezoid([1, 2])", ["x"]),
                                  render("`np.astype` is new.", "np.astype(np.ones(2), np.int8)", ["x"]),
                                  render("Use `np.trapz`.", "np.trapz([1, 2])", ["x"])]})
    table = ev.summarize_arms(ev.add_code_runs(df), metrics=ev.ARMS_TABLE)
    assert table.loc["a", "code_runs"] == 1.0 and table.loc["b", "code_runs"] == 0.0
    assert "code_runs" not in df  # a copy


def test_a_hundred_snippets_take_seconds_not_minutes():
    start = time.perf_counter()
    results = cr.run_snippets([f"a = np.arange({i})\nb = np.sort(a)[::-1].sum()" for i in range(100)])
    assert all(r.ok for r in results) and time.perf_counter() - start < 5


def test_numpy_submodules_loaded_by_one_snippet_serve_the_next():
    """Restoring NumPy between snippets keeps submodules that one imported lazily (dropping them had sent numpy's
    lazy loader into a RecursionError for the next snippet that used them)."""
    seq = ["np.random.default_rng(0).random()", "np.random.randint(2, size=3)", "np.ma.masked_array([1, 2]).sum()",
           "np.ma.masked_array([1]).sum()"]
    assert [r.error_type for r in cr.run_snippets(seq)] == [None, None, None, None]
