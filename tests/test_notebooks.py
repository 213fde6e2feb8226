"""Notebooks 00-03 (overview, chunking, HNSW retrieval, RAG: no training) executed in the smoke profile, checked
through the figures each records. The training notebooks 04-06 are in test_notebooks_training.py.

Two files, not one, because `make test` runs pytest-xdist with `--dist loadfile` (a file runs whole on one worker): in a
full run 00-03 take about 350 s and 04-06 about 490 s, so each of the two workers takes one file and the unit tests
fill in around them; one file would keep a worker busy for 14 minutes.
"""

import pytest

from ragft.core import profiles
from ragft.retrieval.chunking import STRATEGIES

pytestmark = [pytest.mark.notebooks, pytest.mark.slow]


def test_overview_notebook_smoke(smoke_figures):
    figs = smoke_figures("00_overview")
    assert figs["documents"]["1.26.4"] > 900 and figs["documents"]["2.4.6"] > 900
    assert figs["removed_1_26_to_2_0"] > 50
    assert figs["qa_items"] == figs["qa_dev"] + figs["qa_validation"] + figs["qa_test"] and figs["qa_test"] > 0
    assert figs["demo_truth_holds"] is True
    assert figs["train_pairs"] > 500


def test_chunking_notebook_smoke(smoke_figures):
    figs = smoke_figures("01_chunking")
    assert figs["n_docs"] == 40 and figs["n_questions"] >= 4
    assert [r["strategy"] for r in figs["strategies"]] == list(STRATEGIES)
    for row in figs["strategies"]:
        assert 0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1
        assert row["recall@10"] > 0, f"{row['strategy']}: no question found its gold document in 10 hits"
    counts = {r["strategy"]: r for r in figs["chunk_counts"]}
    assert counts["fixed"]["over 256 (truncated)"] == 0 and counts["fixed"]["p95 tokens"] <= figs["chunk_size"]
    assert counts["structure"]["chunks"] > counts["fixed"]["chunks"]  # one section per chunk makes more, shorter chunks
    assert figs["best_strategy"] in STRATEGIES


def test_hnsw_retrieval_notebook_smoke(smoke_figures):
    figs = smoke_figures("02_hnsw_retrieval")
    assert figs["n_docs"] == profiles.get("smoke").n_docs and figs["n_chunks"] > figs["n_docs"]
    assert figs["real_recall_at_ef"] >= 0.95
    recalls = [r["recall@10"] for r in figs["synthetic_curves"]]
    assert recalls[-1] >= max(recalls[0], 0.99)  # the widest beam finds (nearly) every true neighbour
    retrievers = {r["retriever"]: r for r in figs["retrievers"]}
    assert set(retrievers) == {"dense (MiniLM)", "exact (MiniLM)", "BM25", "hybrid (RRF)", "dense (hashed words)"}
    assert retrievers["dense (MiniLM)"]["recall@10"] >= 0.8
    assert -1 <= figs["suggested_threshold"] <= 1
    up = figs["update"]
    assert up["recall5_after"] > up["recall5_before"]
    assert up["sync_embedded"] < up["rebuild_embedded"]
    assert up["added"] + up["changed"] + up["unchanged"] == up["n_docs"]
    pg = figs["pgvector"]  # the same chunks in PostgreSQL + pgvector
    widest = max(r["ef"] for r in pg["curve"])
    recall = {r["engine"]: r["recall@10"] for r in pg["curve"] if r["ef"] == widest}
    assert recall["pgvector"] >= 0.99 and recall["pgvector"] >= recall["hnswlib"] - 0.01
    assert pg["reads_during_sync"] > 0 and pg["partial_reads"] == 0


def test_rag_notebook_smoke(smoke_figures):
    figs = smoke_figures("03_rag")
    assert figs["weights_unchanged"] is True
    assert figs["update_context_recall_after"] > figs["update_context_recall_before"]
    assert figs["update_docs"]["changed"] + figs["update_docs"]["added"] + figs["update_docs"]["removed"] > 0
    assert figs["budget_respected"] is True
    assert figs["rag_context_recall"] >= 0.5
    assert figs["latency"]["tokens_per_s"] > 0 and figs["latency"]["ttft_s"] > 0
    # retrieval and generation were both timed (how small retrieval's share is, a timing, is the notebook's figure to
    # read, not a test's to assert: it moves with the machine's load)
    assert 0 < figs["retrieval_share"] < 1
    arms = {r["arm"]: r for r in figs["arms"]}
    assert {"base (no retrieval)", "RAG"} <= set(arms) and all(r["n"] == figs["n_questions"] for r in arms.values())
    graders = {r["arm"]: r for r in figs["graders"]}  # strict against lenient, per arm, from this run
    assert set(graders) == set(arms) and figs["lenient_only"] >= 0
    assert all(r["accuracy"] <= r["lenient_accuracy"] + 1e-9 for r in graders.values() if r["lenient_accuracy"] is not None)
    lab = {r["arm"]: r for r in figs["lab_threshold"]}
    assert len(lab) == 3 and len(figs["lab_retrieval"]) == 3 and len(figs["lab_cannot_tell"]) == 3
    assert {r["arm"] for r in figs["injection"]} == {"delimited + escaped", "raw text"}
    penalty = {r["arm"]: r for r in figs["lab_repetition_penalty"]}  # same passages, only the decoding differs
    assert set(penalty) == {"no penalty (the shared decoding)", "repetition_penalty 1.1"}
    assert penalty["repetition_penalty 1.1"]["context_recall"] == penalty["no penalty (the shared decoding)"]["context_recall"]
    order = {r["arm"]: r for r in figs["lab_passage_order"]}  # the same passages, only their order differs
    assert set(order) == {"best passage last (the default)", "best passage first"}
    assert order["best passage first"]["context_recall"] == order["best passage last (the default)"]["context_recall"]
    mig = figs["migration"]  # the 2.4.6 index against the 1.26.4 + 2.4.6 index on the changed-parameter questions
    both = {(r["index"], r["k"]): r["both versions"] for r in mig["retrieval"]}
    assert mig["n_questions"] >= 5 and len(both) == 4  # every dev changed-parameter question (5 since the fix)
    assert all(v == 0 for (index, _), v in both.items() if index == "2.4.6 index")  # one version cannot show both
    assert max(v for (index, _), v in both.items() if index != "2.4.6 index") > 0
    assert mig["retrieval_compare"]["n"] == mig["n_questions"] and mig["answers_compare"]["n"] == max(2, figs["n_lab"] // 2)
    assert {r["arm"] for r in mig["answers"]} == {"2.4.6 index", "1.26.4 + 2.4.6 index"}
