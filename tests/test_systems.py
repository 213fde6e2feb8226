import json
from dataclasses import replace

import pandas as pd
import pytest
from conftest import FakePool

from ragft import evaluation, generation
from ragft import systems as sy
from ragft.core import house, profiles
from ragft.core.house import SYSTEM_PROMPT as HOUSE_SYSTEM_PROMPT
from ragft.data.corpus import CHANGE_NOTES_SECTION, Document
from ragft.data.datasets import QAItem, load_qa
from ragft.generation import models
from ragft.generation.decoding import Generation
from ragft.retrieval.index import Hit
from ragft.systems import draws as system_draws
from ragft.training import draws as training_draws
from ragft.training import finetune
from ragft.training import pairs as pr
from ragft.ui import widgets


# --- helpers ----------------------------------------------------------------------------------------------------------
class FakeRetriever:
    """Returns fixed hits (cosine-like scores) whatever the query; threshold filters like the real ones."""

    def __init__(self, hits):
        self.hits = hits
        self.calls = 0

    def search(self, query, top_k=5, threshold=None):
        self.calls += 1
        hits = [h for h in self.hits if threshold is None or h.score >= threshold]
        return hits[:top_k]


def item(kind="removed", id_="removed:float_"):
    facts = {"removed": (["np.float64"], ["np.float_"]), "unanswerable": ([], [])}[kind]
    return QAItem(id=id_, kind=kind, question=f"question about {id_}?", required_facts=facts[0], stale_facts=facts[1],
                  gold_doc_ids={"2.4.6": ["removed:numpy.float_"] if kind != "unanswerable" else []}, split="test")


HITS = [Hit("removed:numpy.float_", "removed:numpy.float_#0", 0.8, "numpy.float_ was removed. Use `np.float64` instead.", 0),
        Hit("numpy.float64", "numpy.float64#0", 0.4, "numpy.float64(x)\n\nDouble-precision floating-point number type.", 1)]


@pytest.fixture
def adapter_dir(tmp_path):
    d = tmp_path / "adapter"
    d.mkdir()
    (d / "adapter_config.json").write_text(json.dumps({"r": 4}))
    (d / "adapter_model.safetensors").write_bytes(b"weights-1")
    return d


# --- systems and prompts ----------------------------------------------------------------------------------------------
def test_every_arm_is_constructible_and_follows_the_prompt_rule(adapter_dir):
    arms = sy.make_arms(FakeRetriever(HITS), adapter_dir, adapter_dir, top_k=2, threshold=0.5)
    assert [a.name for a in arms] == list(sy.ARMS)
    by = {a.name: a for a in arms}
    assert by["base"].retriever is None and by["base"].adapter is None and by["base"].prompt == "house"
    assert by["rag"].retriever is not None and by["rag"].adapter is None and by["rag"].prompt == "house"
    assert by["fine-tuned"].retriever is None and by["fine-tuned"].adapter and by["fine-tuned"].prompt == "none"
    assert by["hybrid"].retriever is not None and by["hybrid"].adapter and by["hybrid"].prompt == "none"
    assert by["raft"].threshold == 0.5 and by["raft"].top_k == 2
    assert [d["retrieval"] for d in map(sy.System.describe, arms)] == ["none", "FakeRetriever", "none",
                                                                           "FakeRetriever", "FakeRetriever"]
    assert all(a.contrast == 0 for a in arms)  # off unless asked for
    tuned = sy.TunedAdapters(adapter_dir, adapter_dir, {}, {}, [], 0.0)
    arms = {a.name: a for a in sy.arms_for(FakeRetriever(HITS), tuned, sy.ArmSettings())}
    # the settings of notebooks 05 and 06: only the RAFT arm contrasts (chosen on dev; RAG lost with it)
    assert arms["raft"].contrast == sy.AnswerSettings.raft_contrast > 0
    assert all(a.contrast == 0 for n, a in arms.items() if n != "raft")
    assert arms["raft"].describe()["contrast"] == sy.AnswerSettings.raft_contrast and arms["base"].describe()["contrast"] is None


def test_arms_whose_parts_are_missing_are_left_out():
    assert [a.name for a in sy.make_arms()] == ["base"]
    assert [a.name for a in sy.make_arms(FakeRetriever(HITS))] == ["base", "rag"]


def test_system_refuses_bad_parts(tmp_path):
    with pytest.raises(ValueError, match="prompt"):
        sy.System("x", prompt="shout")
    with pytest.raises(FileNotFoundError, match="no adapter"):
        sy.System("x", adapter=str(tmp_path))
    with pytest.raises(KeyError, match="unknown model"):
        sy.System("x", model="gpt-17")
    with pytest.raises(ValueError, match="top_k"):
        sy.System("x", top_k=0)


def test_context_message_is_notebook_03s_layout_with_cut_passages():
    from ragft.generation.decoding import passage_block, user_message

    msg = generation.context_message("What replaces np.float_?", HITS, passage_chars=None)
    assert msg == user_message("What replaces np.float_?", [passage_block(i, h) for i, h in enumerate(HITS, 1)])
    assert 'doc_id="removed:numpy.float_"' in msg and 'n=2 doc_id="numpy.float64"' in msg
    assert msg.endswith("Question: What replaces np.float_?")
    short = generation.context_message("q?", HITS, passage_chars=20)
    assert "numpy.float_ was rem ..." in short and "instead" not in short
    assert generation.context_message("q?", []) == "q?"


def test_cut_passage_keeps_short_text_and_cuts_long_text():
    assert generation.cut_passage("short", 10) == "short"
    long = "line one is here\n" * 20
    cut = generation.cut_passage(long, 100)
    assert len(cut) <= 104 and cut.endswith(" ...") and long.startswith(cut[:-4])
    assert generation.cut_passage(long, None) == long


