"""Lexical and fused retrieval, and the one way to build any retriever: BM25 over chunk texts, hybrid fusion of dense
and BM25 rankings, `build_retriever(docs, mode)` and `retriever_from_index(dense, mode)`, and `search_table` for one
query's hits as a table.

Does not embed or hold vectors (see `hnsw.py`), does not generate answers and does not score them.
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence

import numpy as np

from ..data.corpus import Document, split_doc_id
from .chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, Chunk, ChunkConfig, chunk_documents
from .hnsw import DenseIndex, HnswConfig
from .index import Hit, Retriever, SyncReport, check_query, check_top_k

MODES = ("dense", "exact", "bm25", "hybrid")

# ---------------------------------------------------------------------------------------------------------- BM25
_BM25_TOKEN = re.compile(r"[a-z0-9_]+")


def bm25_tokens(text: str) -> list[str]:
    """Lowercased word tokens; dots split qualified names: "np.linalg.norm(x)" -> ["np", "linalg", "norm", "x"]."""
    return _BM25_TOKEN.findall(text.lower())


# Words of how people phrase a question ("how do I ...", "why does my ...?"), dropped from BM25 QUERIES only: their
# idf is low but not zero, so in a long question they outweigh the one rare word that matters (stop lists as in Lucene's
# EnglishAnalyzer). Words that are also NumPy names (all, any, where, not, in, as) are kept.
QUERY_STOPWORDS = frozenset(
    "a an the is are was were be been do does did i me my we our you your it its of to on for with at by from and or "
    "but how what why which who can could should would will this that these there here am has have had".split())


def query_tokens(text: str) -> list[str]:
    """`bm25_tokens` of a query without `QUERY_STOPWORDS` (all of them when every token is one).

    >>> query_tokens("How do I sort an array?")
    ['sort', 'array']
    """
    tokens = bm25_tokens(text)
    return [t for t in tokens if t not in QUERY_STOPWORDS] or tokens


def bm25_idf(n_docs: int, df: int) -> float:
    """Lucene's BM25 idf, never negative: log(1 + (N - df + 0.5) / (df + 0.5))."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


# ---------------------------------------------------------------------------------------------------- name check
# A question that names an API in backticks (`np.X`, `numpy.X`) asks about THAT name. If no retrieved passage documents
# it, the passages cannot answer it: a fabricated name, or one retrieval missed. A 135M reader cannot tell (it answers
# from the nearest passage about something else); this check can, before any generation (`systems.System.name_check`).
_ASKED_NAME = re.compile(r"`(?:np|numpy)\.([A-Za-z_][\w.]*[A-Za-z0-9_])(?:\(\))?`")


def asked_names(question: str) -> list[str]:
    """The NumPy API names a question asks about, in backticks, as doc ids ("numpy.X"), in order of appearance.

    >>> asked_names("My code uses `np.float_`. What should I use instead of `numpy.float_`?")
    ['numpy.float_']
    >>> asked_names("Which NumPy function sorts an array?")
    []
    """
    return list(dict.fromkeys(f"numpy.{m.group(1)}" for m in _ASKED_NAME.finditer(question)))


def undocumented_names(question: str, hits: Sequence) -> list[str]:
    """The names `question` asks about when no hit documents any of them (a hit's doc id, a removal notice
    "removed:numpy.X" or a version-tagged "numpy.X@2.4.6" counts); [] when it names none or one is documented. The one
    rule of the name check (`systems.System.name_check`, `pipeline.RagConfig.name_check`): non-empty = abstain.

    >>> undocumented_names("What replaced `np.float_`?", ["removed:numpy.float_@2.4.6", "numpy.float64"])
    []
    >>> undocumented_names("What replaced `np.frob`?", ["numpy.float64"])
    ['numpy.frob']
    """
    ids = {split_doc_id(getattr(h, "doc_id", h))[0].removeprefix("removed:") for h in hits}
    asked = asked_names(question)
    return [] if any(n in ids for n in asked) else asked


