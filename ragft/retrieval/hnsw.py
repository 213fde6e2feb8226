"""Dense retrieval: an HNSW index (hnswlib, cosine) you can update in place, and the exact dense baseline.

The HNSW index saves and loads atomically and checks on load what it was built with (format version, model, dimension,
file checksums), and recovers a folder that a kill left parked as `.NAME.old-PID` mid-swap; writers of one folder
queue on `writer_lock`. `sync(docs)` diffs a new corpus against the index by doc_id and content hash and touches only what
changed. Does not do lexical or fused retrieval (see `retrievers.py`), does not measure recall vs speed (see `speed.py`),
does not generate answers and does not score anything.
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..core.cache import locked
from ..core.io import atomic_path, recover_folder
from ..data.corpus import Document
from .chunking import Chunk, ChunkConfig, chunk_documents
from .exact import exact_topk
from .index import Hit, IndexFormatError, IndexMismatchError, Retriever, SyncReport, check_query, check_top_k

FORMAT = "ragft-hnsw-index"
FORMAT_VERSION = 1


@dataclass
class HnswConfig:
    """hnswlib knobs. M: links per node (memory, recall); ef_construction: build-time beam; ef: query-time beam (>= top_k);
    build_threads: threads that insert into the graph (1, or -1 for every core)."""

    M: int = 16
    ef_construction: int = 200
    ef: int = 64
    # parallel inserts give another graph, and so another borderline neighbour, on every build: one thread is the
    # default so that the same documents give the same answers (docs/decisions.md, hnsw_build_threads)
    build_threads: int = 1

    def __post_init__(self):
        if self.M < 2 or self.ef_construction < 1 or self.ef < 1:
            raise ValueError(f"HNSW knobs must be positive (M >= 2): got {self}")
        if self.build_threads != -1 and self.build_threads < 1:
            raise ValueError(f"build_threads must be >= 1, or -1 for every core: got {self.build_threads}")


def writer_lock(path: str | os.PathLike, on_wait=None):
    """The lock every writer of the index folder `path` holds while it reads, syncs and saves it, so two writers queue
    and neither loses the other's update. A file `.NAME.lock` beside the folder (inside, a save would replace it)."""
    path = Path(path)
    return locked(path.with_name(f".{path.name}.lock"), on_wait=on_wait)


def build_hnsw(vectors: np.ndarray, config: HnswConfig | None = None, labels: np.ndarray | None = None,
               max_elements: int | None = None):
    """A bare hnswlib cosine index over `vectors` (used by DenseIndex and the benchmark)."""
    import hnswlib

    config = config or HnswConfig()
    index = hnswlib.Index(space="cosine", dim=vectors.shape[1])
    index.init_index(max_elements=max(max_elements or len(vectors), 1), ef_construction=config.ef_construction,
                     M=config.M, allow_replace_deleted=True)
    if len(vectors):
        index.add_items(vectors, labels if labels is not None else np.arange(len(vectors)), num_threads=config.build_threads)
    index.set_ef(config.ef)
    return index


