"""Retrievers and retrieval metrics: HNSW vs exact, save/load checks, sync == fresh build, BM25 and RRF by hand, bad input."""

import json
import math
import warnings

import numpy as np
import pytest

from ragft.data.corpus import Document, load_corpus
from ragft.evaluation.calibration import calibrate_threshold
from ragft.evaluation.ranking import mrr, ndcg_at_k, recall_at_k, retrieval_scores
from ragft.generation.models import is_available
from ragft.retrieval.chunking import Chunk, ChunkConfig
from ragft.retrieval.embeddings import HashingEncoder
from ragft.retrieval.exact import exact_topk
from ragft.retrieval.hnsw import DenseIndex, HnswConfig, build_hnsw
from ragft.retrieval.index import IndexFormatError, IndexMismatchError, Retriever
from ragft.retrieval.retrievers import (
    BM25Retriever,
    HybridRetriever,
    build_retriever,
    retriever_from_index,
    top_indices,
)

QUERIES = ["Returns the indices that would sort an array.", "matrix or vector norm", "was removed in NumPy 2.0",
           "Compute the discrete Fourier transform", "random samples from a normal distribution"]


def _subset(version, n=120):
    """The same slice of every version: linalg, fft, arg*, removal notices, random.n*, then others, n docs in all."""
    docs = load_corpus(version)
    topical = ("numpy.linalg", "numpy.fft", "numpy.arg", "removed:", "numpy.random.n")
    return sorted(docs, key=lambda d: (not d.doc_id.startswith(topical), d.doc_id))[:n]


@pytest.fixture(scope="module")
def new_docs():
    return _subset("2.4.6")


@pytest.fixture(scope="module")
def index(new_docs):
    return build_retriever(new_docs, "dense", embedder=HashingEncoder(), show_progress=False)


def _ranked(hits):
    return [(h.chunk_id, round(h.score, 5)) for h in hits]


def test_hits_are_ranked_and_thresholded(index):
    hits = index.search("Returns the indices that would sort an array.", top_k=8)
    assert [h.rank for h in hits] == list(range(8))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    assert all(-1.0 - 1e-6 <= h.score <= 1.0 + 1e-6 for h in hits)
    cut = hits[3].score
    kept = index.search("Returns the indices that would sort an array.", top_k=8, threshold=cut)
    assert kept and all(h.score >= cut for h in kept) and len(kept) < 8
    assert {"section", "start", "end", "title"} <= set(hits[0].metadata)


def test_hnsw_matches_exact_search(index):
    qs = QUERIES * 2
    approx = index.search_batch(qs, top_k=10)
    exact = index.exact(backend="numpy").search_batch(qs, top_k=10)
    recall = np.mean([len({h.chunk_id for h in a} & {h.chunk_id for h in e}) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.95
    torch_exact = index.exact(backend="torch").search_batch(qs, top_k=10)
    assert [[round(h.score, 4) for h in x] for x in exact] == [[round(h.score, 4) for h in x] for x in torch_exact]


def test_the_same_vectors_build_the_same_graph(tmp_path):
    """hnswlib inserts in parallel unless told not to, and a parallel build's graph differs from run to run (on 2 cores,
    4 builds of these vectors gave 4 different files); the default single-threaded build gives the same file, so the same
    documents retrieve the same passages in every process."""
    X = np.random.default_rng(0).standard_normal((2000, 32)).astype(np.float32)

    def saved(i):
        path = tmp_path / f"{i}.bin"
        build_hnsw(X).save_index(str(path))
        return path.read_bytes()

    assert HnswConfig().build_threads == 1
    assert len({saved(i) for i in range(3)}) == 1
    with pytest.raises(ValueError, match="build_threads"):
        HnswConfig(build_threads=0)


def test_exact_topk_backends_agree():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 16)).astype(np.float32)
    Q = rng.normal(size=(7, 16)).astype(np.float32)
    i_np, s_np = exact_topk(X, Q, 5, "numpy")
    i_t, s_t = exact_topk(X, Q, 5, "torch")
    np.testing.assert_array_equal(i_np, i_t)
    np.testing.assert_allclose(s_np, s_t, rtol=1e-5)
    np.testing.assert_array_equal(i_np[:, 0], np.argmax(Q @ X.T, axis=1))


def test_save_load_round_trip(index, tmp_path):
    index.save(tmp_path / "idx")
    back = DenseIndex.load(tmp_path / "idx", encoder=index.encoder)
    assert len(back) == len(index) and back.doc_hashes() == index.doc_hashes()
    assert back.chunk_config == index.chunk_config and back.config == index.config
    for q in QUERIES:
        assert _ranked(back.search(q, top_k=10)) == _ranked(index.search(q, top_k=10))
    assert DenseIndex.load(tmp_path / "idx").encoder.model_id == index.encoder.model_id  # encoder found from meta.json


