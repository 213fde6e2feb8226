"""The comparison dashboard's callbacks, headless: setting a control's .value or clicking runs them synchronously."""

import pytest
from conftest import FakePool

from ragft import systems as sy
from ragft.core import house
from ragft.data.datasets import QAItem
from ragft.retrieval.index import Hit
from ragft.ui.widgets import ComparisonDashboard, comparison_dashboard

pytest.importorskip("ipywidgets")


class FakeRetriever:
    def __init__(self, label, score=0.8):
        self.label, self.score = label, score

    def search(self, query, top_k=5, threshold=None):
        hits = [Hit(f"numpy.{self.label}{i}", f"numpy.{self.label}{i}#0", self.score - i / 10, f"passage {i}", i)
                for i in range(top_k)]
        return [h for h in hits if threshold is None or h.score >= threshold]


def _item(i):
    return QAItem(id=f"removed:thing{i}", kind="removed", question=f"What replaces np.thing{i}?",
                  required_facts=["np.float64"], stale_facts=[f"np.thing{i}"], gold_doc_ids={"2.4.6": []}, split="test")


@pytest.fixture
def dash(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    systems = sy.make_arms(FakeRetriever("dense"), adapter, adapter, top_k=3)
    retrievers = {"dense": FakeRetriever("dense"), "bm25": FakeRetriever("bm25", score=0.45)}
    return comparison_dashboard(systems, [_item(1), _item(2)], retrievers, pool=FakePool(lambda s: house.render(f"{s.name} says use np.float64.", "np.float64(1)", ["numpy.float64"])),
                                cache=sy.AnswerCache(tmp_path / "cache"))


def cards(d):
    return d.panel.value.count("class='ragft-card'")


def test_first_question_is_answered_by_every_arm(dash):
    assert cards(dash) == len(sy.ARMS)
    assert "removed:thing1" in dash.panel.value and "What replaces np.thing1?" in dash.panel.value
    assert list(dash.last["arm"]) == list(sy.ARMS)
    assert "5 arm(s)" in dash.status.value


def test_picking_another_question_updates_the_panel(dash):
    before = dash.panel.value
    dash.question.value = dash.question.options[1][1]
    assert dash.panel.value != before and "removed:thing2" in dash.panel.value
    assert set(dash.last["id"]) == {"removed:thing2"}


def test_typed_question_overrides_and_picking_clears_it(dash):
    dash.typed.value = "How do I sort an array?"
    assert "typed question" in dash.panel.value and set(dash.last["kind"]) == {"typed"}
    dash.question.value = dash.question.options[1][1]
    assert dash.typed.value == "" and set(dash.last["id"]) == {"removed:thing2"}


def test_unchecking_arms_removes_their_cards(dash):
    dash.arms["raft"].value = False
    dash.arms["hybrid"].value = False
    assert cards(dash) == 3 and "data-arm='raft'" not in dash.panel.value
    for box in dash.arms.values():
        box.value = False
    assert "at least one arm" in dash.panel.value


def test_retrieval_knobs_reach_only_retrieving_arms(dash):
    dash.top_k.value = 1
    rows = dash.last.set_index("arm")
    assert len(rows.loc["rag", "doc_ids"]) == 1 and rows.loc["base", "doc_ids"] == []
    dash.mode.value = "bm25"
    assert dash.last.set_index("arm").loc["hybrid", "doc_ids"] == ["numpy.bm250"]
    assert "retrieval bm25" in dash.panel.value


def test_threshold_only_applies_when_enabled(dash):
    dash.mode.value = "bm25"  # top score 0.45
    dash.threshold.value = 0.5  # not enabled yet: nothing changes
    assert not dash.last["gated"].any()
    dash.use_threshold.value = True
    rows = dash.last.set_index("arm")
    assert rows.loc["rag", "gated"] and rows.loc["rag", "answer"] == house.ABSTAIN_ANSWER
    assert not rows.loc["base", "gated"]
    assert "no passage above the threshold" in dash.panel.value


def test_name_check_stops_a_made_up_name_in_retrieving_arms_only(dash):
    dash.typed.value = "What replaces `np.frobnicate`?"  # the fake retriever's passages are numpy.dense0..2
    rows = dash.last.set_index("arm")
    assert not rows["gated"].any()  # off by default: every arm generates
    dash.name_check.value = True
    rows = dash.last.set_index("arm")
    assert list(rows.loc[["rag", "hybrid", "raft"], "gate"]) == ["name"] * 3
    assert rows.loc["rag", "answer"] == house.ABSTAIN_ANSWER and rows.loc["base", "gate"] == ""
    assert "no passage documents the API the question names" in dash.panel.value and "name check" in dash.panel.value
    dash.typed.value = "What replaces `np.dense1`?"  # documented by the second passage: answered
    assert not dash.last["gated"].any()


def test_adapters_off_runs_tuned_arms_on_the_base_model(dash):
    n = len(dash.pool.calls)
    dash.adapter.value = False
    new = dash.pool.calls[n:]  # raft without its adapter IS hybrid without its adapter: one prompt, generated once
    assert len(new) == 2 and all(c["adapter"] is None for c in new)
    assert "adapter" not in dash.panel.value.split("data-arm='hybrid'")[1].split("</h4>")[1][:80]


def test_ask_button_and_cache(dash):
    n = len(dash.pool.calls)
    dash.button.click()  # same question, same knobs: every answer comes from the cache
    assert len(dash.pool.calls) == n and dash.last["cached"].all()
    assert "5 answer(s) from the cache" in dash.status.value


def test_errors_show_in_the_panel_not_as_tracebacks(dash):
    dash.typed.value = "   "  # blank typed text falls back to the picked item
    assert "removed:thing1" in dash.panel.value
    with pytest.raises(ValueError, match="at least one system"):
        ComparisonDashboard([], [_item(1)])
