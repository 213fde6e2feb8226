from ragft import evaluation as ev
from ragft.core.house import ABSTAIN_ANSWER, render
from ragft.data.datasets import QAItem


def item(kind="removed", required=("np.float64",), stale=("np.float_",)):
    return QAItem(id=f"{kind}:x", kind=kind, question="q", required_facts=list(required), stale_facts=list(stale),
                  gold_doc_ids={}, split="dev")


def test_fact_present_forms():
    assert ev.fact_present("use numpy.float64", "np.float64")
    assert ev.fact_present("use `float64`", "np.float64")
    assert ev.fact_present("x = float64(3)", "np.float64")
    assert not ev.fact_present("use np.float64x", "np.float64")
    assert not ev.fact_present("they all work", "np.all")
    assert ev.fact_present("pass stable=True", "stable")
    assert not ev.fact_present("pass unstable=True", "stable")


def test_stale_present_in_code_but_not_when_named_as_removed():
    assert ev.stale_present(render("Use np.float_.", "x = np.float_(1)", ["a"]), ["np.float_"])
    assert not ev.stale_present(render("np.float_ was removed; use np.float64.", "x = np.float64(1)", ["a"]), ["np.float_"])
    assert ev.stale_present("You can call np.float_(3) as usual.", ["np.float_"])
    assert not ev.stale_present("np.float_ was removed in 2.0.", ["np.float_"])
    assert not ev.stale_present("use np.float_x", ["np.float_"])
    # the ways answers say a name is gone, seen in real model output
    assert not ev.stale_present("np.float_ raises AttributeError in NumPy 2.", ["np.float_"])
    assert not ev.stale_present("The replacement for np.float_ is np.float64.", ["np.float_"])
    assert not ev.stale_present("np.float_ is deprecated.", ["np.float_"])


def test_groundedness_counts_cited_names_found_in_passages():
    ans = render("Use np.float64.", "np.float64(1)", ["numpy.float64", "numpy.madeup"])
    assert ev.groundedness(ans, ["numpy.float64(x) ... docs"]) == 0.5
    assert ev.groundedness("no api named here", ["x"]) is None


def test_score_and_summarize_hand_computed():
    good = render("Use np.float64 instead.", "x = np.float64(1)", ["removed:numpy.float_"])
    stale = render("Use np.float_.", "x = np.float_(1)", ["numpy.float_"])
    rows = [ev.score_answer(item(), good), ev.score_answer(item(), stale),
            ev.score_answer(item("unanswerable", (), ()), ABSTAIN_ANSWER), ev.score_answer(item(), ABSTAIN_ANSWER)]
    assert [r["correct"] for r in rows] == [True, False, True, False]
    s = ev.summarize(rows)
    assert s["n"] == 4
    assert s["accuracy"] == 0.5
    assert abs(s["fact_accuracy"] - 1 / 3) < 1e-9
    assert abs(s["stale_rate"] - 1 / 3) < 1e-9  # 1 stale of the 3 items that have stale facts
    assert s["abstention_precision"] == 0.5 and s["abstention_recall"] == 1.0
    assert s["format_compliance"] == 1.0


def test_story_decides_claims_by_paired_comparisons():
    import pandas as pd

    from ragft import evaluation

    rows = []
    for i in range(30):  # rag right on every changed question, base on none: a clear, paired win
        for arm, correct in (("rag", True), ("base", False)):
            rows.append({"arm": arm, "id": f"removed:x{i}", "kind": "removed", "correct": correct, "compliant": False,
                         "abstained": False})
    claims = {c["claim"]: c for c in evaluation.story(pd.DataFrame(rows))}
    win = claims[evaluation.CLAIMS[0][0]]
    assert win["verdict"] == "supported" and win["n"] == 30 and win["diff"] == 1.0 and win["diff_ci"] == [1.0, 1.0]
    assert claims[evaluation.CLAIMS[2][0]]["verdict"] == "not tested"  # no fine-tuned arm in these rows
    few = pd.DataFrame([r for r in rows if r["id"] in ("removed:x0", "removed:x1")])
    assert {c["verdict"] for c in evaluation.story(few) if c["n"]} == {"not separable at this n"}
    # a claim of the caller's own (notebook 05's systems over models): the weaker arm loses, so "contradicted"
    own = evaluation.story(pd.DataFrame(rows), claims=[("base beats rag", "base", "rag", "correct", "all", None)])
    assert [(c["claim"], c["verdict"], c["n"]) for c in own] == [("base beats rag", "contradicted", 30)]


