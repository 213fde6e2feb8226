import json

import pandas as pd
import pytest

from ragft import house, hybrid
from ragft.corpus import Document
from ragft.datasets import QAItem, load_qa
from ragft.generation import HOUSE_SYSTEM_PROMPT, Generation
from ragft.index import Hit


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


class FakePool:
    """Stands in for ModelPool: records what it was asked, answers with a canned house answer (no model)."""

    def __init__(self, text=None):
        self.calls = []
        self.text = text

    def generate_batch(self, system, batch, batch_size=8):
        text = self.text or house.render("Use `np.float64` instead.", "x = np.float64(1)", ["removed:numpy.float_"])
        out = []
        for messages in batch:
            self.calls.append((system.name, system.adapter, messages))
            out.append(Generation(text=text, n_prompt_tokens=10, n_new_tokens=12, ttft_s=0.1, total_s=0.5 * len(batch),
                                  batch_size=len(batch)))
        return out


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
    arms = hybrid.make_arms(FakeRetriever(HITS), adapter_dir, adapter_dir, top_k=2, threshold=0.5)
    assert [a.name for a in arms] == list(hybrid.ARMS)
    by = {a.name: a for a in arms}
    assert by["base"].retriever is None and by["base"].adapter is None and by["base"].prompt == "house"
    assert by["rag"].retriever is not None and by["rag"].adapter is None and by["rag"].prompt == "house"
    assert by["fine-tuned"].retriever is None and by["fine-tuned"].adapter and by["fine-tuned"].prompt == "none"
    assert by["hybrid"].retriever is not None and by["hybrid"].adapter and by["hybrid"].prompt == "none"
    assert by["raft"].threshold == 0.5 and by["raft"].top_k == 2
    assert [d["retrieval"] for d in map(hybrid.System.describe, arms)] == ["none", "FakeRetriever", "none",
                                                                           "FakeRetriever", "FakeRetriever"]


def test_arms_whose_parts_are_missing_are_left_out():
    assert [a.name for a in hybrid.make_arms()] == ["base"]
    assert [a.name for a in hybrid.make_arms(FakeRetriever(HITS))] == ["base", "rag"]


def test_system_refuses_bad_parts(tmp_path):
    with pytest.raises(ValueError, match="prompt"):
        hybrid.System("x", prompt="shout")
    with pytest.raises(FileNotFoundError, match="no adapter"):
        hybrid.System("x", adapter=str(tmp_path))
    with pytest.raises(KeyError, match="unknown model"):
        hybrid.System("x", model="gpt-17")
    with pytest.raises(ValueError, match="top_k"):
        hybrid.System("x", top_k=0)


def test_context_message_is_notebook_03s_layout_with_cut_passages():
    from ragft.generation import passage_block, user_message

    msg = hybrid.context_message("What replaces np.float_?", HITS, passage_chars=None)
    assert msg == user_message("What replaces np.float_?", [passage_block(i, h) for i, h in enumerate(HITS, 1)])
    assert 'doc_id="removed:numpy.float_"' in msg and 'n=2 doc_id="numpy.float64"' in msg
    assert msg.endswith("Question: What replaces np.float_?")
    short = hybrid.context_message("q?", HITS, passage_chars=20)
    assert "numpy.float_ was rem ..." in short and "instead" not in short
    assert hybrid.context_message("q?", []) == "q?"


def test_cut_passage_keeps_short_text_and_cuts_long_text():
    assert hybrid.cut_passage("short", 10) == "short"
    long = "line one is here\n" * 20
    cut = hybrid.cut_passage(long, 100)
    assert len(cut) <= 104 and cut.endswith(" ...") and long.startswith(cut[:-4])
    assert hybrid.cut_passage(long, None) == long