def test_system_messages_tell_untuned_models_and_not_tuned_ones(adapter_dir):
    from ragft.generation.decoding import RAG_SYSTEM_PROMPT

    rag = sy.System("rag", retriever=FakeRetriever(HITS))
    tuned = sy.System("hybrid", adapter=str(adapter_dir), retriever=FakeRetriever(HITS), prompt="none")
    m1 = sy.system_messages(rag, "q?", HITS)
    m2 = sy.system_messages(tuned, "q?", HITS)
    assert m1[0] == {"role": "system", "content": RAG_SYSTEM_PROMPT} and "<passage n=1" in m1[1]["content"]
    assert len(m2) == 1 and m2[0]["role"] == "user" and m2[0]["content"] == m1[1]["content"]
    base = sy.system_messages(sy.System("base"), "q?", None)
    assert base == [{"role": "system", "content": HOUSE_SYSTEM_PROMPT}, {"role": "user", "content": "q?"}]


def test_system_messages_show_the_best_passage_last_unless_told_otherwise():
    last = sy.system_messages(sy.System("rag", retriever=FakeRetriever(HITS)), "q?", HITS)[-1]["content"]
    first = sy.system_messages(sy.System("rag", retriever=FakeRetriever(HITS), passage_order="best_first"), "q?",
                               HITS)[-1]["content"]
    best, other = HITS[0].doc_id, HITS[1].doc_id
    assert last.index(f'doc_id="{other}"') < last.index(f'doc_id="{best}"') < last.index("Question: q?")
    assert first.index(f'<passage n=1 doc_id="{best}"') < first.index(f'doc_id="{other}"')
    with pytest.raises(ValueError, match="passage order"):
        sy.System("rag", passage_order="middle")


# --- the cache --------------------------------------------------------------------------------------------------------
def test_cache_key_changes_with_prompt_adapter_weights_and_length(adapter_dir):
    s = sy.System("ft", adapter=str(adapter_dir), prompt="none")
    msgs = sy.system_messages(s, "q?", None)
    k = sy.AnswerCache.key(s, msgs)
    assert k == sy.AnswerCache.key(s.replace(name="renamed"), msgs)  # the name does not change the answer
    assert k != sy.AnswerCache.key(s, sy.system_messages(s, "other?", None))
    assert k != sy.AnswerCache.key(s.replace(max_new_tokens=5), msgs)
    assert k != sy.AnswerCache.key(s.replace(adapter=None), msgs)
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"weights-2, retrained")
    assert k != sy.AnswerCache.key(s, msgs)


def test_compare_caches_answers_and_rerun_generates_nothing(tmp_path):
    cache = sy.AnswerCache(tmp_path / "cache")
    retriever = FakeRetriever(HITS)
    systems = [sy.System("base"), sy.System("rag", retriever=retriever, top_k=2)]
    questions = [item(), item("unanswerable", "unanswerable:foo")]
    pool = FakePool()
    df = sy.compare(questions, systems, pool=pool, cache=cache, show_progress=False)
    assert len(df) == 4 and len(pool.calls) == 4 and not df["cached"].any()
    assert list(df["arm"]) == ["base", "base", "rag", "rag"]
    rag = df[df["arm"] == "rag"].iloc[0]
    assert rag["doc_ids"] == ["removed:numpy.float_", "numpy.float64"] and rag["gold_retrieved"] == True  # noqa: E712
    assert rag["correct"] and rag["compliant"] and not rag["stale"] and rag["grounded"] == 1.0
    assert pd.isna(df[df["arm"] == "base"].iloc[0]["grounded"])  # no passages, nothing to be grounded in
    pool2 = FakePool(lambda s: "never used")
    again = sy.compare(questions, systems, pool=pool2, cache=cache, show_progress=False)
    assert pool2.calls == [] and again["cached"].all() and list(again["answer"]) == list(df["answer"])
    assert retriever.calls == 4  # retrieval is not cached: it decides the key
    assert len(cache) == 4  # one file per distinct prompt


def test_threshold_abstains_without_generating(tmp_path):
    pool = FakePool()
    s = sy.System("rag", retriever=FakeRetriever(HITS), threshold=0.9)
    df = sy.compare([item("unanswerable", "unanswerable:foo")], [s], pool=pool, cache=False, show_progress=False)
    row = df.iloc[0]
    assert pool.calls == [] and row["gated"] and row["answer"] == house.ABSTAIN_ANSWER
    assert row["correct"] and row["abstained"] and row["compliant"] and row["new_tokens"] == 0


def test_name_check_abstains_only_when_no_passage_documents_the_named_api():
    pool = FakePool()
    checked = sy.System("rag + name check", retriever=FakeRetriever(HITS), name_check=True)
    questions = ["What replaced `np.float_` in NumPy 2?",  # documented by the removal notice: answered
                 "`np.float_frobnicate` raises an AttributeError in NumPy 2.4. What is the replacement?",  # no passage
                 "Which NumPy function does the following: ...",  # names no API: the check has nothing to check
                 "Is `np.frob` the same as `np.float64`?"]  # one of its names is documented: answered
    df = sy.compare(questions, [checked, checked.replace(name="rag", name_check=False)], pool=pool, cache=False,
                    show_progress=False)
    rows = df[df["arm"] == "rag + name check"]
    assert list(rows["gate"]) == ["", "name", "", ""] and list(rows["gated"]) == [False, True, False, False]
    assert rows.iloc[1]["answer"] == house.ABSTAIN_ANSWER and rows.iloc[1]["new_tokens"] == 0
    assert not df[df["arm"] == "rag"]["gated"].any()  # the same retrieval without the check always generates
    alone = FakePool()
    sy.compare(questions, [checked], pool=alone, cache=False, show_progress=False)
    assert len(alone.calls) == 3 and not any("frobnicate" in c["user"] for c in alone.calls)  # never reached the model
    assert checked.describe()["name_check"] is True and "name_check" not in checked.replace(name_check=False).describe()


