"""Measuring recall vs queries/s: clustered test vectors, the exact baselines' speed and true top-k, an hnswlib
recall/speed curve over ef, and the timer they share (what notebook 02 and benchmarks/retrieval.py draw).

Does not index documents or answer queries (see `hnsw.py`).
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from .exact import exact_topk, has_faiss
from .hnsw import HnswConfig, build_hnsw

__all__ = ["best_time", "clustered_vectors", "exact_baselines", "has_faiss", "hnsw_curve", "recall_vs_truth"]


def clustered_vectors(n: int, dim: int = 384, n_clusters: int | None = None, spread: float = 0.6,
                      seed: int = 0) -> np.ndarray:
    """n unit vectors around n_clusters random centres (default n // 100): data with structure, like real embeddings.

    Uniform random vectors are the worst case for every ANN index (STACK.md: recall@10 0.07-0.22); real embeddings cluster.
    spread is the noise's norm relative to a centre's (both about sqrt(dim) before normalizing).
    """
    rng = np.random.default_rng(seed)
    n_clusters = n_clusters or max(n // 100, 1)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    x = centres[rng.integers(0, n_clusters, n)] + spread * rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)

def best_time(fn, repeats: int = 3) -> float:
    """The fastest of `repeats` runs of fn() in seconds (the least disturbed by other processes)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def exact_baselines(X: np.ndarray, Q: np.ndarray, k: int = 10, backends: Sequence[str] = ("faiss", "torch", "numpy"),
                    repeats: int = 3) -> tuple[dict[str, float], np.ndarray]:
    """Queries/s of each exact backend (those installed) on the same data, and the true top-k ids (for recall)."""
    qps, truth = {}, None
    for b in backends:
        if b == "faiss" and not has_faiss():
            continue
        qps[b] = len(Q) / best_time(lambda b=b: exact_topk(X, Q, k, b), repeats)
        if truth is None:
            truth = exact_topk(X, Q, k, b)[0]
    return qps, truth


def recall_vs_truth(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true top-k ids found, per query (the usual ANN recall@k)."""
    k = truth.shape[1]
    return float(np.mean([len(set(f[:k].tolist()) & set(t.tolist())) / k for f, t in zip(found, truth, strict=True)]))


def hnsw_curve(X: np.ndarray, Q: np.ndarray, truth: np.ndarray, ef_values: Sequence[int], M: int = 16,
               ef_construction: int = 200, repeats: int = 3, one_per_call: bool = False):
    """Build one hnswlib index and measure recall@k and queries/s at each ef (k = truth's width). One row per ef.
    one_per_call: also "queries/s, 1 per call": one knn_query per query, one after another (a server answering
    single requests), next to the batched knn_query of all queries (which spreads them over the CPU's threads)."""
    import pandas as pd

    k = truth.shape[1]
    t0 = time.perf_counter()
    # every core, as faiss builds: this curve times the library, and one graph per run is all it needs
    graph = build_hnsw(X, HnswConfig(M, ef_construction, max(ef_values[0], k), build_threads=-1))
    build_s = time.perf_counter() - t0
    rows = []
    for ef in ef_values:
        graph.set_ef(max(ef, k))
        found = graph.knn_query(Q, k=k)[0]
        qps = len(Q) / best_time(lambda: graph.knn_query(Q, k=k), repeats)
        rows.append({"M": M, "ef_construction": ef_construction, "ef": max(ef, k), f"recall@{k}": recall_vs_truth(found, truth),
                     "queries/s": qps, "build s": build_s, "memory MB": graph.index_file_size() / 1e6})
        if one_per_call:
            rows[-1]["queries/s, 1 per call"] = len(Q) / best_time(lambda: [graph.knn_query(q, k=k) for q in Q], repeats)
    return pd.DataFrame(rows)