# ----------------------------------------------------------------------------------------------- dense: HNSW
class DenseIndex(Retriever):
    """Chunks embedded into an hnswlib cosine index, with their metadata, updatable in place.

    Labels are never reused: a deleted chunk's slot is recycled by hnswlib (`allow_replace_deleted`) under a new label,
    because reusing a label while several slots are deleted corrupts hnswlib's label table.
    >>> index = DenseIndex(get_encoder()); index.add(docs); index.search("sort an array", top_k=3)  # doctest: +SKIP
    """

    def __init__(self, encoder, config: HnswConfig | None = None, chunk_config: ChunkConfig | None = None):
        self.encoder = encoder
        self.config = config or HnswConfig()
        self.chunk_config = chunk_config or ChunkConfig()
        self._hnsw = build_hnsw(np.zeros((0, encoder.dim), np.float32), self.config, max_elements=1024)
        self._chunks: dict[int, Chunk] = {}  # label -> chunk, live chunks only
        self._doc_labels: dict[str, list[int]] = {}
        self._doc_hash: dict[str, str] = {}
        self._next_label = 0
        self._n_deleted = 0  # deleted slots hnswlib can recycle
        self._exact_cache = None
        self._warned_ef = False
        self.build_seconds = 0.0
        self.recovered_from: Path | None = None  # set by `load` when it recovered an interrupted swap

    # -- contents
    def __len__(self) -> int:
        return len(self._chunks)

    @property
    def doc_ids(self) -> list[str]:
        return list(self._doc_labels)

    @property
    def chunks(self) -> list[Chunk]:
        return [self._chunks[label] for label in sorted(self._chunks)]

    def doc_hashes(self) -> dict[str, str]:
        return dict(self._doc_hash)

    def vectors(self, labels: Sequence[int] | None = None) -> np.ndarray:
        """Stored unit vectors (hnswlib keeps them; cosine space stores them normalized) for labels, default all live."""
        labels = sorted(self._chunks) if labels is None else list(labels)
        if not labels:
            return np.zeros((0, self.encoder.dim), np.float32)
        return np.asarray(self._hnsw.get_items(labels), dtype=np.float32)

    def memory_bytes(self) -> int:
        """Size of the hnswlib graph and vectors as serialized (what `save` writes for hnsw.bin)."""
        return int(self._hnsw.index_file_size())

    # -- updates
    def add(self, docs: Iterable[Document], show_progress: bool = True) -> int:
        """Chunk, embed and insert documents; a doc_id already present raises (use `replace` or `sync`). Returns chunks added."""
        docs = list(docs)
        dupes = [d.doc_id for d in docs if d.doc_id in self._doc_labels]
        if dupes:
            raise ValueError(f"{len(dupes)} doc_id(s) already indexed (use replace() or sync()): {dupes[:5]}")
        if len({d.doc_id for d in docs}) != len(docs):
            raise ValueError("duplicate doc_ids in the documents to add")
        chunks = chunk_documents(docs, self.chunk_config, encoder=self.encoder if self.chunk_config.strategy == "semantic" else None)
        vecs = self.encoder.encode([c.embed_text for c in chunks], show_progress=show_progress)
        self._insert(chunks, vecs)
        for d in docs:
            self._doc_hash[d.doc_id] = d.content_hash
            self._doc_labels.setdefault(d.doc_id, [])
        return len(chunks)

    def _insert(self, chunks: list[Chunk], vecs: np.ndarray) -> None:
        if not chunks:
            return
        labels = np.arange(self._next_label, self._next_label + len(chunks))
        self._next_label += len(chunks)
        reuse = min(self._n_deleted, len(chunks))
        need = self._hnsw.get_current_count() + len(chunks) - reuse
        if need > self._hnsw.get_max_elements():
            self._hnsw.resize_index(max(need, 2 * self._hnsw.get_max_elements()))
        if reuse:
            self._hnsw.add_items(vecs[:reuse], labels[:reuse], num_threads=self.config.build_threads,
                                 replace_deleted=True)
        if reuse < len(chunks):
            self._hnsw.add_items(vecs[reuse:], labels[reuse:], num_threads=self.config.build_threads)
        self._n_deleted -= reuse
        for label, c in zip(labels.tolist(), chunks, strict=True):
            self._chunks[label] = c
            self._doc_labels.setdefault(c.doc_id, []).append(label)
        self._exact_cache = None

    def delete(self, doc_ids: Iterable[str], missing: str = "raise") -> int:
        """Remove documents (all their chunks). Unknown doc_ids raise KeyError listing them, or are skipped with
        missing="skip". Returns the number of chunks removed; their slots are recycled by later additions."""
        doc_ids = list(doc_ids)
        unknown = [d for d in doc_ids if d not in self._doc_labels]
        if unknown and missing == "raise":
            raise KeyError(f"{len(unknown)} doc_id(s) not in the index: {unknown[:10]}")
        n = 0
        for doc_id in doc_ids:
            for label in self._doc_labels.pop(doc_id, []):
                self._hnsw.mark_deleted(label)
                del self._chunks[label]
                self._n_deleted += 1
                n += 1
            self._doc_hash.pop(doc_id, None)
        self._exact_cache = None
        return n

    def replace(self, docs: Iterable[Document], show_progress: bool = True) -> int:
        """Delete then add each document (a new version of it); returns chunks added."""
        docs = list(docs)
        self.delete([d.doc_id for d in docs], missing="skip")
        return self.add(docs, show_progress=show_progress)

    def sync(self, docs: Iterable[Document], show_progress: bool = True) -> SyncReport:
        """Make the index hold exactly `docs`: add new doc_ids, delete missing ones, replace those whose content hash changed.

        Unchanged documents are not touched; changed ones are re-chunked, and only chunk texts the embedding cache has
        never seen are embedded.
        """
        t0 = time.perf_counter()
        docs = list(docs)
        by_id = {d.doc_id: d for d in docs}
        if len(by_id) != len(docs):
            raise ValueError("duplicate doc_ids in the documents to sync")
        added = [i for i in by_id if i not in self._doc_hash]
        removed = [i for i in self._doc_hash if i not in by_id]
        changed = [i for i in by_id if i in self._doc_hash and self._doc_hash[i] != by_id[i].content_hash]
        before_chunks, before_computed = len(self), self.encoder.stats["computed"]
        n_removed = self.delete(removed + changed)
        n_added = self.add([by_id[i] for i in added + changed], show_progress=show_progress)
        assert len(self) == before_chunks - n_removed + n_added
        return SyncReport(added=added, removed=removed, changed=changed,
                          unchanged=len(by_id) - len(added) - len(changed), seconds=time.perf_counter() - t0,
                          chunks_added=n_added, chunks_removed=n_removed,
                          embedded=self.encoder.stats["computed"] - before_computed)

    # -- search
    def search_batch(self, queries: Sequence[str], top_k: int = 5, threshold: float | None = None,
                     ef: int | None = None) -> list[list[Hit]]:
        """Approximate top_k by cosine. ef (default config.ef) below top_k is raised to top_k, with a warning once."""
        queries = [check_query(q) for q in queries]
        top_k = check_top_k(top_k)
        if not self._chunks or not queries:
            return [[] for _ in queries]
        k = min(top_k, len(self._chunks))
        qv = self.encoder.encode(queries, show_progress=False)
        labels, dists = self._knn(qv, k, self.config.ef if ef is None else ef)
        return [self._hits(lab, 1.0 - dist, threshold) for lab, dist in zip(labels, dists, strict=True)]

    def search_vectors(self, qv: np.ndarray, top_k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw HNSW search on query vectors: (labels, cosine similarities); for benchmarks."""
        labels, dists = self._knn(np.asarray(qv, np.float32), min(check_top_k(top_k), len(self._chunks)),
                                  self.config.ef if ef is None else ef)
        return labels, 1.0 - dists

    def _knn(self, qv: np.ndarray, k: int, ef: int):
        if ef < k:
            if not self._warned_ef:
                warnings.warn(f"ef={ef} < top_k={k}: hnswlib needs ef >= k, searching with ef={k}", stacklevel=3)
                self._warned_ef = True
            ef = k
        self._hnsw.set_ef(ef)
        try:
            return self._hnsw.knn_query(qv, k=k)
        except RuntimeError:
            # Deleted slots can leave fewer than k reachable live items at this ef; widen the beam to the whole index.
            self._hnsw.set_ef(max(ef, len(self._chunks) + self._n_deleted))
            try:
                return self._hnsw.knn_query(qv, k=k)
            except RuntimeError:
                warnings.warn(f"HNSW could not return k={k} of {len(self._chunks)} live items even at ef={len(self._chunks)}"
                              " (k close to the index size, or a graph fragmented by deletions: compact() rebuilds it); "
                              "exact search used for this batch", stacklevel=3)
                live = np.array(sorted(self._chunks))
                idx, sims = exact_topk(self.vectors(live), qv, k)
                return live[idx], 1.0 - sims
            finally:
                self._hnsw.set_ef(ef)

    def _hits(self, labels, sims, threshold) -> list[Hit]:
        hits = []
        for label, sim in zip(labels, sims, strict=True):
            if threshold is not None and sim < threshold:
                continue
            c = self._chunks[int(label)]
            hits.append(Hit(c.doc_id, c.chunk_id, float(sim), c.embed_text, len(hits),
                            {"section": c.section, "start": c.start, "end": c.end, **c.metadata}))
        return hits

    def exact(self, backend: str = "auto") -> ExactRetriever:
        """The exact (brute-force) retriever over the same chunks and vectors: the baseline HNSW is measured against."""
        return ExactRetriever(self, backend)

    def compact(self) -> None:
        """Rebuild the graph from the live vectors (drops deleted slots; same labels)."""
        labels = sorted(self._chunks)
        vecs = self.vectors(labels)
        self._hnsw = build_hnsw(vecs, self.config, np.array(labels, dtype=np.int64), max_elements=max(len(labels), 1024))
        self._n_deleted = 0
        self._exact_cache = None

    # -- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the index folder atomically: hnsw.bin (graph + vectors), chunks.jsonl, meta.json (with checksums)."""
        path = Path(path)
        with atomic_path(path, is_dir=True) as tmp:
            self._hnsw.save_index(str(tmp / "hnsw.bin"))
            written, size = (tmp / "hnsw.bin").stat().st_size, self._hnsw.index_file_size()
            if written != size:  # hnswlib does not check its writes: a full disk would leave a short file
                raise OSError(errno.ENOSPC, f"hnsw.bin written short ({written} of {size} bytes)", str(path))
            with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
                for label in sorted(self._chunks):
                    f.write(json.dumps({"label": label, **self._chunks[label].to_json()}, ensure_ascii=False) + "\n")
            meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "encoder": {"name": self.encoder.name, "model_id": self.encoder.model_id, "dim": self.encoder.dim},
                    "hnsw": asdict(self.config), "chunking": self.chunk_config.to_json(),
                    "max_elements": self._hnsw.get_max_elements(), "n_deleted": self._n_deleted,
                    "next_label": self._next_label, "n_chunks": len(self._chunks), "docs": self._doc_hash,
                    "files": {name: _sha256(tmp / name) for name in ("hnsw.bin", "chunks.jsonl")}}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, encoder=None) -> DenseIndex:
        """Load an index saved by `save`, refusing (IndexFormatError / IndexMismatchError) anything it cannot trust."""
        import hnswlib

        from .embeddings import encoder_for_model_id

        path = Path(path)
        recovered = recover_folder(path)  # a kill between atomic_path's two renames left only `.NAME.old-PID`
        meta = _read_meta(path)
        if encoder is None:
            encoder = encoder_for_model_id(meta["encoder"]["model_id"])
        if encoder.model_id != meta["encoder"]["model_id"] or encoder.dim != meta["encoder"]["dim"]:
            raise IndexMismatchError(
                f"{path} was built with {meta['encoder']['model_id']} ({meta['encoder']['dim']}-d) but the encoder given is "
                f"{encoder.model_id} ({encoder.dim}-d): its vectors would not be comparable. Rebuild it with `ragft index`.")
        self = cls(encoder, HnswConfig(**meta["hnsw"]), ChunkConfig.from_saved(meta["chunking"]))
        self.recovered_from = recovered
        self._hnsw = hnswlib.Index(space="cosine", dim=encoder.dim)
        self._hnsw.load_index(str(path / "hnsw.bin"), max_elements=meta["max_elements"], allow_replace_deleted=True)
        self._hnsw.set_ef(self.config.ef)
        rows = [json.loads(line) for line in (path / "chunks.jsonl").read_text(encoding="utf-8").splitlines() if line]
        for row in rows:
            c = Chunk.from_json(row)
            self._chunks[row["label"]] = c
            self._doc_labels.setdefault(c.doc_id, []).append(row["label"])
        self._doc_hash = dict(meta["docs"])
        for doc_id in self._doc_hash:
            self._doc_labels.setdefault(doc_id, [])
        self._next_label, self._n_deleted = meta["next_label"], meta["n_deleted"]
        if len(self._chunks) != meta["n_chunks"] or self._hnsw.get_current_count() != len(self._chunks) + self._n_deleted:
            raise IndexFormatError(f"{path}: chunk count does not match the graph ({len(self._chunks)} chunks, "
                                   f"{self._hnsw.get_current_count()} graph slots); rebuild it with `ragft index`")
        return self


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _read_meta(path: Path) -> dict:
    if not path.is_dir():
        raise IndexFormatError(f"no index at {path} (expected a folder made by `ragft index` / DenseIndex.save)")
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexFormatError(f"{path}/meta.json is missing: not a ragft index, or an interrupted write") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise IndexFormatError(f"{path}/meta.json is corrupted ({e}); rebuild the index with `ragft index`") from None
    if meta.get("format") != FORMAT:
        raise IndexFormatError(f"{path} is not a ragft index (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise IndexFormatError(f"{path} has format version {meta.get('format_version')}; this ragft reads version "
                               f"{FORMAT_VERSION}. Rebuild it with `ragft index`.")
    for name, digest in meta.get("files", {}).items():
        f = path / name
        if not f.exists():
            raise IndexFormatError(f"{f} is missing; rebuild the index with `ragft index`")
        if _sha256(f) != digest:
            raise IndexFormatError(f"{f} is truncated or corrupted (checksum mismatch); rebuild the index with `ragft index`")
    return meta