def test_threshold_gate_is_named_in_the_row():
    s = sy.System("rag", retriever=FakeRetriever(HITS), threshold=0.9, name_check=True)
    row = sy.compare(["What replaced `np.nothing`?"], [s], pool=FakePool(), cache=False, show_progress=False).iloc[0]
    assert row["gate"] == "threshold"  # nothing above the threshold decides first


def test_typed_questions_are_answered_and_format_checked_only():
    df = sy.compare(["How do I sort?"], [sy.System("base")], pool=FakePool(), cache=False, show_progress=False)
    row = df.iloc[0]
    assert row["kind"] == "typed" and pd.isna(row["correct"]) and bool(row["compliant"])
    with pytest.raises(ValueError, match="empty question"):
        sy.compare(["  "], [sy.System("base")], pool=FakePool(), cache=False, show_progress=False)


def test_compare_refuses_duplicate_names_and_no_systems():
    with pytest.raises(ValueError, match="unique"):
        sy.compare([item()], [sy.System("a"), sy.System("a")], pool=FakePool(), cache=False)
    with pytest.raises(ValueError, match="no systems"):
        sy.compare([item()], [], pool=FakePool(), cache=False)


def test_arm_metrics_and_records():
    systems = [sy.System("base"), sy.System("rag", retriever=FakeRetriever(HITS))]
    df = sy.compare([item(), item("unanswerable", "unanswerable:foo")], systems,
                        pool=FakePool(), cache=False, show_progress=False)
    m = evaluation.summarize_arms(df, metrics=evaluation.ARMS_TABLE)
    assert list(m.index) == ["base", "rag"] and set(evaluation.ARMS_TABLE) <= set(m.columns)
    assert m.loc["rag", "changed_accuracy"] == 1.0  # the removed item, answered with np.float64
    assert m.loc["rag", "abstention_recall"] == 0.0  # the canned answer never abstains
    assert m.loc["rag", "gold_retrieved"] == 1.0 and m.loc["base", "cached"] == 0.0
    recs = evaluation.records(m)
    assert recs[0]["arm"] == "base" and recs[1]["accuracy"] == 0.5
    assert all(v is None or not isinstance(v, float) or v == v for r in recs for v in r.values())  # no NaN left


def test_configure_applies_knobs_only_where_they_mean_something(adapter_dir):
    other = FakeRetriever(HITS[:1])
    arms = sy.make_arms(FakeRetriever(HITS), adapter_dir, top_k=3)
    out = {s.name: s for s in sy.configure(arms, top_k=1, threshold=0.3, retriever=other, retriever_label="bm25",
                                               adapter=False)}
    assert out["base"] == arms[0]
    assert out["rag"].top_k == 1 and out["rag"].threshold == 0.3 and out["rag"].retriever is other
    assert out["hybrid"].adapter is None and out["fine-tuned"].adapter is None
    assert out["hybrid"].describe()["retrieval"] == "bm25"


def test_answers_html_shows_every_arm_and_escapes():
    systems = [sy.System("base"), sy.System("rag", retriever=FakeRetriever(HITS))]
    df = sy.compare(["<script>x</script>?"], systems, pool=FakePool(lambda s: "<b>raw</b>"), cache=False,
                        show_progress=False)
    page = widgets.answers_html(df, systems)
    assert page.count("class='ragft-card'") == 2 and "data-arm='rag'" in page
    assert "<script>" not in page and "&lt;b&gt;raw&lt;/b&gt;" in page
    assert "removed:numpy.float_" in page  # sources of the rag arm
    assert list(df["prompt_tokens"]) == [10, 10]  # FakePool's prompt size, carried into the rows
    assert page.count("prompt 10 tokens, first token after 0.1 s") == 2  # what each prompt costs, on each card


# --- RAFT pairs and knowledge-update pairs ----------------------------------------------------------------------------
def _docs():
    texts = {
        "numpy.sort": "numpy.sort(a, axis=-1)\n\nReturn a sorted copy of an array.",
        "numpy.argsort": "numpy.argsort(a, axis=-1)\n\nReturns the indices that would sort an array.",
        "numpy.mean": "numpy.mean(a, axis=None)\n\nCompute the arithmetic mean along the specified axis.",
        "numpy.median": "numpy.median(a, axis=None)\n\nCompute the median along the specified axis.",
        "numpy.cumsum": "numpy.cumsum(a, axis=None)\n\nReturn the cumulative sum of the elements along a given axis.",
    }
    return [Document(doc_id=k, text=v, title=k) for k, v in texts.items()]


def _pairs():
    pairs = []
    for d in _docs():
        name = "np." + d.doc_id.removeprefix("numpy.")
        pairs.append({"prompt": f"What does `{name}` do?", "kind": "answer", "doc_id": d.doc_id,
                      "completion": house.render(f"`{name}`: {d.text.split(chr(10))[-1]}", f"{name}([3, 1])", [d.doc_id])})
    pairs.append({"prompt": "What does `np.frobnicate` do?", "completion": house.ABSTAIN_ANSWER, "kind": "abstain",
                  "doc_id": None})
    return pairs


def test_raft_pairs_mix_oracle_and_distractor_contexts():
    from ragft.retrieval.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    pairs = _pairs()
    out = pr.raft_pairs(pairs, retriever, pr.RaftSettings(top_k=2, p_oracle=0.5, passage_chars=None))
    assert len(out) == len(pairs)
    modes = [p["raft"] for p in out]
    assert modes[-1] == "abstain" and {"oracle", "distractors"} <= set(modes)
    for src, p in zip(pairs, out, strict=True):
        assert p["prompt"].endswith(f"Question: {src['prompt']}") and p["prompt"].count("<passage n=") == len(p["passage_ids"]) == 2
        assert len(p["passage_ids"]) <= 2
        if p["raft"] == "oracle":
            assert src["doc_id"] in p["passage_ids"] and p["completion"] == src["completion"]
        else:
            assert src["doc_id"] not in p["passage_ids"] and p["completion"] == house.ABSTAIN_ANSWER
        assert house.parse(p["completion"]).compliant
    again = pr.raft_pairs(pairs, retriever, pr.RaftSettings(top_k=2, p_oracle=0.5, passage_chars=None))
    assert again == out  # mechanical: the same pairs every time
    all_oracle = pr.raft_pairs(pairs, retriever, pr.RaftSettings(top_k=2, p_oracle=1.0))
    assert [p["raft"] for p in all_oracle].count("oracle") == len(pairs) - 1


