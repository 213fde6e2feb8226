"""Exact (brute-force) inner-product top-k over a matrix of unit vectors, with faiss, torch or numpy: the baseline an
approximate index is measured against, and its fallback.

Holds no index and no chunks (see `hnsw.py`), and times nothing (see `speed.py`).
"""

from __future__ import annotations

import numpy as np


def exact_topk(matrix: np.ndarray, queries: np.ndarray, k: int, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k: (indices, similarities), each (n_queries, k), best first.

    backend: "faiss" (IndexFlatIP), "torch" (matmul + topk), "numpy" (matmul + argpartition) or "auto" (faiss if installed,
    else torch), the fastest first as measured in STACK.md: an honest exact baseline is the fastest one available.
    """
    k = min(k, len(matrix))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if backend == "auto":
        backend = "faiss" if has_faiss() else "torch"
    if backend == "faiss":
        import faiss

        flat = faiss.IndexFlatIP(matrix.shape[1])
        flat.add(np.ascontiguousarray(matrix, dtype=np.float32))
        sims, idx = flat.search(queries, k)
        return idx, sims
    if backend == "torch":
        import torch

        with torch.no_grad():
            s = torch.from_numpy(queries) @ torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)).T
            sims, idx = torch.topk(s, k, dim=1)
        return idx.numpy(), sims.numpy()
    if backend == "numpy":
        s = queries @ matrix.T
        part = np.argpartition(-s, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(s, part, axis=1), axis=1)
        idx = np.take_along_axis(part, order, axis=1)
        return idx, np.take_along_axis(s, idx, axis=1)
    raise ValueError(f"unknown backend {backend!r}: faiss, torch, numpy or auto")


def has_faiss() -> bool:
    try:
        import faiss  # noqa: F401

        return True
    except ImportError:
        return False
