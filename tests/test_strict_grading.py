"""Strict grading (issue 34, item 1): the `Answer:` sentence is the answer; the code block and the `Source:` line are
scored on their own. A table of adversarial replies, each with its strict AND its lenient (the earlier) grade."""

import pytest

from ragft import evaluation as ev
from ragft.core import house
from ragft.core.house import ABSTAIN_ANSWER, render
from ragft.core.paths import CURRENT_VERSION
from ragft.data.datasets import QAItem, load_qa


def qa(id, kind, question, required, stale=(), accepted=(), gold=(), reference=""):
    """A QA item as in data/qa/numpy_migration.jsonl (fields copied from the real items of the same id)."""
    return QAItem(id=id, kind=kind, question=question, required_facts=list(required), stale_facts=list(stale),
                  gold_doc_ids={CURRENT_VERSION: list(gold)}, split="dev", reference=reference,
                  accepted_facts=list(accepted))


TRAPZ = qa("removed:trapz", "removed", "`np.trapz` is gone in NumPy 2.4.6. What should I call instead?", ["np.trapezoid"],
           ["np.trapz"], gold=["numpy.trapezoid"],
           reference="`np.trapz` was deprecated in NumPy 2.0 and removed later; use `np.trapezoid`.")
MAT = qa("removed:mat", "removed", "`np.mat` raises an AttributeError in NumPy 2.4. What is the replacement?",
         ["np.asmatrix"], ["np.mat"], gold=["removed:numpy.mat"],
         reference="`np.mat` was removed in NumPy 2.0: Use `np.asmatrix` instead.")
COMMON = qa("removed:find_common_type", "removed",
            "My code uses `np.find_common_type`, which fails under NumPy 2.x. What should I use instead?",
            ["np.promote_types"], ["np.find_common_type"], gold=["removed:numpy.find_common_type"],
            reference="`np.find_common_type` was removed in NumPy 2.0: Use `numpy.promote_types` or "
                      "`numpy.result_type` instead.")
EYE = qa("changed_param:eye+device", "changed_param",
         "Which keyword argument did `np.eye` gain in NumPy 2.x that it did not have in NumPy 1.26?", ["device"],
         gold=["numpy.eye"], reference="`np.eye` gained the `device` parameter in NumPy 2.x.")
VAR = qa("changed_param:var+mean", "changed_param", "Name a parameter that `np.var` accepts in NumPy 2.x but not in "
         "NumPy 1.26.", ["mean"], accepted=["correction", "mean"], gold=["numpy.var"])
CORRCOEF = qa("changed_param:corrcoef-ddof", "changed_param",
              "Which parameter of `np.corrcoef` from NumPy 1.26 no longer exists in NumPy 2.x?", ["ddof"],
              accepted=["bias", "ddof"], gold=["numpy.corrcoef"])
ASTYPE = qa("added:astype", "added", 'Which NumPy 2.x function does the following: "Copies an array to a specified '
            'data type."', ["np.astype"], gold=["numpy.astype"])
ARGMAX = qa("unchanged:argmax", "unchanged", 'Which NumPy function does the following: "Returns the indices of the '
            'maximum values along an axis."', ["np.argmax"], gold=["numpy.argmax"])
INVENTED = qa("unanswerable:add_chkfinite", "unanswerable", "What does `np.add_chkfinite` return, and how do I call it?",
              [], reference=ABSTAIN_ANSWER)