def test_raft_pairs_insert_the_gold_passage_when_retrieval_misses_it():
    from ragft.retrieval.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    pair = {"prompt": "cumulative sum", "kind": "answer", "doc_id": "numpy.sort",
            "completion": house.render("`np.sort`: sorts.", "np.sort([2, 1])", ["numpy.sort"])}
    (out,) = pr.raft_pairs([pair], retriever, pr.RaftSettings(top_k=2, p_oracle=1.0))
    assert out["gold_retrieved"] is False and "numpy.sort" in out["passage_ids"] and out["raft"] == "oracle"


def test_demonstrations_pick_the_nearest_pair_with_its_gold_passage_and_go_before_the_question():
    from ragft.retrieval.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    demos = pr.Demonstrations(_pairs(), retriever, k=1, passage_chars=None)
    (nearest,) = demos.select("What does `np.argsort` return?")
    assert nearest["doc_id"] == "numpy.argsort" and nearest["passage_ids"] == ["numpy.argsort"]  # its gold only
    assert nearest["prompt"].endswith("Question: What does `np.argsort` do?")
    (abstain,) = demos.select("What does `np.frobnicate` return?")
    assert abstain["completion"] == house.ABSTAIN_ANSWER
    two = pr.Demonstrations(_pairs(), retriever, k=2, passage_chars=None)
    turns = two.messages("What does `np.argsort` return?")
    assert [t["role"] for t in turns] == ["user", "assistant"] * 2
    assert turns[-2]["content"] == nearest["prompt"]  # the nearest example last, next to the question
    rag = sy.System("rag", retriever=FakeRetriever(HITS))
    msgs = sy.system_messages(rag.replace(examples=two), "q?", HITS)
    plain = sy.system_messages(rag, "q?", HITS)
    assert msgs[0] == plain[0] and msgs[-1] == plain[-1] and msgs[1:-1] == two.messages("q?")
    assert sy.contrast_messages(rag.replace(examples=two, contrast=0.5), "q?")[1:-1] == two.messages("q?")
    assert sy.AnswerCache.key(rag, plain) != sy.AnswerCache.key(rag, msgs)  # the examples key the cached answer
    assert rag.replace(examples=two).describe()["examples"] == 2 and "examples" not in rag.describe()
    with pytest.raises(ValueError, match="k must be"):
        pr.Demonstrations(_pairs(), retriever, k=0)


def test_raft_settings_validate():
    with pytest.raises(ValueError, match="p_oracle"):
        pr.RaftSettings(p_oracle=1.5)
    with pytest.raises(ValueError, match="no_oracle_target"):
        pr.RaftSettings(no_oracle_target="guess")
    with pytest.raises(ValueError, match="pairs must be one of"):
        sy.TrainingSettings(pairs="mine")


def test_raft_no_oracle_target_answer_keeps_the_real_answer_as_published():
    from ragft.retrieval.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    pairs = _pairs()
    out = pr.raft_pairs(pairs, retriever, pr.RaftSettings(top_k=2, p_oracle=0.5, no_oracle_target="answer"))
    modes = [p["raft"] for p in out]
    assert "distractors" in modes and modes[-1] == "abstain"
    for src, p in zip(pairs, out, strict=True):
        if p["raft"] == "distractors":  # no gold passage, yet the target is the answer (RAFT, Zhang et al. 2024)
            assert src["doc_id"] not in p["passage_ids"] and p["completion"] == src["completion"]
    assert out[-1]["completion"] == house.ABSTAIN_ANSWER  # an unanswerable question still abstains


def test_raft_task_pairs_show_their_own_passages_both_versions_and_never_an_excluded_doc():
    from ragft.retrieval.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    changed = {"prompt": "Which parameter did `np.cumsum` gain in NumPy 2?", "kind": "changed_param",
               "doc_id": "numpy.cumsum", "completion": house.render("`np.cumsum` gained `include_initial`.",
                                                                    "np.cumsum([1, 2])", ["numpy.cumsum"]),
               "passage": "numpy.cumsum(a, axis=None, *, include_initial=False)", "version": "2.4.6",
               "old_passage": "numpy.cumsum(a, axis=None)", "old_version": "1.26.4"}
    unanswerable = {"prompt": "What does `np.frobnicate` do?", "kind": "unanswerable", "doc_id": "numpy.frobnicate",
                    "completion": house.ABSTAIN_ANSWER}
    settings = pr.RaftSettings(top_k=3, p_oracle=1.0, passage_chars=None)
    one, none = pr.raft_pairs([changed, unanswerable], retriever, settings, exclude_docs={"numpy.median"})
    assert one["raft"] == "oracle" and one["passage_ids"].count("numpy.cumsum") == 2 and len(one["passage_ids"]) == 3
    old, new = one["prompt"].index("NumPy 1.26.4:\nnumpy.cumsum(a, axis=None)"), one["prompt"].index("NumPy 2.4.6:")
    assert old < new  # both releases' signatures, the old one first
    assert none["raft"] == "abstain" and none["completion"] == house.ABSTAIN_ANSWER
    assert "passage" not in one and "old_passage" not in one  # the raw passages do not travel on
    for p in (one, none):
        assert "numpy.median" not in p["passage_ids"] and "numpy.median" not in p["prompt"]