def test_system_messages_tell_untuned_models_and_not_tuned_ones(adapter_dir):
    from ragft.generation import RAG_SYSTEM_PROMPT

    rag = hybrid.System("rag", retriever=FakeRetriever(HITS))
    tuned = hybrid.System("hybrid", adapter=str(adapter_dir), retriever=FakeRetriever(HITS), prompt="none")
    m1 = hybrid.system_messages(rag, "q?", HITS)
    m2 = hybrid.system_messages(tuned, "q?", HITS)
    assert m1[0] == {"role": "system", "content": RAG_SYSTEM_PROMPT} and "<passage n=1" in m1[1]["content"]
    assert len(m2) == 1 and m2[0]["role"] == "user" and m2[0]["content"] == m1[1]["content"]
    base = hybrid.system_messages(hybrid.System("base"), "q?", None)
    assert base == [{"role": "system", "content": HOUSE_SYSTEM_PROMPT}, {"role": "user", "content": "q?"}]


# --- the cache --------------------------------------------------------------------------------------------------------
def test_cache_key_changes_with_prompt_adapter_weights_and_length(adapter_dir):
    s = hybrid.System("ft", adapter=str(adapter_dir), prompt="none")
    msgs = hybrid.system_messages(s, "q?", None)
    k = hybrid.AnswerCache.key(s, msgs)
    assert k == hybrid.AnswerCache.key(s.replace(name="renamed"), msgs)  # the name does not change the answer
    assert k != hybrid.AnswerCache.key(s, hybrid.system_messages(s, "other?", None))
    assert k != hybrid.AnswerCache.key(s.replace(max_new_tokens=5), msgs)
    assert k != hybrid.AnswerCache.key(s.replace(adapter=None), msgs)
    (adapter_dir / "adapter_model.safetensors").write_bytes(b"weights-2, retrained")
    assert k != hybrid.AnswerCache.key(s, msgs)


def test_compare_caches_answers_and_rerun_generates_nothing(tmp_path):
    cache = hybrid.AnswerCache(tmp_path / "cache")
    retriever = FakeRetriever(HITS)
    systems = [hybrid.System("base"), hybrid.System("rag", retriever=retriever, top_k=2)]
    questions = [item(), item("unanswerable", "unanswerable:foo")]
    pool = FakePool()
    df = hybrid.compare(questions, systems, pool=pool, cache=cache, show_progress=False)
    assert len(df) == 4 and len(pool.calls) == 4 and not df["cached"].any()
    assert list(df["arm"]) == ["base", "base", "rag", "rag"]
    rag = df[df["arm"] == "rag"].iloc[0]
    assert rag["doc_ids"] == ["removed:numpy.float_", "numpy.float64"] and rag["gold_retrieved"] == True  # noqa: E712
    assert rag["correct"] and rag["compliant"] and not rag["stale"] and rag["grounded"] == 1.0
    assert pd.isna(df[df["arm"] == "base"].iloc[0]["grounded"])  # no passages, nothing to be grounded in
    pool2 = FakePool(text="never used")
    again = hybrid.compare(questions, systems, pool=pool2, cache=cache, show_progress=False)
    assert pool2.calls == [] and again["cached"].all() and list(again["answer"]) == list(df["answer"])
    assert retriever.calls == 4  # retrieval is not cached: it decides the key
    assert len(cache) == 4  # one file per distinct prompt


def test_threshold_abstains_without_generating(tmp_path):
    pool = FakePool()
    s = hybrid.System("rag", retriever=FakeRetriever(HITS), threshold=0.9)
    df = hybrid.compare([item("unanswerable", "unanswerable:foo")], [s], pool=pool, cache=False, show_progress=False)
    row = df.iloc[0]
    assert pool.calls == [] and row["gated"] and row["answer"] == house.ABSTAIN_ANSWER
    assert row["correct"] and row["abstained"] and row["compliant"] and row["new_tokens"] == 0


def test_typed_questions_are_answered_and_format_checked_only():
    df = hybrid.compare(["How do I sort?"], [hybrid.System("base")], pool=FakePool(), cache=False, show_progress=False)
    row = df.iloc[0]
    assert row["kind"] == "typed" and pd.isna(row["correct"]) and bool(row["compliant"])
    with pytest.raises(ValueError, match="empty question"):
        hybrid.compare(["  "], [hybrid.System("base")], pool=FakePool(), cache=False, show_progress=False)