SIGNATURE = "np.eye(N, M=None, k=0, dtype=float, order='C', *, device=None, like=None)"
# (item, reply, strict grade, lenient grade, why)
CASES = [
    (TRAPZ, render("There is no function `np.trapz` any more; use `np.trapezoid`.", "np.trapezoid([1, 2])",
                   ["numpy.trapezoid"]), True, False, "'X no longer exists; use Y' is an answer, not an abstention"),
    (MAT, render("`np.mat` does not exist in NumPy anymore; use `np.asmatrix`.", "np.asmatrix([[1, 2]])",
                 ["removed:numpy.mat"]), True, False, "the same, in the words the issue quotes"),
    (EYE, render("`np.eye` gained `axis` in NumPy 2.x.", SIGNATURE, ["numpy.eye"]), False, True,
     "the sentence says axis; the code only copies the 2.4.6 signature"),
    (TRAPZ, render("Use the new integration function.", "np.trapezoid(y)\nnp.cumulative_sum(y)\nnp.integrate(y)",
                   ["numpy.trapezoid"]), False, True, "a code block listing several candidates"),
    (TRAPZ, render("Use `np.trapezoid`.", "np.trapz([1, 2, 3])", ["numpy.trapezoid"]), False, True,
     "the code calls the removed name"),
    (TRAPZ, render("Use `np.trapezoid`.", "from numpy import trapz", ["numpy.trapezoid"]), False, True,
     "the code imports the removed name"),
    (TRAPZ, render("Use the function named in the source.", "x = [1, 2]", ["numpy.trapezoid"]), False, True,
     "the right name on the Source line only"),
    (ARGMAX, render("Use the function below.", "np.argmax(a)", ["numpy.argmax"]), False, True,
     "the fact only in the code"),
    (TRAPZ, render(TRAPZ.reference, 'hasattr(np, "trapz")  # False in NumPy 2.x', ["numpy.trapezoid"]), True, True,
     "the reference answer; the removed name in a string or comment is not a call"),
    (TRAPZ, render("Use `np.trapezoid` or `np.cumsum`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"]), False, True,
     "a hedge: the right name or a wrong one"),
    (COMMON, render("Use `np.promote_types` or `np.result_type` instead.", "np.promote_types('i4', 'f8')",
                    ["removed:numpy.find_common_type"]), True, True, "two names that NumPy's own advice offers"),
    (TRAPZ, render("`np.trapezoid` was removed; use `np.trapz` instead.", "np.trapz([1, 2])", ["numpy.trapz"]),
     False, True, "the names swapped: the stale one recommended"),
    (TRAPZ, render("Use `np.trapz` instead of `np.trapezoid`.", "x = 1", ["numpy.trapz"]), False, True,
     "the stale name recommended, the right one dismissed"),
    (MAT, render("`np.mat` still works: call `np.mat` or `np.asmatrix`.", "np.asmatrix([[1]])", ["numpy.mat"]),
     False, True, "the stale name still offered"),
    (TRAPZ, render("Replace `np.trapz` with `np.trapezoid`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"]), True, True,
     "replace X with Y"),
    (TRAPZ, render("`np.trapezoid` replaces the removed `np.trapz`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"]),
     True, True, "the removed word describes the next name, not this one"),
    (TRAPZ, render("Use `np.trapezoid`, not `np.trapz`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"]), True, True,
     "Y, not X"),
    (TRAPZ, render("Migrate from `np.trapz` to `np.trapezoid`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"]),
     True, True, "from X to Y"),
    (TRAPZ, "You should call np.trapezoid now.", True, True, "no house format: the prose is the claim"),
    (TRAPZ, "Here is the fix:\n```python\nnp.trapezoid(y)\n```", False, True, "no house format, the fact only in code"),
    (TRAPZ, ABSTAIN_ANSWER, False, False, "an abstention on an answerable question"),
    (ASTYPE, render("`np.astype` does not exist in NumPy 2.x.", "x = 1", ["numpy.astype"]), False, True,
     "the right name, said not to exist"),
    (EYE, render("`np.eye` gained `device` or `axis`.", "np.eye(2, device='cpu')", ["numpy.eye"]), False, True,
     "a hedge between parameters"),
    (VAR, render("`np.var` accepts `correction` or `mean`.", "np.var([1, 2], mean=1.5)", ["numpy.var"]), True, True,
     "two accepted parameters"),
    (CORRCOEF, render("`np.corrcoef` lost its `ddof` parameter in NumPy 2.x.", "np.corrcoef([1, 2], [2, 1])",
                      ["numpy.corrcoef"]), True, True, "a lost parameter is named as gone, and that is the fact"),
    (ARGMAX, render("`np.argmax`: Returns the indices of the maximum values along an axis.", "np.argmax([1, 3])",
                    ["numpy.argmax"]), True, True, "a plain right answer"),
    (INVENTED, ABSTAIN_ANSWER, True, True, "the fixed reply"),
    (INVENTED, "Answer: That function is not available in NumPy.\nSource: none", True, True,
     "a decline in the model's own words that recommends no API"),
    (INVENTED, render("`np.add_chkfinite` does not exist in NumPy; use `np.add` with `np.isfinite` instead.",
                      "np.add(a, b)", ["numpy.add"]), False, True, "a decline that invents a fix is an answer"),
    (INVENTED, render("`np.add_chkfinite(a, b)` adds two arrays and checks for NaN.", "np.add_chkfinite(a, b)",
                      ["numpy.add"]), False, False, "an invented answer"),
]