def test_raft_changed_parameter_oracle_is_the_version_noted_entry_the_index_holds():
    from ragft.retrieval.retrievers import build_retriever

    cumsum = Document("numpy.cumsum", title="numpy.cumsum", text=(
        "numpy.cumsum(a, axis=None, *, include_initial=False)\n\nReturn the cumulative sum.\n\n"
        "Parameters\n----------\na : array_like\n    Input array.\naxis : int, optional\n    Axis.\n"
        "include_initial : bool, optional\n    Start with the initial value.\n\n    .. versionadded:: 2.1.0\n"))
    retriever = build_retriever([d for d in _docs() if d.doc_id != "numpy.cumsum"] + [cumsum], mode="bm25")
    changed = {"prompt": "Which keyword argument did `np.cumsum` gain in NumPy 2.x?", "kind": "changed_param",
               "doc_id": "numpy.cumsum", "facts": ["include_initial"],
               "completion": house.render("`np.cumsum` gained `include_initial`.", "np.cumsum([1, 2])", ["numpy.cumsum"]),
               "passage": "numpy.cumsum(a, axis=None, *, include_initial=False)", "version": "2.4.6",
               "old_passage": "numpy.cumsum(a, axis=None)", "old_version": "1.26.4"}
    settings = pr.RaftSettings(top_k=3, p_oracle=1.0, passage_chars=None)
    (noted,) = pr.raft_pairs([changed], retriever, settings)
    assert noted["raft"] == "oracle" and noted["passage_ids"].count("numpy.cumsum") == 1
    assert "numpy.cumsum | Parameters | include_initial: added in NumPy 2.1.0\ninclude_initial : bool" in noted["prompt"]
    assert "NumPy 1.26.4:" not in noted["prompt"]
    (pair_own,) = pr.raft_pairs([changed], retriever, replace(settings, entry_gold=False))
    assert pair_own["passage_ids"].count("numpy.cumsum") == 2 and "NumPy 1.26.4:\nnumpy.cumsum" in pair_own["prompt"]
    lost = dict(changed, facts=["axis"])  # no noted entry for it: the pair's own passages
    (fallback,) = pr.raft_pairs([lost], retriever, settings)
    assert "NumPy 1.26.4:\nnumpy.cumsum" in fallback["prompt"]


def test_raft_quote_then_answer_quotes_the_gold_passage_only_in_oracle_pairs():
    from ragft.retrieval.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    pairs = _pairs()
    plain = pr.raft_pairs(pairs, retriever, pr.RaftSettings(top_k=2, p_oracle=0.5, no_oracle_target="answer"))
    quoted = pr.raft_pairs(pairs, retriever, pr.RaftSettings(top_k=2, p_oracle=0.5, no_oracle_target="answer",
                                                             quote=True))
    assert [p["raft"] for p in quoted] == [p["raft"] for p in plain]  # the same mix and passages, only targets differ
    assert {"oracle", "distractors", "abstain"} <= {p["raft"] for p in quoted}
    for src, p, q in zip(pairs, plain, quoted, strict=True):
        quote, answer = house.split_quote(q["completion"])
        assert answer == p["completion"] and house.parse(answer).compliant
        if q["raft"] == "oracle":  # the line of the gold document that carries the answer, cited by its doc id
            doc = next(d for d in _docs() if d.doc_id == src["doc_id"])
            assert quote == house.render_quote(src["doc_id"], doc.text.split("\n")[-1])
        else:  # no gold passage to quote: the plain answer (or the abstention)
            assert quote == "" and q["completion"] == p["completion"]


def test_quote_for_picks_the_fact_the_pair_asks_for_in_the_right_release():
    old = pr.version_hit("numpy.cumsum", "numpy.cumsum(a, axis=None, dtype=None, out=None)\n\nCumulative sum.", "1.26.4")
    new = pr.version_hit("numpy.cumsum", "numpy.cumsum(a, axis=None, dtype=None, *, include_initial=False)\n\n"
                         "Cumulative sum.", "2.4.6")
    gained = house.render("`np.cumsum` gained the `include_initial` parameter.", "np.cumsum([1])", ["numpy.cumsum"])
    assert "include_initial=False" in pr.quote_for("What did `np.cumsum` gain?", gained, [old, new], ["include_initial"])
    lost = house.render("`np.cumsum` lost its `out` parameter.", "np.cumsum([1])", ["numpy.cumsum"])
    quote = pr.quote_for("What did `np.cumsum` lose?", lost, [old, new], ["out"])
    assert "out=None" in quote and "include_initial" not in quote  # the 1.26 signature, which still has it
    long = Hit("d", "d", 0.0, "numpy.f(" + ", ".join(f"p{i}=None" for i in range(40)) + ", needle=1)", 0, {})
    cut = pr.quote_for("?", house.render("`np.f` gained `needle`.", "np.f()", ["d"]), [long], ["needle"], max_chars=60)
    assert "needle=1" in cut and len(cut) <= 66 and cut.startswith("...")


def test_a_quote_line_is_working_not_answer():
    text = 'Quote [removed:numpy.float_]: "Use `np.float64` instead."\nAnswer: Use `np.float64`.\n```python\n' \
           'x = np.float64(1)\n```\nSource: removed:numpy.float_\n'
    assert generation.end_of_answer(text + "Answer: again") == len(text)  # generation stops after the Source line
    quote, answer = house.split_quote(text)
    assert quote.startswith("Quote [removed:numpy.float_]") and answer.startswith("Answer:")
    assert house.parse(answer).compliant and not house.parse(text).compliant  # scored without its working
    assert house.split_quote('Quote [x]: "no answer follows"') == ("", 'Quote [x]: "no answer follows"')


def test_answering_top_k_and_raft_training_passages_are_separate_settings(tmp_path):
    two, three = sy.ArmSettings(sy.RetrievalSettings(top_k=2)), sy.ArmSettings(sy.RetrievalSettings(top_k=3))
    assert two.raft() == three.raft() and two.raft().top_k == two.recipe.passages  # the training data does not move
    assert sy.ArmSettings(recipe=sy.RaftRecipe(passages=4)).raft().top_k == 4
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "adapter_config.json").write_text("{}")
    tuned = sy.TunedAdapters(sft=tmp_path / "a", raft=tmp_path / "a", sft_log={}, raft_log={}, raft_data=[], raft_build_s=0.0)
    assert {a.top_k for a in sy.arms_for(FakeRetriever(HITS), tuned, two) if a.retriever is not None} == {2}