# "numpy": ragft's postings lists (the default); "bm25s": the same formula in bm25s (`pip install ragft[bm25s]`),
# a cross-check, not faster here: benchmarks/bm25.py, NumPy 2.4.6 (6,431 chunks, 2 cores): build 0.25 s vs 0.33 s,
# 6,176 vs 5,359 queries/s, identical top-10 on all 297 QA questions.
BM25_BACKENDS = ("numpy", "bm25s")


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first, ties in index order: `np.argsort(-scores, kind="stable")[:k]`
    without sorting everything (a partition, then a stable sort of the scores >= the k-th)."""
    k = min(k, len(scores))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k >= len(scores) // 4:
        return np.argsort(-scores, kind="stable")[:k]
    kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
    cand = np.flatnonzero(scores >= kth)  # ascending, so the stable sort keeps ties in index order
    return cand[np.argsort(-scores[cand], kind="stable")][:k]


class BM25Retriever(Retriever):
    """Okapi BM25 over chunk texts (k1, b as in Robertson & Zaragoza). Builds in under a second: no embeddings.

    score(q, d) = sum over the tokens t of q (repeats count) of idf(t) * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)),
    idf(t) = log(1 + (N - df + 0.5) / (df + 0.5)) (Lucene's, never negative); tokens are `bm25_tokens` for chunks and
    `query_tokens` (the same without question words) for queries. backend "numpy" (the default) is ragft's own
    postings lists; "bm25s" keeps the index in bm25s (method "lucene": the same formula without the constant k1 + 1,
    which is multiplied back, so scores match). Both give the same rankings, ties in chunk order; bm25s is no faster
    here (benchmarks/bm25.py), so it stays opt-in.

    threshold compares raw BM25 scores, which grow with query length and term rarity: they are not comparable across
    queries or corpora, so calibrate per corpus (or threshold the dense/hybrid retrievers instead).
    """

    def __init__(self, chunks: Sequence[Chunk], k1: float = 1.2, b: float = 0.75, chunk_config: ChunkConfig | None = None,
                 doc_hashes: dict[str, str] | None = None, backend: str = "numpy"):
        if backend not in BM25_BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BM25_BACKENDS)}")
        self.k1, self.b, self.backend = k1, b, backend
        self.chunk_config = chunk_config or ChunkConfig()
        self._doc_hash = dict(doc_hashes or {})  # doc_id -> content hash, for sync(); unknown hashes count as changed
        self._set(list(chunks))

    def _set(self, chunks: list[Chunk]) -> None:
        """(Re)build the term statistics over `chunks` (sync calls this: idf and avgdl depend on every chunk)."""
        self.chunks = chunks
        tokens = [bm25_tokens(c.embed_text) for c in chunks]
        self._postings, self._bm25s = {}, None
        if self.backend == "bm25s":
            try:
                import bm25s
            except ImportError as e:
                raise ImportError('backend="bm25s" needs bm25s: pip install "ragft[bm25s]"') from e
            if any(tokens):  # bm25s cannot index an empty vocabulary; no tokens -> every score is 0
                self._bm25s = bm25s.BM25(method="lucene", k1=self.k1, b=self.b)
                self._bm25s.index(tokens, show_progress=False)
            return
        postings: dict[str, list[tuple[int, int]]] = {}
        lengths = np.zeros(len(chunks), dtype=np.float32)
        for i, toks in enumerate(tokens):
            lengths[i] = len(toks)
            counts: dict[str, int] = {}
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
            for t, n in counts.items():
                postings.setdefault(t, []).append((i, n))
        n_docs = max(len(chunks), 1)
        avg = float(lengths.mean()) if len(chunks) else 1.0
        for t, plist in postings.items():
            ids = np.array([p[0] for p in plist], dtype=np.int64)
            tf = np.array([p[1] for p in plist], dtype=np.float32)
            idf = bm25_idf(n_docs, len(plist))
            norm = tf + self.k1 * (1.0 - self.b + self.b * lengths[ids] / max(avg, 1e-9))
            self._postings[t] = (ids, (idf * tf * (self.k1 + 1.0) / norm).astype(np.float32))

    @classmethod
    def from_docs(cls, docs: Sequence[Document], chunk_config: ChunkConfig | None = None, **kwargs) -> BM25Retriever:
        chunk_config = chunk_config or ChunkConfig()
        return cls(chunk_documents(docs, chunk_config), chunk_config=chunk_config,
                   doc_hashes={d.doc_id: d.content_hash for d in docs}, **kwargs)

    def __len__(self) -> int:
        return len(self.chunks)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every chunk for `query` (0 where the chunk shares no token with it)."""
        if self._bm25s is not None:
            vocab = self._bm25s.vocab_dict
            ids = [vocab[t] for t in query_tokens(query) if t in vocab]
            if not ids:
                return np.zeros(len(self.chunks), dtype=np.float32)
            return self._bm25s.get_scores_from_ids(ids) * np.float32(self.k1 + 1.0)
        s = np.zeros(len(self.chunks), dtype=np.float32)
        for t in query_tokens(query):
            if t in self._postings:
                ids, w = self._postings[t]
                s[ids] += w
        return s

    def search_batch(self, queries: Sequence[str], top_k: int = 5, threshold: float | None = None) -> list[list[Hit]]:
        queries = [check_query(q) for q in queries]
        top_k = check_top_k(top_k)
        out = []
        for q in queries:
            s = self.scores(q)
            hits = []
            for i in top_indices(s, top_k):
                if s[i] <= 0 or (threshold is not None and s[i] < threshold):
                    continue  # a chunk sharing no query term is not a match
                c = self.chunks[i]
                hits.append(Hit(c.doc_id, c.chunk_id, float(s[i]), c.embed_text, len(hits),
                                {"section": c.section, "start": c.start, "end": c.end, **c.metadata}))
            out.append(hits)
        return out

    def sync(self, docs: Sequence[Document], show_progress: bool = False) -> SyncReport:
        """Re-chunk changed documents and rebuild the term statistics (cheap; idf depends on every document anyway)."""
        t0 = time.perf_counter()
        docs = list(docs)
        by_id = {d.doc_id: d for d in docs}
        old: dict[str, list[Chunk]] = {}
        for c in self.chunks:
            old.setdefault(c.doc_id, []).append(c)
        old_hash = self._doc_hash
        added = [i for i in by_id if i not in old]
        removed = [i for i in old if i not in by_id]
        changed = [i for i in by_id if i in old and old_hash.get(i) != by_id[i].content_hash]
        fresh = chunk_documents([by_id[i] for i in added + changed], self.chunk_config)
        fresh_by: dict[str, list[Chunk]] = {}
        for c in fresh:
            fresh_by.setdefault(c.doc_id, []).append(c)
        chunks = [c for i in by_id for c in (fresh_by.get(i, []) if i in added or i in changed else old.get(i, []))]
        n_removed = sum(len(old[i]) for i in removed + changed)
        self._set(chunks)
        self._doc_hash = {i: d.content_hash for i, d in by_id.items()}
        return SyncReport(added, removed, changed, len(by_id) - len(added) - len(changed), time.perf_counter() - t0,
                          chunks_added=len(fresh), chunks_removed=n_removed)


# -------------------------------------------------------------------------------------------------------- hybrid
FUSIONS = ("convex", "rrf")
# What build_retriever, retriever_from_index and `ragft search --mode hybrid` use. Convex fusion at 0.5 beat plain
# RRF on both benchmarks (NumPy dev questions: MRR 0.880 vs 0.853; Python library docs, benchmarks/own_docs.py);
# evaluation.calibration.calibrate_fusion moves the weight per index when there are dev questions.
DEFAULT_FUSION = "convex"
DEFAULT_FUSION_WEIGHT = 0.5
# The dense share for a plain-English question that names no code ("How do I cache a page?"): BM25 matches its common
# words in the wrong pages, and dense alone was best on the dev questions of benchmarks/natural_questions.py (recall@5
# 0.80 vs 0.60 at 0.5). A question naming code (every NumPy QA question) or a sentence keeps DEFAULT_FUSION_WEIGHT.
DEFAULT_PROSE_WEIGHT = 1.0
_CODE_HINT = re.compile(r"`|\w\.\w|\w_\w|\(\)|[a-z][A-Z]|\b[A-Z]{2,}\b")


def is_prose_question(query: str) -> bool:
    """A question (ends in "?") with no sign of code: backticks, dotted or snake_case names, "()", camelCase, ACRONYMS.

    >>> is_prose_question("How do I cache a page?"), is_prose_question("Why does `np.sort` copy?")
    (True, False)
    >>> is_prose_question("Serialize obj to a string."), is_prose_question("What is DJANGO_SETTINGS_MODULE?")
    (False, False)
    """
    return query.rstrip().endswith("?") and not _CODE_HINT.search(query)


def minmax(scores: np.ndarray) -> np.ndarray:
    """Scale scores to [0, 1] (all equal -> all 0). `[2, 4, 3] -> [0, 1, 0.5]`."""
    lo, hi = float(np.min(scores)), float(np.max(scores))
    return (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)


class HybridRetriever(Retriever):
    """Fusion of a dense and a BM25 retriever over the same chunks. Candidates are the union of each one's top
    `candidates` chunks; every candidate gets both its cosine and its BM25 score.

    fusion="rrf" (this class's default): reciprocal rank fusion, sum of 1 / (rrf_k + rank) (Cormack et al. 2009,
    rrf_k = 60), which ignores how far apart the scores are and so lets a weak BM25 ranking drag a good dense one down.
    fusion="convex": weight * minmax(cosine) + (1 - weight) * minmax(BM25) over the candidates; weight 1 is dense
    alone, 0 is BM25 alone, so `calibrate_fusion` can choose it on dev questions and never do worse there than the
    better part.

    prose_weight, when set, replaces weight for queries that `is_prose_question` (convex fusion only).

    threshold filters on the dense cosine similarity of each fused hit (kept in metadata["cosine"]), so a threshold
    calibrated on the dense retriever carries over; fused scores themselves say nothing about absolute relevance.
    """

    def __init__(self, dense: DenseIndex, bm25: BM25Retriever, rrf_k: int = 60, candidates: int = 50,
                 fusion: str = "rrf", weight: float = DEFAULT_FUSION_WEIGHT, prose_weight: float | None = None):
        if fusion not in FUSIONS:
            raise ValueError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
        for name, w in (("weight", weight), ("prose_weight", prose_weight)):
            if w is not None and not 0.0 <= w <= 1.0:
                raise ValueError(f"{name} (the dense share) must be in [0, 1], got {w}")
        self.dense, self.bm25, self.rrf_k, self.candidates = dense, bm25, rrf_k, candidates
        self.fusion, self.weight, self.prose_weight = fusion, weight, prose_weight
        self.encoder = dense.encoder

    def __len__(self) -> int:
        return len(self.dense)

    def candidate_scores(self, queries: Sequence[str], top_k: int = 5) -> list[dict[str, dict]]:
        """Per query: chunk_id -> {"hit", "cosine", "bm25", "dense_rank", "bm25_rank"} for the union of both top lists
        (a rank is absent when that retriever did not list the chunk)."""
        n = max(self.candidates, top_k)
        dense_lists = self.dense.search_batch(queries, n)
        bm25_lists = self.bm25.search_batch(queries, n)
        qv = self.encoder.encode(queries, show_progress=False)
        label_of = {c.chunk_id: label for label, c in self.dense._chunks.items()}
        pos_of = {c.chunk_id: i for i, c in enumerate(self.bm25.chunks)}
        out = []
        for qi, (dl, bl) in enumerate(zip(dense_lists, bm25_lists, strict=True)):
            cands: dict[str, dict] = {}
            for name, hits in (("dense", dl), ("bm25", bl)):
                for h in hits:
                    info = cands.setdefault(h.chunk_id, {"hit": h})
                    info[f"{name}_rank"] = h.rank
                    if name == "dense":
                        info["cosine"] = h.score
            need_cos = [cid for cid, info in cands.items() if "cosine" not in info and cid in label_of]
            if need_cos:
                cos = self.dense.vectors([label_of[c] for c in need_cos]) @ qv[qi]
                for cid, c in zip(need_cos, cos, strict=True):
                    cands[cid]["cosine"] = float(c)
            bm = self.bm25.scores(queries[qi])
            for cid, info in cands.items():
                info.setdefault("cosine", -1.0)
                info["bm25"] = float(bm[pos_of[cid]]) if cid in pos_of else 0.0
            out.append(cands)
        return out

    def fuse(self, cands: dict[str, dict], weight: float | None = None) -> list[tuple[str, float]]:
        """(chunk_id, fused score) best first, by this retriever's fusion (weight overrides self.weight)."""
        ids = list(cands)
        if not ids:
            return []
        if self.fusion == "rrf":
            fused = np.array([sum(1.0 / (self.rrf_k + cands[c][f"{n}_rank"] + 1) for n in ("dense", "bm25")
                                  if f"{n}_rank" in cands[c]) for c in ids])
        else:
            w = self.weight if weight is None else weight
            fused = (w * minmax(np.array([cands[c]["cosine"] for c in ids]))
                     + (1.0 - w) * minmax(np.array([cands[c]["bm25"] for c in ids])))
        order = np.argsort(-fused, kind="stable")
        return [(ids[i], float(fused[i])) for i in order]

    def search_batch(self, queries: Sequence[str], top_k: int = 5, threshold: float | None = None) -> list[list[Hit]]:
        queries = [check_query(q) for q in queries]
        top_k = check_top_k(top_k)
        out = []
        for query, cands in zip(queries, self.candidate_scores(queries, top_k), strict=True):
            hits = []
            prose = self.prose_weight is not None and is_prose_question(query)
            for cid, score in self.fuse(cands, self.prose_weight if prose else None):
                info = {k: v for k, v in cands[cid].items() if k != "hit"}
                if threshold is not None and info["cosine"] < threshold:
                    continue
                h = cands[cid]["hit"]
                hits.append(Hit(h.doc_id, cid, score, h.text, len(hits), {**h.metadata, **info}))
                if len(hits) == top_k:
                    break
            out.append(hits)
        return out

    def sync(self, docs: Sequence[Document], show_progress: bool = True) -> SyncReport:
        report = self.dense.sync(docs, show_progress)
        self.bm25._doc_hash = self.dense.doc_hashes()
        self.bm25._set(self.dense.chunks)
        return report


# ------------------------------------------------------------------------------------------------------ building
def build_retriever(docs: Sequence[Document], mode: str = "dense", chunker: str | ChunkConfig = "structure",
                    chunk_size: int = DEFAULT_CHUNK_SIZE, chunk_overlap: int = DEFAULT_CHUNK_OVERLAP, embedder=None,
                    show_progress: bool = True, hnsw: HnswConfig | None = None, fusion: str = DEFAULT_FUSION,
                    fusion_weight: float = DEFAULT_FUSION_WEIGHT,
                    prose_weight: float | None = DEFAULT_PROSE_WEIGHT) -> Retriever:
    """Chunk, embed and index documents; mode "dense" (HNSW), "exact", "bm25" or "hybrid" (dense + BM25, fused by
    `fusion`: "convex" with dense share fusion_weight, prose_weight for plain-English questions, or "rrf").

    embedder: an encoder, a name ("minilm", "hashing") or None for MiniLM.
    >>> r = build_retriever(load_corpus("2.4.6")[:50]); r.search("sort an array", top_k=3)[0].doc_id  # doctest: +SKIP
    """
    from .embeddings import get_encoder

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    cfg = chunker if isinstance(chunker, ChunkConfig) else ChunkConfig(chunker, chunk_size, chunk_overlap)
    docs = list(docs)
    if not docs:
        raise ValueError("no documents to index")
    if mode == "bm25":
        return BM25Retriever.from_docs(docs, cfg)
    encoder = get_encoder(embedder or "minilm") if isinstance(embedder, str) or embedder is None else embedder
    t0 = time.perf_counter()
    dense = DenseIndex(encoder, hnsw, cfg)
    dense.add(docs, show_progress=show_progress)
    dense.build_seconds = time.perf_counter() - t0
    if mode == "dense":
        return dense
    if mode == "exact":
        return dense.exact()
    return HybridRetriever(dense, BM25Retriever(dense.chunks, chunk_config=cfg, doc_hashes=dense.doc_hashes()),
                           fusion=fusion, weight=fusion_weight, prose_weight=prose_weight)


def retriever_from_index(dense: DenseIndex, mode: str = "dense", fusion: str = DEFAULT_FUSION,
                         fusion_weight: float = DEFAULT_FUSION_WEIGHT,
                         prose_weight: float | None = DEFAULT_PROSE_WEIGHT) -> Retriever:
    """Another retriever over a loaded DenseIndex's chunks (BM25 and hybrid build their term statistics on the fly)."""
    if mode == "dense":
        return dense
    if mode == "exact":
        return dense.exact()
    bm25 = BM25Retriever(dense.chunks, chunk_config=dense.chunk_config, doc_hashes=dense.doc_hashes())
    if mode == "bm25":
        return bm25
    if mode == "hybrid":
        return HybridRetriever(dense, bm25, fusion=fusion, weight=fusion_weight, prose_weight=prose_weight)
    raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")


def search_table(retriever: Retriever, query: str, top_k: int = 5, threshold: float | None = None, ef: int | None = None,
                 preview: int = 140):
    """One query's hits as a table (rank, score, doc_id, section, text preview), for the search widget and reports.

    ef applies to HNSW retrievers only (the dense index, or the dense half of a hybrid).
    """
    import pandas as pd

    dense = retriever if isinstance(retriever, DenseIndex) else getattr(retriever, "dense", None)
    old_ef = dense.config.ef if dense is not None else None
    if ef is not None and dense is not None:
        dense.config.ef = ef
    try:
        hits = retriever.search(query, top_k=top_k, threshold=threshold)
    finally:
        if dense is not None:
            dense.config.ef = old_ef
    return pd.DataFrame([{"rank": h.rank, "score": round(h.score, 4), "doc_id": h.doc_id,
                          "section": h.metadata.get("section", ""), "text": " ".join(h.text.split())[:preview]}
                         for h in hits], columns=["rank", "score", "doc_id", "section", "text"])
