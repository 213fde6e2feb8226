"""The retriever interface every retriever shares: `Hit`, `Retriever.search` / `.search_batch`, `SyncReport`, the
checks on a query and top_k, and the errors a saved index raises on load.

Holds no vectors and searches nothing itself: the HNSW index and exact baseline are in `hnsw.py`, lexical and fused
retrieval in `retrievers.py`, the recall-vs-speed measurements in `speed.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


class IndexLoadError(RuntimeError):
    """A saved index cannot be used; the message says what to do."""


class IndexFormatError(IndexLoadError):
    """The saved index is missing, truncated, corrupted, or of another format version."""


class IndexMismatchError(IndexLoadError):
    """The saved index was built with another embedding model or dimension than the one given."""


@dataclass
class Hit:
    """One retrieved chunk. score: higher = more similar (cosine for dense; BM25 and RRF scores for those retrievers)."""

    doc_id: str
    chunk_id: str
    score: float
    text: str  # the chunk as searched: header line (structure chunker) + span
    rank: int  # 0 = best
    metadata: dict = field(default_factory=dict)

    def to_json(self, with_metadata: bool = False) -> dict:
        row = {"doc_id": self.doc_id, "chunk_id": self.chunk_id, "score": round(float(self.score), 6), "text": self.text}
        return {**row, "rank": self.rank, "metadata": self.metadata} if with_metadata else row


@dataclass
class SyncReport:
    """What `sync` did: doc_ids added, removed and changed, how many were unchanged, and how long it took."""

    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int
    seconds: float
    chunks_added: int = 0
    chunks_removed: int = 0
    embedded: int = 0  # chunk texts actually run through the model (the rest came from the embedding cache)

    def __str__(self) -> str:
        return (f"sync: {len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} changed, "
                f"{self.unchanged} unchanged docs; {self.chunks_added} chunks added, {self.chunks_removed} removed, "
                f"{self.embedded} embedded; {self.seconds:.2f} s")


def check_query(query: str) -> str:
    if not isinstance(query, str) or not query.strip():
        raise ValueError("empty query: give some text to search for")
    return query


def check_top_k(top_k: int) -> int:
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    return int(top_k)


class Retriever:
    """What every retriever shares: `search` is `search_batch` of one query."""

    def search(self, query: str, top_k: int = 5, threshold: float | None = None) -> list[Hit]:
        return self.search_batch([query], top_k, threshold)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 5, threshold: float | None = None) -> list[list[Hit]]:
        raise NotImplementedError


def chunks_of(retriever) -> list:
    """The chunks a retriever holds (its own, or those of its dense half for a fused retriever)."""
    for obj in (retriever, getattr(retriever, "dense", None)):
        chunks = getattr(obj, "chunks", None)
        if chunks:
            return list(chunks)
    raise TypeError(f"{type(retriever).__name__} does not expose its chunks; use a DenseIndex, BM25 or hybrid retriever")