def test_arm_settings_give_the_quoting_raft_arm_room_for_its_quote(tmp_path):
    assert sy.ArmSettings().raft_max_new_tokens == sy.ArmSettings().answer.max_new_tokens
    quoting = sy.ArmSettings(recipe=sy.RaftRecipe(quote=True))
    assert quoting.raft().quote and quoting.raft_max_new_tokens == quoting.answer.max_new_tokens + sy.QUOTE_NEW_TOKENS
    for name in ("sft", "raft"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "adapter_config.json").write_text("{}")
    adapters = sy.TunedAdapters(tmp_path / "sft", tmp_path / "raft", {}, {}, [], 0.0)
    arms = {a.name: a for a in sy.arms_for(object(), adapters, quoting)}
    assert arms["raft"].max_new_tokens == quoting.raft_max_new_tokens
    assert arms["hybrid"].max_new_tokens == quoting.answer.max_new_tokens


def test_built_in_training_sets_load_with_the_fields_raft_needs():
    from ragft.data.datasets import load_train_pairs

    for name, (path, _) in sy.TRAINING_SETS.items():
        pairs, _ = load_train_pairs(path())
        assert pairs and all(p["prompt"] and p["completion"] for p in pairs), name
    task, _ = load_train_pairs(sy.TRAINING_SETS["task"][0]())
    assert {"unanswerable", "changed_param"} <= {p["kind"] for p in task}
    assert all(p.get("passage") for p in task if p["kind"] != "unanswerable")
    assert all(p.get("old_passage") and p.get("old_version") for p in task if p["kind"] == "changed_param")
    # no document the QA set asks about is the gold of a task pair (so none is ever shown as an oracle passage)
    assert not {p["doc_id"] for p in task if p["kind"] != "unanswerable"} & pr.qa_documents()


def test_update_pairs_teach_removals_and_changes_in_house_format():
    from ragft.data.corpus import load_corpus

    old, new = load_corpus("1.26.4"), load_corpus("2.4.6")
    pairs = pr.update_pairs(old, new)
    by = {p["doc_id"]: p for p in pairs}
    assert {p["kind"] for p in pairs} == {"update_removed", "update_added", "update_changed"}
    assert all(house.parse(p["completion"]).compliant for p in pairs)
    float_ = by["removed:numpy.float_"]
    assert float_["prompt"] == "What does `np.float_` do?" and "`np.float64`" in float_["completion"]
    unchanged = {d.doc_id for d in new} & {d.doc_id for d in old if d.content_hash in {x.content_hash for x in new}}
    assert not unchanged & set(by)
    assert pr.update_pairs(new, new) == []


# --- the real model ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_with_the_real_small_model_and_cache(tmp_path):
    from ragft.data.corpus import load_corpus
    from ragft.data.datasets import subset_corpus
    from ragft.retrieval.retrievers import build_retriever

    items = load_qa("dev", kinds=("removed",))[:1] + load_qa("dev", kinds=("unanswerable",))[:1]
    docs = subset_corpus(load_corpus("2.4.6"), items, "2.4.6", 20)
    retriever = build_retriever(docs, mode="bm25")
    systems = sy.make_arms(retriever, top_k=2, passage_chars=300, max_new_tokens=12)
    cache = sy.AnswerCache(tmp_path)
    pool = sy.ModelPool()
    df = sy.compare(items, systems, pool=pool, cache=cache, show_progress=False)
    assert len(df) == 4 and not df["cached"].any() and (df["new_tokens"] > 0).all()
    assert all(a.strip() for a in df["answer"]) and (df["generation_s"] > 0).all()
    assert bool(df[df["arm"] == "rag"]["gold_retrieved"].iloc[0])
    again = sy.compare(items, systems, pool=pool, cache=cache, show_progress=False)
    assert again["cached"].all() and list(again["answer"]) == list(df["answer"])
    m = evaluation.summarize_arms(df, metrics=evaluation.ARMS_TABLE)
    assert list(m.index) == ["base", "rag"] and (m["n"] == 2).all()


@pytest.mark.slow
def test_model_pool_switches_adapters_on_one_base(tmp_path):
    """Adapter on changes the logits; adapter off gives exactly the base model's logits (same weights in memory)."""
    import torch


    pairs = _pairs()[:4]
    adapter = finetune.train_or_load_adapter(
        pairs, finetune.LoraSettings(lora_r=4, lora_alpha=8), finetune.TrainSettings(steps=2, batch_size=2, max_length=64,
                                                                                     quantization="none", lr=1e-2),
        out_dir=tmp_path / "adapter", show_progress=False, verbose=False)
    pool = sy.ModelPool()
    ids = torch.tensor([[1, 2, 3, 4]])

    def logits(adapter_path):
        model, _, ctx = pool.get("smollm2-135m", adapter_path)
        with ctx, torch.no_grad():
            return model(input_ids=ids).logits

    before = logits(None)  # plain model, no adapter loaded yet
    tuned = logits(str(adapter))
    off = logits(None)
    base, _ = models.load_llm("smollm2-135m")
    with torch.no_grad():
        reference = base(input_ids=ids).logits
    assert torch.equal(before, reference) and torch.equal(off, reference)
    assert not torch.allclose(tuned, reference)
    systems = sy.make_arms(FakeRetriever(HITS), adapter, adapter, top_k=1, max_new_tokens=4)
    df = sy.compare([item()], systems, pool=pool, cache=False, show_progress=False)
    assert list(df["arm"]) == list(sy.ARMS) and (df["new_tokens"] > 0).all()