def test_load_refuses_what_it_cannot_trust(index, tmp_path):
    path = tmp_path / "idx"
    index.save(path)
    with pytest.raises(IndexMismatchError, match="hashing-bow-384"):
        DenseIndex.load(path, encoder=HashingEncoder(dim=128))
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(IndexFormatError, match="format version 99"):
        DenseIndex.load(path)
    (path / "meta.json").write_text(json.dumps(meta)[:100])
    with pytest.raises(IndexFormatError, match="corrupted"):
        DenseIndex.load(path)
    (path / "meta.json").write_text(json.dumps(meta))
    data = (path / "hnsw.bin").read_bytes()
    (path / "hnsw.bin").write_bytes(data[: len(data) // 3])
    with pytest.raises(IndexFormatError, match="truncated or corrupted"):
        DenseIndex.load(path)
    with pytest.raises(IndexFormatError, match="no index"):
        DenseIndex.load(tmp_path / "nowhere")


def _same_results(a: Retriever, b: Retriever, queries, top_k=10):
    """Equal scores rank by rank, and equal chunk sets above the last score (ties at the cut may differ)."""
    for q in queries:
        ha, hb = a.search(q, top_k=top_k), b.search(q, top_k=top_k)
        np.testing.assert_allclose([h.score for h in ha], [h.score for h in hb], atol=1e-5)
        last = ha[-1].score
        assert {h.chunk_id for h in ha if h.score > last + 1e-5} == {h.chunk_id for h in hb if h.score > last + 1e-5}


def test_sync_equals_a_fresh_build_and_touches_only_what_changed(new_docs):
    old_docs = _subset("1.26.4")
    enc = HashingEncoder()
    synced = build_retriever(old_docs, "dense", embedder=enc, show_progress=False)
    slots_before = synced._hnsw.get_current_count()
    report = synced.sync(new_docs, show_progress=False)
    assert report.added and report.removed and report.changed  # the slice really moved between versions
    old_h, new_h = {d.doc_id: d.content_hash for d in old_docs}, {d.doc_id: d.content_hash for d in new_docs}
    assert sorted(report.added) == sorted(set(new_h) - set(old_h))
    assert sorted(report.removed) == sorted(set(old_h) - set(new_h))
    assert sorted(report.changed) == sorted(i for i in new_h if i in old_h and old_h[i] != new_h[i])
    assert report.unchanged == sum(1 for i in new_h if old_h.get(i) == new_h[i]) > 0
    fresh = build_retriever(new_docs, "dense", embedder=enc, show_progress=False)
    assert len(synced) == len(fresh) and synced.doc_hashes() == fresh.doc_hashes()
    assert sorted(c.chunk_id for c in synced.chunks) == sorted(c.chunk_id for c in fresh.chunks)
    _same_results(synced.exact(), fresh.exact(), QUERIES)
    synced.config.ef = fresh.config.ef = 2 * len(fresh)  # a beam wider than the index: HNSW search is exhaustive
    _same_results(synced, fresh, QUERIES)
    assert synced.sync(new_docs, show_progress=False).unchanged == len(new_docs)  # a second sync is a no-op
    # slots freed by deletions are recycled before new ones are appended
    grown = max(0, report.chunks_added - report.chunks_removed)
    assert synced._hnsw.get_current_count() == slots_before + grown


def test_bad_input_gets_clear_errors(index):
    with pytest.raises(ValueError, match="empty query"):
        index.search("  ")
    with pytest.raises(ValueError, match="top_k"):
        index.search("sort", top_k=0)
    with pytest.raises(KeyError, match="not in the index"):
        index.delete(["numpy.no_such_thing"])
    assert index.delete(["numpy.no_such_thing"], missing="skip") == 0
    with pytest.raises(ValueError, match="already indexed"):
        index.add([Document(index.doc_ids[0], "x")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hits = index.search_batch(["sort"], top_k=20, ef=5)[0]
    assert len(hits) == 20 and any("ef=5 < top_k=20" in str(w.message) for w in caught)


def test_k_larger_than_the_index_returns_every_live_chunk():
    docs = [Document(f"d{i}", f"document number {i} about topic {i % 3}") for i in range(6)]
    r = build_retriever(docs, "dense", embedder=HashingEncoder(), show_progress=False)
    r.delete(["d0", "d1"])
    hits = r.search("topic", top_k=50)
    assert sorted(h.doc_id for h in hits) == ["d2", "d3", "d4", "d5"]
    empty = DenseIndex(HashingEncoder())
    assert empty.search("anything") == []


def test_bm25_by_hand():
    chunks = [Chunk(f"d{i}", f"d{i}#0", t, 0, len(t)) for i, t in enumerate(["cat cat dog", "dog bird", "fish"])]
    bm = BM25Retriever(chunks, k1=1.2, b=0.75)
    avg = (3 + 2 + 1) / 3
    idf_cat = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    expected = idf_cat * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / avg))
    hits = bm.search("cat", top_k=3)
    assert [h.doc_id for h in hits] == ["d0"]  # chunks sharing no term are not matches
    assert hits[0].score == pytest.approx(expected, rel=1e-5)
    assert [h.doc_id for h in bm.search("dog bird", top_k=3)] == ["d1", "d0"]
    assert bm.search("dog", top_k=3, threshold=10.0) == []


def test_bm25s_backend_matches_the_hand_computed_ranking():
    pytest.importorskip("bm25s")
    texts = ["cat cat dog", "dog bird", "fish", "np.sort(a) sorts", "dog bird", ""]
    chunks = [Chunk(f"d{i}", f"d{i}#0", t, 0, len(t)) for i, t in enumerate(texts)]
    own, ref = BM25Retriever(chunks), BM25Retriever(chunks, backend="bm25s")
    n, avg = 6, (3 + 2 + 1 + 4 + 2 + 0) / 6
    idf_cat = math.log(1 + (n - 1 + 0.5) / (1 + 0.5))
    hits = ref.search("cat", top_k=3)
    assert [h.doc_id for h in hits] == ["d0"]
    assert hits[0].score == pytest.approx(idf_cat * 2 * 2.2 / (2 + 1.2 * (0.25 + 0.75 * 3 / avg)), rel=1e-5)
    # "dog bird": d1 and d4 tie (same text) and keep chunk order, d0 (dog only) follows; "np.sort" is split by the
    # same visible tokenizer on both sides
    for q, want in (("dog bird", ["d1", "d4", "d0"]), ("NP.SORT", ["d3"]), ("unknown words", []), ("dog dog", None)):
        got = [h.doc_id for h in ref.search(q, top_k=5)]
        assert got == [h.doc_id for h in own.search(q, top_k=5)]
        assert want is None or got == want
        np.testing.assert_allclose(ref.scores(q), own.scores(q), rtol=1e-5)
    rep = ref.sync([Document("d1", "fish fish")])
    assert (len(rep.added), len(rep.removed), len(rep.changed)) == (0, 5, 1)
    assert [h.doc_id for h in ref.search("fish", top_k=3)] == ["d1"]
    assert BM25Retriever([Chunk("e", "e#0", "", 0, 0)], backend="bm25s").search("x") == []
    with pytest.raises(ValueError, match="backend"):
        BM25Retriever(chunks, backend="lucene")


def test_top_indices_is_a_stable_full_sort():
    rng = np.random.default_rng(0)
    for n, k in ((1000, 10), (1000, 400), (50, 50), (7, 3), (0, 5)):
        s = rng.integers(0, 5, n).astype(np.float32)  # many ties
        assert top_indices(s, k).tolist() == np.argsort(-s, kind="stable")[:k].tolist()


def test_hybrid_rrf_by_hand_and_threshold_on_cosine(index):
    bm25 = BM25Retriever(index.chunks)
    hybrid = HybridRetriever(index, bm25, rrf_k=60, candidates=20)
    q = "Returns the indices that would sort an array."
    d = {h.chunk_id: h.rank for h in index.search(q, top_k=20)}
    b = {h.chunk_id: h.rank for h in bm25.search(q, top_k=20)}
    hits = hybrid.search(q, top_k=5)
    for h in hits:
        want = sum(1 / (60 + r[h.chunk_id] + 1) for r in (d, b) if h.chunk_id in r)
        assert h.score == pytest.approx(want)
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    strict = hybrid.search(q, top_k=5, threshold=0.3)
    assert all(h.metadata["cosine"] >= 0.3 for h in strict)


def test_retrievers_from_a_loaded_index_and_bm25_sync(index, new_docs):
    for mode in ("dense", "exact", "bm25", "hybrid"):
        hits = retriever_from_index(index, mode).search("matrix or vector norm", top_k=3)
        assert len(hits) == 3
    bm = build_retriever(new_docs[:30], "bm25")
    rep = bm.sync(new_docs[10:40])
    assert (len(rep.added), len(rep.removed), len(rep.changed), rep.unchanged) == (10, 10, 0, 20)
    fresh = BM25Retriever.from_docs(new_docs[10:40], ChunkConfig())
    assert _ranked(bm.search("norm", top_k=5)) == _ranked(fresh.search("norm", top_k=5))


class _Fixed(Retriever):
    """A retriever whose top-1 score is given per query, for calibrating by hand."""

    def __init__(self, scores):
        self.scores = scores

    def search_batch(self, queries, top_k=5, threshold=None):
        from ragft.retrieval.index import Hit

        return [[Hit("d", "d#0", self.scores[q], "", 0)] for q in queries]


def test_calibration_by_hand():
    r = _Fixed({"a1": 0.9, "a2": 0.7, "a3": 0.5, "u1": 0.6, "u2": 0.3})
    cal = calibrate_threshold(r, ["a1", "a2", "a3"], ["u1", "u2"])
    t = cal.table().set_index("threshold")
    assert t.loc[0.7, "precision"] == 1.0 and t.loc[0.7, "recall"] == pytest.approx(2 / 3)
    assert t.loc[0.5, "precision"] == pytest.approx(3 / 4) and t.loc[0.5, "recall"] == 1.0
    assert cal.suggested == 0.5  # F1 0.857 beats 0.8 at 0.7
    assert calibrate_threshold(r, ["a1", "a2", "a3"], ["u1", "u2"], min_precision=1.0).suggested == 0.7


# ----------------------------------------------------------------------------------------- retrieval metrics
def test_metrics_by_hand():
    ranking = ["x", "a", "a", "y", "b"]
    gold = {"a", "b", "c"}
    assert recall_at_k(ranking, gold, 1) == 0
    assert recall_at_k(ranking, gold, 3) == pytest.approx(1 / 3)  # "a" twice counts once
    assert recall_at_k(ranking, gold, 5) == pytest.approx(2 / 3)
    assert mrr(ranking, gold) == 0.5 and mrr(["x"], gold) == 0.0 and mrr(ranking, gold, k=1) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranking, gold, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a"], {"a"}, 10) == 1.0
    with pytest.raises(ValueError):
        recall_at_k(ranking, set(), 5)
    table = retrieval_scores([ranking, ["c"], ["z"]], [gold, {"c"}, set()], ks=(1, 5), ids=["q1", "q2", "q3"])
    assert list(table["id"]) == ["q1", "q2"]  # no gold: skipped
    assert table["recall@1"].tolist() == [0.0, 1.0] and table["mrr"].mean() == pytest.approx(0.75)


@pytest.mark.slow
@pytest.mark.skipif(not is_available("minilm"), reason="MiniLM package not installed")
def test_minilm_finds_the_documented_function(new_docs):
    r = build_retriever([d for d in new_docs if d.doc_id.startswith(("numpy.arg", "numpy.linalg"))], "dense",
                        show_progress=False)
    assert r.search("Returns the indices that would sort an array.", top_k=1)[0].doc_id == "numpy.argsort"
    assert r.search("matrix or vector norm", top_k=3)[0].doc_id == "numpy.linalg.norm"


def test_search_explorer_callbacks(index):
    from ragft.retrieval.retrievers import search_table
    from ragft.ui.widgets import search_explorer

    table = search_table(index, "matrix or vector norm", top_k=3, ef=3)
    assert table["rank"].tolist() == [0, 1, 2] and index.config.ef == 64  # the knob is restored
    ui = search_explorer({"dense": index, "bm25": BM25Retriever(index.chunks)})
    box, row1, row2, result = ui.children
    (mode, k, _), (use_t, t) = row1.children, row2.children
    assert "type a query" in result.value
    box.value = "matrix or vector norm"
    assert "numpy.linalg" in result.value
    mode.value = "bm25"
    k.value = 2
    assert result.value.count("<tr") == 3  # header + 2 hits
    mode.value, t.value, use_t.value = "dense", 0.99, True
    assert "no hits above the threshold" in result.value


def test_semantic_chunks_after_sync_match_a_build_with_the_same_breakpoint(new_docs):
    old_docs = _subset("1.26.4", 40)
    enc = HashingEncoder()
    synced = build_retriever(old_docs, "dense", "semantic", embedder=enc, show_progress=False)
    cut = synced.chunk_config.breakpoint_distance
    assert cut is not None  # frozen at the first build
    synced.sync(new_docs[:40], show_progress=False)
    assert synced.chunk_config.breakpoint_distance == cut
    fresh = build_retriever(new_docs[:40], "dense", ChunkConfig("semantic", breakpoint_distance=cut), embedder=enc,
                            show_progress=False)
    assert sorted((c.chunk_id, c.start, c.end) for c in synced.chunks) == sorted((c.chunk_id, c.start, c.end) for c in fresh.chunks)