# ------------------------------------------------------------------------------------------------ dense: exact
class ExactRetriever(Retriever):
    """Brute-force cosine search over a DenseIndex's live vectors: always right, slow on big corpora (the baseline)."""

    def __init__(self, dense: DenseIndex, backend: str = "auto"):
        self.dense = dense
        self.backend = backend
        self.encoder = dense.encoder

    def _matrix(self):
        d = self.dense
        if d._exact_cache is None:
            labels = np.array(sorted(d._chunks), dtype=np.int64)
            d._exact_cache = (labels, d.vectors(labels))
        return d._exact_cache

    def search_batch(self, queries: Sequence[str], top_k: int = 5, threshold: float | None = None) -> list[list[Hit]]:
        queries = [check_query(q) for q in queries]
        top_k = check_top_k(top_k)
        labels, matrix = self._matrix()
        if not len(labels) or not queries:
            return [[] for _ in queries]
        qv = self.encoder.encode(queries, show_progress=False)
        idx, sims = exact_topk(matrix, qv, min(top_k, len(labels)), self.backend)
        return [self.dense._hits(labels[i], s, threshold) for i, s in zip(idx, sims, strict=True)]

    def sync(self, docs, show_progress: bool = True) -> SyncReport:
        return self.dense.sync(docs, show_progress)
