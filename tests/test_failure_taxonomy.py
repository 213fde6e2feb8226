"""The failure taxonomy of retrieval arms: each label on a constructed answer to a real QA item, and the per-arm table."""

import pandas as pd
import pytest

from ragft.core import house
from ragft.data.datasets import load_qa
from ragft.evaluation.failures import FAILURE_KINDS, failure_kind, failure_table

RIGHT = house.render("`np.float_` was removed in NumPy 2.0; use `np.float64` instead.", "x = np.float64(1.5)",
                     ["removed:numpy.float_"])
WRONG_NAME = house.render("`np.float_` was removed in NumPy 2.0; use `np.float32` instead.", "x = np.float32(1.5)",
                          ["removed:numpy.float_"])
STALE = house.render("Use `np.float_` as before.", "x = np.float_(1.5)", ["removed:numpy.float_"])
BROKEN = "float float float float"
GOLD, OTHER = "removed:numpy.float_", "numpy.floating"


@pytest.fixture(scope="module")
def items():
    qa = {it.id: it for it in load_qa(split=None)}
    return qa["removed:float_"], next(it for it in qa.values() if it.kind == "unanswerable")


def test_the_fixture_item_is_what_the_cases_assume(items):
    float_, _ = items
    assert float_.required_facts == ["np.float64"] and float_.stale_facts == ["np.float_"]
    assert GOLD in float_.gold("2.4.6")


def test_each_label(items):
    float_, fake = items
    assert failure_kind(float_, RIGHT, [OTHER, GOLD]) is None
    assert failure_kind(float_, WRONG_NAME, [OTHER]) == "gold not retrieved"
    assert failure_kind(float_, WRONG_NAME, [OTHER, GOLD], in_prompt=[OTHER]) == "gold cut by the token budget"
    assert failure_kind(float_, house.ABSTAIN_ANSWER, [GOLD]) == "gold in prompt, abstained"
    assert failure_kind(float_, STALE, [GOLD]) == "stale name used"
    assert failure_kind(float_, BROKEN, [GOLD]) == "format broken"
    assert failure_kind(float_, WRONG_NAME, [GOLD]) == "gold in prompt, wrong name"
    assert failure_kind(fake, RIGHT, [OTHER]) == "should have abstained"
    assert failure_kind(fake, house.ABSTAIN_ANSWER, []) is None


def test_retrieval_is_blamed_before_reading(items):
    """A stale or broken answer without the gold passage in the prompt is a retrieval failure first."""
    float_, _ = items
    assert failure_kind(float_, STALE, [OTHER]) == "gold not retrieved"
    assert failure_kind(float_, BROKEN, [GOLD], in_prompt=[]) == "gold cut by the token budget"


def test_gold_of_the_asked_version(items):
    float_, _ = items
    # in 1.26.4 the gold document is numpy.float_ itself (the removal notice does not exist yet)
    assert failure_kind(float_, WRONG_NAME, ["numpy.float_"], version="1.26.4") == "gold in prompt, wrong name"
    assert failure_kind(float_, WRONG_NAME, ["numpy.float_"], version="2.4.6") == "gold not retrieved"


def test_failure_table_counts_per_arm(items):
    float_, fake = items
    df = pd.DataFrame([
        {"arm": "rag", "id": float_.id, "answer": WRONG_NAME, "doc_ids": [GOLD]},
        {"arm": "rag", "id": fake.id, "answer": RIGHT, "doc_ids": [OTHER]},
        {"arm": "raft", "id": float_.id, "answer": RIGHT, "doc_ids": [GOLD]},
        {"arm": "raft", "id": fake.id, "answer": house.ABSTAIN_ANSWER, "doc_ids": []},
        {"arm": "budget", "id": float_.id, "answer": BROKEN, "sources": [OTHER], "retrieved": [OTHER, GOLD]},
    ])
    t = failure_table(df, list(items))
    assert list(t.columns) == list(FAILURE_KINDS)
    assert t.loc["rag"].to_dict() == {**dict.fromkeys(FAILURE_KINDS, 0), "gold in prompt, wrong name": 1,
                                      "should have abstained": 1}
    assert t.loc["raft"].sum() == 0
    assert t.loc["budget", "gold cut by the token budget"] == 1 and t.loc["budget"].sum() == 1
