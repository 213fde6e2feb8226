"""RAG end to end on a tiny real index with the real small model, and the pipeline evaluation helpers.

`ragft ask` is tested with the rest of the command in test_cli.py."""

import pandas as pd
import pytest

from ragft import evaluation
from ragft.core.house import ABSTAIN_ANSWER
from ragft.data.corpus import Document, load_corpus
from ragft.data.datasets import QAItem
from ragft.generation.decoding import weights_checksum
from ragft.retrieval.index import Hit
from ragft.systems import pipeline
from ragft.systems.pipeline import RagConfig, RagPipeline

DOC_IDS = ["numpy.argsort", "numpy.sort", "numpy.linalg.norm", "numpy.cumsum", "removed:numpy.float_", "numpy.float64"]



def item(id, kind, facts, stale=(), gold=()):
    return QAItem(id=id, kind=kind, question=f"question {id}?", required_facts=list(facts), stale_facts=list(stale),
                  gold_doc_ids={"2.4.6": list(gold)}, split="dev")


@pytest.fixture(scope="module")
def docs():
    by_id = {d.doc_id: d for d in load_corpus("2.4.6")}
    return [by_id[i] for i in DOC_IDS]


@pytest.fixture(scope="module")
def tiny_index(docs):
    from ragft.retrieval.retrievers import build_retriever

    return build_retriever(docs, "dense", embedder="hashing", show_progress=False)


# --- helpers, no model ------------------------------------------------------------------------------------------------
def test_plant_fact_rewrites_text_and_doc_id_whole_words():
    h = [Hit("numpy.inf", "numpy.inf#0", 0.8, "Use np.inf or numpy.inf; np.infty is gone; info stays.", 0)]
    out = evaluation.plant_fact(h, "np.inf", "np.nan")
    assert out[0].doc_id == "numpy.nan" and out[0].text == "Use np.nan or numpy.nan; np.infty is gone; info stays."
    assert h[0].text.startswith("Use np.inf")  # the originals are untouched


def test_wrong_facts_pick_another_item_of_the_same_shape():
    items = [item("a", "removed", ["np.inf"]), item("b", "removed", ["np.float64"]), item("c", "changed_param", ["order"]),
             item("d", "added", ["np.isdtype"]), item("u", "unanswerable", [])]
    w = evaluation.wrong_facts(items)
    assert w == {"a": "np.float64", "b": "np.inf", "d": "np.inf"}  # "c" has no other parameter-name fact; "u" none


def test_version_subsets_keep_removed_names_paired():
    old = [Document("numpy.float_", "old"), Document("numpy.sort", "s1"), Document("numpy.x", "x")]
    new = [Document("removed:numpy.float_", "gone"), Document("numpy.sort", "s2"), Document("numpy.isdtype", "n"),
           Document("numpy.x", "x")]
    it = QAItem("removed:float_", "removed", "q", ["np.float64"], ["np.float_"],
                {"1.26.4": ["numpy.float_"], "2.4.6": ["removed:numpy.float_"]}, "dev")
    o, n = evaluation.version_subsets(old, new, [it], "1.26.4", "2.4.6", n_docs=2)
    assert [d.doc_id for d in o] == ["numpy.float_", *[d.doc_id for d in n if d.doc_id in ("numpy.sort", "numpy.x")]]
    assert "removed:numpy.float_" in {d.doc_id for d in n} and len(n) == 2


class FakePipeline:
    """Answers from a dict; what evaluate_pipeline needs of a RagPipeline."""

    def __init__(self, answers):
        self.answers, self.config = answers, {}

    def with_config(self, **kw):
        return self

    def answer_batch(self, questions, retrieval=True, passages=None, show_progress=False):
        from ragft.systems.pipeline import RagAnswer, Timings

        out = []
        for q in questions:
            text, srcs = self.answers[q]
            hs = [Hit(s, s + "#0", 0.5, f"{s} text np.float64", 0) for s in srcs] if retrieval else []
            out.append(RagAnswer(q, text, hs, [], Timings(0.01, 0.001, 1.0), retrieval,
                                 abstained_no_context=text == ABSTAIN_ANSWER and retrieval, confidence=0.5))
        return out