def test_compare_refuses_duplicate_names_and_no_systems():
    with pytest.raises(ValueError, match="unique"):
        hybrid.compare([item()], [hybrid.System("a"), hybrid.System("a")], pool=FakePool(), cache=False)
    with pytest.raises(ValueError, match="no systems"):
        hybrid.compare([item()], [], pool=FakePool(), cache=False)


def test_arm_metrics_and_records():
    systems = [hybrid.System("base"), hybrid.System("rag", retriever=FakeRetriever(HITS))]
    df = hybrid.compare([item(), item("unanswerable", "unanswerable:foo")], systems,
                        pool=FakePool(), cache=False, show_progress=False)
    m = hybrid.arm_metrics(df)
    assert list(m.index) == ["base", "rag"] and set(hybrid.METRICS) <= set(m.columns)
    assert m.loc["rag", "changed_accuracy"] == 1.0  # the removed item, answered with np.float64
    assert m.loc["rag", "abstention_recall"] == 0.0  # the canned answer never abstains
    assert m.loc["rag", "gold_retrieved"] == 1.0 and m.loc["base", "cached"] == 0.0
    recs = hybrid.records(m)
    assert recs[0]["arm"] == "base" and recs[1]["accuracy"] == 0.5
    assert all(v is None or not isinstance(v, float) or v == v for r in recs for v in r.values())  # no NaN left


def test_configure_applies_knobs_only_where_they_mean_something(adapter_dir):
    other = FakeRetriever(HITS[:1])
    arms = hybrid.make_arms(FakeRetriever(HITS), adapter_dir, top_k=3)
    out = {s.name: s for s in hybrid.configure(arms, top_k=1, threshold=0.3, retriever=other, retriever_label="bm25",
                                               adapter=False)}
    assert out["base"] == arms[0]
    assert out["rag"].top_k == 1 and out["rag"].threshold == 0.3 and out["rag"].retriever is other
    assert out["hybrid"].adapter is None and out["fine-tuned"].adapter is None
    assert out["hybrid"].describe()["retrieval"] == "bm25"


def test_answers_html_shows_every_arm_and_escapes():
    systems = [hybrid.System("base"), hybrid.System("rag", retriever=FakeRetriever(HITS))]
    df = hybrid.compare(["<script>x</script>?"], systems, pool=FakePool(text="<b>raw</b>"), cache=False,
                        show_progress=False)
    page = hybrid.answers_html(df, systems)
    assert page.count("class='ragft-card'") == 2 and "data-arm='rag'" in page
    assert "<script>" not in page and "&lt;b&gt;raw&lt;/b&gt;" in page
    assert "removed:numpy.float_" in page  # sources of the rag arm


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
    from ragft.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    pairs = _pairs()
    out = hybrid.raft_pairs(pairs, retriever, hybrid.RaftSettings(top_k=2, p_oracle=0.5, passage_chars=None))
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
    again = hybrid.raft_pairs(pairs, retriever, hybrid.RaftSettings(top_k=2, p_oracle=0.5, passage_chars=None))
    assert again == out  # mechanical: the same pairs every time
    all_oracle = hybrid.raft_pairs(pairs, retriever, hybrid.RaftSettings(top_k=2, p_oracle=1.0))
    assert [p["raft"] for p in all_oracle].count("oracle") == len(pairs) - 1


def test_raft_pairs_insert_the_gold_passage_when_retrieval_misses_it():
    from ragft.retrievers import build_retriever

    retriever = build_retriever(_docs(), mode="bm25")
    pair = {"prompt": "cumulative sum", "kind": "answer", "doc_id": "numpy.sort",
            "completion": house.render("`np.sort`: sorts.", "np.sort([2, 1])", ["numpy.sort"])}
    (out,) = hybrid.raft_pairs([pair], retriever, hybrid.RaftSettings(top_k=2, p_oracle=1.0))
    assert out["gold_retrieved"] is False and "numpy.sort" in out["passage_ids"] and out["raft"] == "oracle"


