"""Notebooks 01 (chunking) and 02 (HNSW retrieval) executed in the smoke profile, checked through their recorded figures."""

import pytest

from ragft import profiles, report
from ragft.chunking import STRATEGIES


@pytest.mark.notebooks
@pytest.mark.slow
def test_chunking_notebook_smoke(tmp_path):
    report.execute_notebook("01_chunking", tmp_path, profile="smoke")
    figs = report.read_figures("01_chunking", tmp_path)
    assert figs["n_docs"] == 40 and figs["n_questions"] >= 4
    assert [r["strategy"] for r in figs["strategies"]] == list(STRATEGIES)
    for row in figs["strategies"]:
        assert 0 <= row["recall@1"] <= row["recall@5"] <= row["recall@10"] <= 1
        assert row["recall@10"] > 0, f"{row['strategy']}: no question found its gold document in 10 hits"
    counts = {r["strategy"]: r for r in figs["chunk_counts"]}
    assert counts["fixed"]["over 256 (truncated)"] == 0 and counts["fixed"]["p95 tokens"] <= figs["chunk_size"]
    assert counts["structure"]["chunks"] > counts["fixed"]["chunks"]  # one section per chunk makes more, shorter chunks
    assert figs["best_strategy"] in STRATEGIES


@pytest.mark.notebooks
@pytest.mark.slow
def test_hnsw_retrieval_notebook_smoke(tmp_path):
    report.execute_notebook("02_hnsw_retrieval", tmp_path, profile="smoke")
    figs = report.read_figures("02_hnsw_retrieval", tmp_path)
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