def test_evaluate_pipeline_scores_and_summarizes_arms():
    items = [item("r", "removed", ["np.float64"], ["np.float_"], ["removed:numpy.float_"]),
             item("u", "unanswerable", [])]
    good = "Answer: Use np.float64.\n```python\nx = np.float64(1)\n```\nSource: removed:numpy.float_"
    fp = FakePipeline({"question r?": (good, ["removed:numpy.float_"]), "question u?": (ABSTAIN_ANSWER, [])})
    rag = pipeline.evaluate_pipeline(fp, items, arm="rag", show_progress=False)
    base = pipeline.evaluate_pipeline(fp, items, arm="base", retrieval=False, show_progress=False)
    assert list(rag["correct"]) == [True, True] and rag.loc[0, "gold_in_context"] is True
    assert pd.isna(rag.loc[1, "latency_s"])  # abstained without generating: not a latency sample
    assert base.loc[0, "gold_in_context"] is None and base.loc[0, "grounded"] is None
    table = evaluation.summarize_arms(pd.concat([base, rag]))
    assert list(table.index) == ["base", "rag"]
    assert table.loc["rag", "accuracy"] == 1.0 and table.loc["rag", "context_recall"] == 1.0
    assert table.loc["rag", "abstention_recall"] == 1.0 and table.loc["rag", "stale_rate"] == 0.0


# --- the real model -------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_pipeline_end_to_end_on_a_tiny_index(small_llm, tiny_index):
    model, tok = small_llm
    rag = RagPipeline(tiny_index, model, tok, RagConfig(top_k=3, max_new_tokens=12, max_prompt_tokens=700))
    before = weights_checksum(model)
    a = rag.answer("Which function returns the indices that would sort an array?")
    assert a.text and a.n_new_tokens > 0 and 0 < a.confidence <= 1
    assert 1 <= len(a.passages) <= 3 and all(h.doc_id in DOC_IDS for h in a.passages)
    assert a.scores == sorted(a.scores, reverse=True) and a.n_prompt_tokens <= 700
    assert a.timings.generate_s > 0 and a.ttft_s > 0 and a.timings.total_s >= a.timings.generate_s
    tight = rag.with_config(max_prompt_tokens=330).answer("Which function returns the indices that would sort an array?")
    assert tight.cut and tight.n_prompt_tokens <= 330 and len(tight.passages) < len(a.passages) + len(a.cut)
    none = rag.answer("Which function returns the indices that would sort an array?", threshold=1.01)
    assert none.text == ABSTAIN_ANSWER and none.abstained_no_context and none.n_new_tokens == 0
    assert weights_checksum(model) == before  # answering never touches a weight


def test_tuned_prompt_has_no_system_turn_and_cut_passages(small_tokenizer, tiny_index):
    """What `ragft ask --adapter` sends: the prompt the arms' adapters trained on (no system turn, passages cut)."""
    hits = tiny_index.search("Which function returns the indices that would sort an array?", top_k=2)
    tuned = RagPipeline(tiny_index, None, small_tokenizer, RagConfig(system=None, base_system=None, passage_chars=120))
    p = tuned.prompt("Which function sorts?", hits)
    assert [m["role"] for m in p.messages] == ["user"]
    assert all(len(h.text) <= 124 for h in p.used) and any(len(h.text) > 120 for h in hits)  # 120 + " ..."
    told = RagPipeline(tiny_index, None, small_tokenizer, RagConfig()).prompt("Which function sorts?", hits)
    assert told.messages[0]["role"] == "system" and [h.text for h in told.used] == [h.text for h in hits]


@pytest.mark.slow
def test_batched_and_single_answers_agree(small_llm, tiny_index):
    model, tok = small_llm
    rag = RagPipeline(tiny_index, model, tok, RagConfig(top_k=2, max_new_tokens=8), cache_answers=False)
    qs = ["What replaces np.float_?", "How do I compute a cumulative sum?"]
    batch = rag.answer_batch(qs)
    single = [rag.answer(q) for q in qs]
    assert [a.sources for a in batch] == [a.sources for a in single]
    assert sum(b.text == s.text for b, s in zip(batch, single, strict=True)) >= 1  # rare near-ties may differ


def test_version_subsets_whole_corpora_when_n_docs_is_none():
    old = [Document("numpy.gone_without_notice", "old"), Document("numpy.sort", "s1")]
    new = [Document("numpy.sort", "s2"), Document("numpy.isdtype", "n")]
    assert evaluation.version_subsets(old, new, [], "1.26.4", "2.4.6", None) == (old, new)