def test_arms_table_carries_intervals_and_reading_rate():
    import pandas as pd

    from ragft import evaluation

    rows = [{"arm": "rag", "id": f"q{i}", "kind": "removed", "correct": i < 6, "fact_ok": i < 6, "stale": False,
             "abstained": False, "compliant": True, "grounded": None, "gold_retrieved": i < 8, "latency_s": 1.0,
             "cached": False} for i in range(10)]
    m = evaluation.summarize_arms(pd.DataFrame(rows), metrics=evaluation.ARMS_TABLE).loc["rag"]
    assert m["accuracy"] == 0.6 and m["reading_rate"] == 0.75  # 6 right of the 8 with the gold passage in the prompt
    assert round(m["accuracy_low"], 3) == 0.313 and round(m["accuracy_high"], 3) == 0.832  # Wilson, 6 of 10


def test_one_release_accuracy_and_accuracy_by_kind():
    """The RAFT goal's denominator: answerable kinds one release's document answers (not changed_param, not unanswerable)."""
    import pandas as pd

    from ragft import evaluation

    kinds = ["removed", "added", "unchanged", "changed_param", "changed_param", "unanswerable"]
    right = [True, True, False, False, False, True]
    rows = [{"arm": arm, "id": f"{k}:{i}", "kind": k, "correct": c if arm == "raft" else not c, "fact_ok": c,
             "stale": False, "abstained": k == "unanswerable", "compliant": True, "grounded": None,
             "gold_retrieved": True, "latency_s": 1.0, "cached": False}
            for arm in ("rag", "raft") for i, (k, c) in enumerate(zip(kinds, right, strict=True))]
    m = evaluation.summarize_arms(pd.DataFrame(rows), metrics=evaluation.ARMS_TABLE).loc["raft"]
    assert m["one_release_accuracy"] == 2 / 3 and m["answerable_accuracy"] == 2 / 5 and m["accuracy"] == 0.5
    table = evaluation.accuracy_by_kind(pd.DataFrame(rows), order=["raft", "rag"])
    assert list(table.index) == ["raft", "rag"]
    assert list(table.columns) == ["removed (n=1)", "added (n=1)", "changed_param (n=2)", "unchanged (n=1)",
                                   "unanswerable (n=1)"]
    assert table.loc["raft"].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0] and table.loc["rag", "changed_param (n=2)"] == 1.0


def test_accepted_facts_take_any_one_of_several_right_answers():
    gained = QAItem(id="changed_param:var+mean", kind="changed_param", split="dev", gold_doc_ids={},
                    question="Name a parameter that `np.var` accepts in NumPy 2.x but not in NumPy 1.26.",
                    required_facts=["mean"], stale_facts=[], accepted_facts=["correction", "mean"])
    assert ev.score_answer(gained, render("`np.var` accepts `correction`.", "", ["numpy.var"]))["correct"]
    assert ev.score_answer(gained, render("`np.var` accepts `mean`.", "", ["numpy.var"]))["correct"]
    assert not ev.score_answer(gained, render("`np.var` accepts `axis`.", "", ["numpy.var"]))["correct"]
    plain = item(kind="changed_param", required=("mean",), stale=())
    assert not ev.score_answer(plain, render("`np.var` accepts `correction`.", "", ["numpy.var"]))["correct"]


def test_strict_and_lenient_grades_side_by_side():
    """`correct` reads the Answer: sentence; `lenient_correct` (the earlier grade) reads the whole reply."""
    on_source_only = render("Use the replacement.", "x = 1", ["numpy.float64"])
    row = ev.score_answer(item(), on_source_only)
    assert (row["correct"], row["lenient_correct"], row["fact_ok"]) == (False, True, False)
    s = ev.summarize([row, ev.score_answer(item(), render("Use np.float64 instead.", "np.float64(1)", ["a"]))])
    assert s["accuracy"] == 0.5 and s["lenient_accuracy"] == 1.0