@pytest.mark.parametrize(("item", "reply", "strict", "lenient", "why"), CASES, ids=[c[4] for c in CASES])
def test_adversarial_replies(item, reply, strict, lenient, why):
    row = ev.score_answer(item, reply)
    assert (row["correct"], row["lenient_correct"]) == (strict, lenient), why


def test_the_table_covers_the_issue():
    assert len(CASES) >= 15
    assert sum(strict != lenient for _, _, strict, lenient, _ in CASES) >= 10  # the cases where the two graders disagree


def test_score_answer_keeps_its_keys_and_adds_the_new_ones():
    row = ev.score_answer(TRAPZ, CASES[0][1], passages=["numpy.trapezoid(y, x=None); numpy.trapz was removed"])
    assert set(row) == {"id", "kind", "correct", "lenient_correct", "fact_ok", "stale", "abstained", "compliant",
                        "grounded", "source_ok"}
    assert row["compliant"] and not row["abstained"] and row["stale"] is False and row["grounded"] == 1.0


def test_source_ok_is_the_source_line_alone():
    right = render("Use `np.trapezoid`.", "np.trapezoid([1, 2])", ["numpy.trapezoid"])
    old_doc = render("Use `np.trapezoid`.", "np.trapezoid([1, 2])", ["numpy.trapz"])
    assert ev.score_answer(TRAPZ, right)["source_ok"] and not ev.score_answer(TRAPZ, old_doc)["source_ok"]
    assert ev.score_answer(TRAPZ, old_doc)["correct"]  # the Source line never decides the answer
    assert ev.score_answer(INVENTED, ABSTAIN_ANSWER)["source_ok"] is None  # no gold document to cite


def test_stale_counts_calls_not_strings_or_comments():
    assert ev.stale_in_code("y = np.trapz(x)", ["np.trapz"]) and ev.stale_in_code("y = numpy.trapz(x)", ["np.trapz"])
    assert ev.stale_in_code("from numpy import trapz, sum", ["np.trapz"])
    assert not ev.stale_in_code('hasattr(np, "trapz")  # np.trapz is gone', ["np.trapz"])
    assert not ev.stale_in_code("np.trapezoid(x)", ["np.trapz"])


def test_the_earlier_grade_is_kept_byte_for_byte():
    """lenient_correct is the grade before strict grading: a fact anywhere, a decline in any words."""
    for item, reply, *_ in CASES:
        parsed = house.parse(reply)
        answerable = item.kind != "unanswerable"
        before = (answerable and not parsed.declined and ev.facts_present(item, reply)) if answerable else parsed.declined
        assert ev.score_answer(item, reply)["lenient_correct"] == before


def test_every_reference_answer_is_right_under_both_graders():
    """The QA set's own reference answers, rendered in the house format, pass the strict grader (no false alarms)."""
    items = load_qa(None)
    for it in items:
        if it.kind == "unanswerable":
            reply = it.reference
        else:
            code = f'hasattr(np, "{it.stale_facts[0][3:]}")' if it.kind == "removed" else "np.ndarray"
            reply = render(it.reference, code, sorted(it.gold(CURRENT_VERSION)) or ["none"])
        row = ev.score_answer(it, reply)
        assert row["correct"] and row["lenient_correct"], (it.id, it.reference)


def test_summaries_carry_lenient_accuracy_code_runs_and_sources():
    import pandas as pd

    rows = [{**ev.score_answer(item, reply), "arm": "a", "code_runs": i % 2 == 0}
            for i, (item, reply, *_) in enumerate(CASES)]
    s = ev.summarize(rows)
    assert s["accuracy"] == sum(c[2] for c in CASES) / len(CASES)
    assert s["lenient_accuracy"] == sum(c[3] for c in CASES) / len(CASES)
    assert s["code_runs"] == sum(i % 2 == 0 for i in range(len(CASES))) / len(CASES)
    m = ev.summarize_arms(pd.DataFrame(rows), metrics=ev.ARMS_TABLE).loc["a"]
    assert m["lenient_accuracy"] == s["lenient_accuracy"] and m["code_runs"] == s["code_runs"]
    assert m["lenient_accuracy_low"] < m["lenient_accuracy"] < m["lenient_accuracy_high"]
    assert {"lenient_accuracy", "code_runs", "source_accuracy"} <= set(ev.ARM_METRICS)
    assert pd.isna(ev.summarize([{k: v for k, v in rows[0].items() if k != "code_runs"}])["code_runs"])
