from ragft.core import house


def test_rendered_answer_is_compliant_and_parsed_back():
    text = house.render("Use `np.float64` instead.", "x = np.float64(1.5)", ["removed:numpy.float_", "numpy.float64"])
    a = house.parse(text)
    assert a.compliant, a.problems
    assert a.sentence == "Use `np.float64` instead."
    assert a.code == "x = np.float64(1.5)"
    assert a.sources == ["removed:numpy.float_", "numpy.float64"]
    assert not a.abstained


def test_fixed_abstention_is_compliant_and_detected():
    a = house.parse(house.ABSTAIN_ANSWER)
    assert a.abstained and a.compliant and a.sources == []


def test_each_broken_rule_is_named():
    cases = {
        "np.float64 is fine.": "no 'Answer:' line",
        "Answer: Use np.float64. It is the same.\n```python\nx\n```\nSource: a": "answer is not one sentence",
        "Answer: Use np.float64.\nSource: a": "no fenced code example",
        "Answer: Use np.float64.\n```python\nx\n```": "no 'Source:' line",
        "Answer: Use np.float64.\n```python\nx\n```\nSource: a\nThanks!": "text after the 'Source:' line",
        "Answer: I don't know.\nSource: none": "abstention differs from the fixed reply",
        "Hello\nAnswer: Use np.float64.\n```python\nx\n```\nSource: a": "text before 'Answer:'",
    }
    for text, problem in cases.items():
        a = house.parse(text)
        assert not a.compliant
        assert problem in a.problems, (text, a.problems)


def test_dotted_names_do_not_split_a_sentence():
    assert house.parse(house.render("Call np.linalg.norm with ord=2.5 for this.", "np.linalg.norm(x)", ["numpy.linalg.norm"])).compliant


def test_compliance_rate():
    assert house.compliance_rate([house.ABSTAIN_ANSWER, "hi"]) == 0.5


def test_an_answer_about_a_release_is_not_an_abstention():
    gained = "`np.eye` gained a parameter named `device` that was not available in NumPy 1.26."
    lost = "The `bias` parameter of `np.corrcoef` does not exist in NumPy 2.x."
    assert not house.parse(gained).abstained and not house.parse(lost).abstained
    for declined in ("That function is not available in NumPy.", "`np.frob` does not exist in numpy",
                     "It is not documented in NumPy, sorry."):
        assert house.parse(declined).abstained, declined


def test_a_decline_that_names_the_fix_is_an_answer():
    """Issue 34: "X no longer exists; use Y" answers the question; an abstention recommends no API. `declined` keeps
    the looser signal (any decline) that lenient grading reads."""
    for answer in ("There is no function `np.trapz` any more; use `np.trapezoid`.",
                   "`np.mat` does not exist in NumPy anymore; use `np.asmatrix`.",
                   "That function is not available in NumPy; `np.add` works instead."):
        a = house.parse(house.render(answer, "np.ones(2)", ["numpy.ones"]))
        assert a.declined and not a.abstained and a.compliant, (answer, a.problems)
    for declined in (house.ABSTAIN_ANSWER, "Answer: I don't know how to use `np.frob`.\nSource: none",
                     "Answer: I cannot find it; try the documentation.\nSource: none"):
        a = house.parse(declined)
        assert a.abstained and a.declined, declined
    assert not house.recommends_api(house.ABSTAIN_SENTENCE)  # the docs URL names no API