def test_raft_settings_validate():
    with pytest.raises(ValueError, match="p_oracle"):
        hybrid.RaftSettings(p_oracle=1.5)


def test_update_pairs_teach_removals_and_changes_in_house_format():
    from ragft.corpus import load_corpus

    old, new = load_corpus("1.26.4"), load_corpus("2.4.6")
    pairs = hybrid.update_pairs(old, new)
    by = {p["doc_id"]: p for p in pairs}
    assert {p["kind"] for p in pairs} == {"update_removed", "update_added", "update_changed"}
    assert all(house.parse(p["completion"]).compliant for p in pairs)
    float_ = by["removed:numpy.float_"]
    assert float_["prompt"] == "What does `np.float_` do?" and "`np.float64`" in float_["completion"]
    unchanged = {d.doc_id for d in new} & {d.doc_id for d in old if d.content_hash in {x.content_hash for x in new}}
    assert not unchanged & set(by)
    assert hybrid.update_pairs(new, new) == []


# --- the real model ---------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_with_the_real_small_model_and_cache(tmp_path):
    from ragft.corpus import load_corpus
    from ragft.datasets import subset_corpus
    from ragft.retrievers import build_retriever

    items = load_qa("dev", kinds=("removed",))[:1] + load_qa("dev", kinds=("unanswerable",))[:1]
    docs = subset_corpus(load_corpus("2.4.6"), items, "2.4.6", 20)
    retriever = build_retriever(docs, mode="bm25")
    systems = hybrid.make_arms(retriever, top_k=2, passage_chars=300, max_new_tokens=12)
    cache = hybrid.AnswerCache(tmp_path)
    pool = hybrid.ModelPool()
    df = hybrid.compare(items, systems, pool=pool, cache=cache, show_progress=False)
    assert len(df) == 4 and not df["cached"].any() and (df["new_tokens"] > 0).all()
    assert all(a.strip() for a in df["answer"]) and (df["generation_s"] > 0).all()
    assert bool(df[df["arm"] == "rag"]["gold_retrieved"].iloc[0])
    again = hybrid.compare(items, systems, pool=pool, cache=cache, show_progress=False)
    assert again["cached"].all() and list(again["answer"]) == list(df["answer"])
    m = hybrid.arm_metrics(df)
    assert list(m.index) == ["base", "rag"] and (m["n"] == 2).all()


@pytest.mark.slow
def test_model_pool_switches_adapters_on_one_base(tmp_path):
    """Adapter on changes the logits; adapter off gives exactly the base model's logits (same weights in memory)."""
    import torch

    from ragft import finetune, models

    pairs = _pairs()[:4]
    adapter = finetune.train_or_load_adapter(
        pairs, finetune.LoraSettings(lora_r=4, lora_alpha=8), finetune.TrainSettings(steps=2, batch_size=2, max_length=64,
                                                                                     quantization="none", lr=1e-2),
        out_dir=tmp_path / "adapter", show_progress=False, verbose=False)
    pool = hybrid.ModelPool()
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
    systems = hybrid.make_arms(FakeRetriever(HITS), adapter, adapter, top_k=1, max_new_tokens=4)
    df = hybrid.compare([item()], systems, pool=pool, cache=False, show_progress=False)
    assert list(df["arm"]) == list(hybrid.ARMS) and (df["new_tokens"] > 0).all()


def test_arm_metrics_skip_missing_values_instead_of_propagating_nan():
    import pandas as pd

    row = dict(arm="rag", kind="removed", correct=True, fact_ok=True, stale=False, abstained=False, compliant=True,
               latency_s=1.0, gold_retrieved=True, cached=False)
    df = pd.DataFrame([{**row, "grounded": 1.0}, {**row, "grounded": None}])  # the second answer cites no API name
    m = hybrid.arm_metrics(df)
    assert m.loc["rag", "groundedness"] == 1.0 and m.loc["rag", "accuracy"] == 1.0
