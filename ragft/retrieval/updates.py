"""What a knowledge update costs on the retrieval route: which documents and chunks changed between two releases, how
long embedding them takes here, and what a sync would have cost with an empty embedding cache. Retraining's price is
in the adapter's training log (`finetune.read_training_log`); notebooks 04 and 05 set one against the other.

Does not sync anything (a retriever's `sync` does) and does not train.
Introduced in notebooks/04_qlora_finetuning.ipynb; the sync side in notebooks/05_hybrid.ipynb.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from .embeddings import load_embedder
from .index import chunks_of


def changed_chunks(old_docs: Sequence, new_docs: Sequence, chunk_size: int = 1000) -> list[str]:
    """The `chunk_size`-character windows (no overlap) of `new_docs` that no document of `old_docs` has, sorted: what an
    index must embed anew when the documentation moves from one release to the other. A rough stand-in for `chunking.py`.

    >>> changed_chunks([Document(doc_id="a", text="abcd")], [Document(doc_id="a", text="abce")], 2)  # doctest: +SKIP
    ['ce']
    """
    def window(text: str) -> set[str]:
        return {text[k: k + chunk_size] for k in range(0, len(text), chunk_size)}

    old = set().union(*(window(d.text) for d in old_docs))
    return sorted({c for d in new_docs for c in window(d.text)} - old)


def embedding_rate(texts: Sequence[str], batch_size: int = 16) -> float:
    """Texts per second the offline embedder encodes now, on this machine (`texts` is the sample; loading is not timed)."""
    embedder = load_embedder()
    t0 = time.perf_counter()
    embedder.encode(list(texts), batch_size=batch_size)
    return len(texts) / (time.perf_counter() - t0)


def doc_ids_of(retriever) -> set[str]:
    """The doc_ids a retriever holds (from its chunks)."""
    return {c.doc_id for c in chunks_of(retriever)}


def cold_sync_seconds(report, retriever, n_sample: int = 32) -> float:
    """What `report`'s sync would have cost with an empty embedding cache: its measured seconds plus every added chunk
    the cache served, priced at the embedding speed measured now on `n_sample` of the index's chunks (cache bypassed).
    BM25 embeds nothing: its sync costs what it measured."""
    encoder = getattr(retriever, "encoder", None)
    if encoder is None or not hasattr(encoder, "model") or report.chunks_added <= report.embedded:
        return float(report.seconds)
    sample = [c.embed_text for c in chunks_of(retriever)[:n_sample]]
    t0 = time.perf_counter()
    encoder.model.encode(sample, batch_size=len(sample), show_progress_bar=False)
    per_chunk = (time.perf_counter() - t0) / max(len(sample), 1)
    return float(report.seconds + (report.chunks_added - report.embedded) * per_chunk)