def test_arm_metrics_skip_missing_values_instead_of_propagating_nan():
    import pandas as pd

    row = dict(arm="rag", kind="removed", correct=True, fact_ok=True, stale=False, abstained=False, compliant=True,
               latency_s=1.0, gold_retrieved=True, cached=False)
    df = pd.DataFrame([{**row, "grounded": 1.0}, {**row, "grounded": None}])  # the second answer cites no API name
    m = evaluation.summarize_arms(df, metrics=evaluation.ARMS_TABLE)
    assert m.loc["rag", "groundedness"] == 1.0 and m.loc["rag", "accuracy"] == 1.0


# --- the one generation loop -------------------------------------------------------------------------------------------
def test_generate_unique_dedupes_batches_in_order_and_skips_cached(tmp_path):
    calls = []

    def fake(batch):
        calls.append([m[-1]["content"] for m in batch])
        return [Generation(text=f"A:{m[-1]['content']}", n_prompt_tokens=3, n_new_tokens=2, ttft_s=0.1, total_s=0.4,
                           batch_size=len(batch)) for m in batch]

    def chat(q):
        return (q, [{"role": "user", "content": q}])

    cache = sy.AnswerCache(tmp_path / "c")
    cache.put("q0", {"text": "cached", "n_new_tokens": 1, "n_prompt_tokens": 1, "ttft_s": 0, "total_s": 0,
                     "batch_size": 1})
    out = sy.generate_unique([chat("q1"), chat("q0"), chat("q2"), chat("q1"), chat("q3")], fake, cache, batch_size=2)
    assert calls == [["q1", "q2"], ["q3"]]  # q0 from the cache, the second q1 not generated again
    texts = [r["text"] for r, _, _ in out]
    assert texts == ["A:q1", "cached", "A:q2", "A:q1", "A:q3"]
    assert [g is not None for _, g, _ in out] == [True, False, True, False, True]  # repeats carry no Generation
    assert [c for _, _, c in out] == [False, True, False, False, False]
    assert out[0][0]["total_s"] == pytest.approx(0.2)  # a batch's time shared by its answers
    assert cache.get("q3")["text"] == "A:q3" and len(cache) == 4


def test_in_memory_answer_cache():
    c = sy.AnswerCache("memory")
    assert c.get("k") is None
    c.put("k", {"text": "t"})
    assert c.get("k") == {"text": "t"} and len(c) == 1 and c.memory


# --- one house pair for every builder ----------------------------------------------------------------------------------
def test_house_pair_is_the_one_template_and_filters_what_cannot_teach_the_format():
    ok = Document("numpy.sortx", "numpy.sortx(a)\n\nReturn a sorted copy of an array.\n\nExamples\n--------\n>>> np.sortx([2, 1])",
                  metadata={"kind": "function"})
    pair = pr.house_pair(ok)
    assert pair["prompt"] == "What does `np.sortx` do?" and pair["doc_id"] == "numpy.sortx" and pair["kind"] == "answer"
    assert house.parse(pair["completion"]).compliant and "np.sortx([2, 1])" in pair["completion"]
    assert pr.house_pair(Document("numpy.pi", ok.text, metadata={"kind": "constant"})) is None  # not a callable
    assert pr.house_pair(Document("numpy.f", "numpy.f(a)\n\nNo example here at all.", metadata={"kind": "function"})) is None
    assert pr.house_pair(None) is None
    # update_pairs uses the same filter: a changed constant teaches nothing, a changed function does
    new = [ok, Document("numpy.pi", ok.text, metadata={"kind": "constant"})]
    assert [p["doc_id"] for p in pr.update_pairs([], new)] == ["numpy.sortx"]


def test_a_contrast_system_sends_its_passage_free_chat_and_keys_apart():
    """System.contrast > 0: every retrieved prompt goes out with the same chat minus its passages (same system turn),
    the cache keys it apart from plain decoding, and a system without retrieval has nothing to contrast."""
    pool = FakePool()
    plain = sy.System("rag", retriever=FakeRetriever(HITS), top_k=2)
    cad = plain.replace(name="rag cad", contrast=0.5)
    df = sy.compare([item()], [plain, cad, sy.System("base", contrast=0.5)], pool=pool, cache=False,
                    show_progress=False)
    assert len(df) == 3
    by_arm = {c["arm"]: c for c in pool.calls}
    assert by_arm["rag"]["contrast"] is None and by_arm["base"]["contrast"] is None
    assert by_arm["rag cad"]["contrast"] == sy.contrast_messages(cad, "question about removed:float_?")
    assert by_arm["rag cad"]["contrast"][0]["content"] == generation.RAG_SYSTEM_PROMPT
    assert by_arm["rag cad"]["contrast"][-1]["content"] == "question about removed:float_?"
    msgs = sy.system_messages(plain, "q?", HITS)
    assert sy.AnswerCache.key(plain, msgs) != sy.AnswerCache.key(cad, msgs)
    with pytest.raises(ValueError, match="contrast must be >= 0"):
        sy.System("rag", contrast=-1.0)


# --- training draws of the RAFT adapter --------------------------------------------------------------------------------
def test_pick_draw_takes_the_best_on_dev_then_format_then_the_first_seed():
    table = pd.DataFrame({"accuracy": [0.8, 0.9, 0.9, 0.7], "format_compliance": [1.0, 0.7, 0.9, 1.0]},
                         index=pd.Index([3, 4, 5, 6], name="seed"))
    assert sy.pick_draw(table) == 5  # 0.9 twice: the better format wins
    table.loc[4, "format_compliance"] = 0.9
    assert sy.pick_draw(table) == 4  # a full tie keeps the lower seed
    assert sy.pick_draw(table.loc[[6]]) == 6
    with pytest.raises(ValueError, match="no training draws"):
        sy.pick_draw(table.iloc[:0])
    with pytest.raises(ValueError, match="format_compliance"):
        sy.pick_draw(table[["accuracy"]])


def test_arm_settings_draw_seeds_and_validation():
    assert sy.ArmSettings().draw_seeds == [0]  # one draw unless asked: the arm is seed `seed`
    assert sy.ArmSettings(training=sy.TrainingSettings(seed=7), draws=sy.DrawSettings(count=3)).draw_seeds == [7, 8, 9]
    with pytest.raises(ValueError, match="raft_draws"):
        sy.DrawSettings(count=0)
    with pytest.raises(ValueError, match="draw_dev_questions"):
        sy.DrawSettings(dev_questions=0)
    smoke = profiles.resolve("smoke")  # the sizes are the profile's, not repeated here
    assert sy.DrawSettings.of(smoke) == sy.DrawSettings(smoke.raft_draws, smoke.draw_dev_questions, smoke.draw_dev_docs)
    assert sy.DrawSettings() == sy.DrawSettings.of(profiles.Profile("x", None, None, 1, 1, False))


def test_arm_settings_make_the_training_settings_that_key_the_adapter_cache():
    """The objects these methods return key cached adapters and answers: the same values as before the split."""
    s = sy.ArmSettings()
    assert s.raft() == pr.RaftSettings(top_k=3, p_oracle=0.8, passage_chars=300, seed=0, no_oracle_target="answer",
                                       quote=False, entry_gold=True)
    assert s.lora() == finetune.LoraSettings(lora_r=16, lora_alpha=32)
    assert s.sft_train() == finetune.TrainSettings(steps=60, seed=0)
    assert s.raft_train() == finetune.TrainSettings(steps=60, lr=1e-3, batch_size=2, max_length=768, seed=0)
    assert s.raft_max_new_tokens == profiles.ANSWER_MAX_NEW_TOKENS and s.raft_examples == 120
    assert s.with_seed(5).raft().seed == 5 and s.with_seed(5).raft_train().seed == 5 and s.with_seed(5).lora() == s.lora()


def test_raft_draws_train_one_adapter_per_seed_and_keep_the_best_on_dev(monkeypatch, fake_adapter):
    import ragft.retrieval.retrievers

    settings = sy.ArmSettings(training=sy.TrainingSettings(seed=10, train_steps=4), draws=sy.DrawSettings(count=3))
    trained, built = [], []

    def train(data, lora, train, model_name, show_progress):  # one adapter folder per seed, weights that differ
        trained.append((train.seed, data[0]["seed"]))
        return fake_adapter(f"draw{train.seed}", config={"r": 16}, weights=f"seed {train.seed}".encode())

    def raft_data(pairs, draw, training_set, show_progress=False):
        built.append(draw.training.seed)
        return [{"seed": draw.training.seed, "raft": "oracle"}]

    monkeypatch.setattr(finetune, "train_or_load_adapter", train)
    monkeypatch.setattr(finetune, "read_training_log",
                        lambda path: {"eval_losses": [[0, 2.0], [4, 1.0 + int(path.name[-2:]) / 100]],
                                      "total_train_s": 3.0})
    monkeypatch.setattr(training_draws, "raft_data", raft_data)  # train_draws reads it there
    questions = [item(), item("unanswerable", "unanswerable:frob")]  # nobody abstains: the second is wrong for all
    monkeypatch.setattr(system_draws, "draw_dev_set", lambda s: (questions, _docs()))
    monkeypatch.setattr(ragft.retrieval.retrievers, "build_retriever", lambda docs, **kw: FakeRetriever(HITS))
    wrong = house.render("Use `np.float32` instead.", "", ["removed:numpy.float_"])
    pool = FakePool(lambda system: FakePool().reply(system) if system.name == "raft, seed 11" else wrong)

    first = [{"seed": 10, "raft": "oracle"}]
    draws = sy.raft_draws(settings, [{"prompt": "p", "completion": "c"}], show_progress=False, first=first, pool=pool,
                          cache=False)
    assert trained == [(10, 10), (11, 11), (12, 12)]  # each seed trains on the RAFT mix of its own seed
    assert built == [11, 12] and draws.data[10] is first  # the first seed's pairs were already built
    assert list(draws.table.index) == [10, 11, 12] and draws.chosen == 11
    assert list(draws.table["chosen"]) == [False, True, False]
    assert list(draws.table["accuracy"]) == [0.0, 0.5, 0.0]  # seed 11 answers the removed question right
    assert list(draws.table["held_out_loss"]) == [1.10, 1.11, 1.12]
    assert {c["arm"] for c in pool.calls} == {"raft, seed 10", "raft, seed 11", "raft, seed 12"}
    assert all(c["adapter"] == draws.adapters[int(c["arm"][-2:])] for c in pool.calls)
    assert all(c["contrast"] is not None for c in pool.calls)  # the RAFT arm's decoding, contrast included
    assert set(draws.results["id"]) == {q.id for q in questions} and len(draws.results) == 6


def test_draw_dev_set_carries_the_change_notes_of_the_arms_synced_index():
    settings = sy.ArmSettings(draws=sy.DrawSettings(dev_questions=12, dev_docs=40))
    items, docs = sy.draw_dev_set(settings)
    _, plain = sy.draw_dev_set(replace(settings, retrieval=sy.RetrievalSettings(change_notes=False)))
    assert [d.doc_id for d in docs] == [d.doc_id for d in plain]  # the same documents, only their text differs
    assert not any("change_notes" in d.metadata for d in plain)
    noted = {d.doc_id: d for d in docs if "change_notes" in d.metadata}
    asked = [i for i in items if i.kind == "changed_param"]
    assert asked and noted
    for item in asked:  # each changed-parameter question's document names its parameter in the notes
        doc = noted[next(iter(item.gold()))]
        notes = doc.metadata["change_notes"]
        assert set(item.accepted_facts or item.required_facts) & set(notes["gained"] + notes["lost"]), item.id
        assert doc.text.split(CHANGE_NOTES_SECTION)[-1].count("`") >= 2
