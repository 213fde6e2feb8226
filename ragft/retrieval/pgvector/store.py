"""Retrieval inside PostgreSQL with pgvector, behind the same interface as the hnswlib `DenseIndex`: `search`,
`search_batch`, `sync`, `chunks`, `doc_hashes`. Chunks, their documents (doc_id, version, content hash) and vectors live
in tables; an HNSW index (`vector_cosine_ops`, the same M / ef_construction, `hnsw.ef_search` set per query) serves
dense search, Postgres full-text search the lexical half, and hybrid reciprocal rank fusion runs in one SQL query.
`search_batch` answers up to BATCH queries per SQL statement (one round trip), each with its own HNSW scan in the server.
`sync` is one transaction: a reader sees the old corpus or the new one, never half of it; two writers queue.

With no URL it starts an embedded server (the `pgserver` wheel) in a folder under the cache; a URL (or
RAGFT_DATABASE_URL) uses any PostgreSQL with the pgvector extension. Plain psycopg 3 and SQL, no ORM.
Does not chunk or embed by itself (see `chunking.py`, `embeddings.py`); its lexical ranking is Postgres' `ts_rank`
(term frequency, no idf), not the BM25 of `retrievers.py`, so the two lexical rankings differ.
The class is a composition: the SQL text in `schema.py`, searching in `search.py`, writing and `sync` in `sync.py`, the
server in `server.py`; this module opens, builds and reads an index and holds its connections.
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Sequence

import numpy as np
import psycopg
from psycopg import sql

from ...data.corpus import Document
from ...retrieval.chunking import Chunk, ChunkConfig, chunk_documents
from ...retrieval.embeddings import encoder_for_model_id
from ...retrieval.hnsw import HnswConfig
from ...retrieval.index import Retriever
from .schema import COLUMNS, FORMAT, FORMAT_VERSION, SCHEMA_PREFIX, index_name
from .search import BATCH, MODES, Searching, lexical_query
from .server import EmbeddedServer, PgStoreError, connect, describe_url, resolve_url
from .sync import Writing

__all__ = ["BATCH", "EmbeddedServer", "PgStoreError", "PgVectorIndex", "connect", "index_name", "lexical_query",
           "open_retriever"]


class PgVectorIndex(Searching, Writing, Retriever):
    """Chunks, vectors and document metadata in PostgreSQL tables (schema `ragft_<name>`), searched with pgvector's HNSW.

    Build with `PgVectorIndex.build(docs, encoder, name=...)` or `from_dense(dense_index)`, reopen with `open(name)`.
    `mode`: "dense" (HNSW), "exact" (sequential scan), "lexical" (full-text search) or "hybrid" (RRF of the two).
    >>> idx = PgVectorIndex.build(load_corpus("2.4.6")[:50], HashingEncoder()); idx.search("sort", top_k=3)  # doctest: +SKIP
    """

    def __init__(self, encoder, name: str = "default", url: str | None = None, config: HnswConfig | None = None,
                 chunk_config: ChunkConfig | None = None, mode: str = "dense", rrf_k: int = 60, candidates: int = 50,
                 server_folder: str | os.PathLike | None = None):
        """Connect to an existing index or an empty database; use build/open/from_dense rather than this directly."""
        if mode == "bm25":
            mode = "lexical"  # the CLI's name for the lexical half
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        self.encoder, self.name, self.mode = encoder, index_name(name), mode
        self.config = config or HnswConfig()
        self.chunk_config = chunk_config or ChunkConfig()
        self.rrf_k, self.candidates = rrf_k, candidates
        self.schema = SCHEMA_PREFIX + self.name
        self.build_seconds = 0.0
        self._server = None
        url = resolve_url(url)
        if url is None:
            self._server = EmbeddedServer(server_folder)
            url = self._server.start()
        self.url, self.where = url, describe_url(url)
        self._local = threading.local()
        self._conns: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self._warned_ef = False
        with self._or_close():
            self._conn()

    # -- opening and building
    @contextlib.contextmanager
    def _or_close(self):
        """Close the connection (and stop an embedded server) when the block fails: never leave a server running."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, name: str = "default", url: str | None = None, encoder=None, mode: str = "dense",
             server_folder: str | os.PathLike | None = None) -> PgVectorIndex:
        """An index made earlier, checked against the encoder (default: the one it was built with)."""
        self = cls(encoder, name, url, mode=mode, server_folder=server_folder)
        with self._or_close():
            meta = self._meta()
            if meta is None:
                raise PgStoreError(f"no index named {self.name!r} at {self.where}: build it with "
                                   f"`ragft index SOURCE --out {self.name} --backend pgvector`")
            self.encoder = encoder or encoder_for_model_id(meta["encoder"]["model_id"])
            self.config = HnswConfig(**meta["hnsw"])
            self.chunk_config = ChunkConfig.from_saved(meta["chunking"])
            self._check_encoder(meta)
        return self

    @classmethod
    def build(cls, docs: Iterable[Document], encoder, name: str = "default", url: str | None = None,
              config: HnswConfig | None = None, chunk_config: ChunkConfig | None = None, replace: bool = False,
              show_progress: bool = True, server_folder: str | os.PathLike | None = None, mode: str = "dense"
              ) -> PgVectorIndex:
        """Chunk, embed and load documents into a new index (tables filled first, HNSW built after: faster)."""
        docs = list(docs)
        if len({d.doc_id for d in docs}) != len(docs):
            raise ValueError("duplicate doc_ids in the documents to index")
        self = cls(encoder, name, url, config, chunk_config, mode=mode, server_folder=server_folder)
        with self._or_close():
            if not replace and self._schema_exists():  # refuse before minutes of embedding, not after
                raise self._exists_error()
            t0 = time.perf_counter()
            chunks = chunk_documents(docs, self.chunk_config,
                                     encoder=encoder if self.chunk_config.strategy == "semantic" else None)
            vecs = encoder.encode([c.embed_text for c in chunks], show_progress=show_progress)
            self._create_and_load(docs, chunks, vecs, replace)
            self.build_seconds = time.perf_counter() - t0
        return self

    @classmethod
    def from_dense(cls, dense, name: str = "default", url: str | None = None, replace: bool = False,
                   server_folder: str | os.PathLike | None = None, mode: str = "dense") -> PgVectorIndex:
        """The same chunks and vectors as an hnswlib DenseIndex, nothing re-embedded: the two engines side by side."""
        self = cls(dense.encoder, name, url, dense.config, dense.chunk_config, mode=mode, server_folder=server_folder)
        with self._or_close():
            version = {}  # the corpus loaders copy a document's version into each of its chunks
            for c in dense.chunks:
                version.setdefault(c.doc_id, c.metadata.get("version"))
            docs = [Document(doc_id, "", metadata={"version": version.get(doc_id)}) for doc_id in dense.doc_ids]
            t0 = time.perf_counter()
            self._create_and_load(docs, dense.chunks, dense.vectors(), replace, hashes=dense.doc_hashes())
            self.build_seconds = time.perf_counter() - t0
        return self

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, name: str = "vectors", url: str | None = None,
                     config: HnswConfig | None = None, replace: bool = False,
                     server_folder: str | os.PathLike | None = None) -> PgVectorIndex:
        """Bare unit vectors as chunks "0".."n-1" without text: the benchmark's way to compare engines on one data set.
        Search it with `search_vectors`; `build_seconds` covers the load and the HNSW build."""
        vectors = np.asarray(vectors, np.float32)
        self = cls(_BareVectors(vectors.shape[1]), name, url, config, server_folder=server_folder)
        with self._or_close():
            t0 = time.perf_counter()
            self._create_and_load(*_bare(range(len(vectors))), vectors, replace)
            self.build_seconds = time.perf_counter() - t0
        return self

    def replace_vectors(self, ids: Sequence[int], vectors: np.ndarray) -> float:
        """Replace bare vectors by id in ONE transaction (delete, then insert: what a sync does to changed documents).
        Returns the seconds it took."""
        t0, conn = time.perf_counter(), self._conn()
        with conn.transaction():
            self._writer_lock(conn)
            self._delete(conn, [str(i) for i in ids])
            self._write(conn, *_bare(ids), np.asarray(vectors, np.float32))
        return time.perf_counter() - t0

    def _exists_error(self) -> PgStoreError:
        return PgStoreError(f"an index named {self.name!r} already exists at {self.where}: sync it with `ragft update`, "
                            "or rebuild it with --force")

    def _check_encoder(self, meta: dict) -> None:
        col_dim = self._conn().execute(
            "SELECT atttypmod FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'embedding'",
            (f"{self.schema}.chunks",)).fetchone()[0]
        built = meta["encoder"]["model_id"]
        if self.encoder.dim != col_dim:
            raise PgStoreError(f"index {self.name!r} at {self.where} holds {col_dim}-d vectors but {self.encoder.model_id} "
                               f"makes {self.encoder.dim}-d ones: use the embedder it was built with ({built}) or rebuild "
                               "it with --force")
        if self.encoder.model_id != built:
            raise PgStoreError(f"index {self.name!r} at {self.where} was built by another embedder ({built}), not "
                               f"{self.encoder.model_id}: its vectors are not comparable; use that embedder or rebuild "
                               "it with --force")

    # -- connections: one per thread, so readers in threads run side by side on the server
    def _conn(self) -> psycopg.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.url)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection; stop the embedded server if this index started it and nobody else uses it."""
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
        self._local = threading.local()
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def embedded(self) -> bool:
        """Whether this index runs on the embedded server it started (no URL was given)."""
        return self._server is not None

    def __enter__(self) -> PgVectorIndex:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def drop(self) -> None:
        """Delete the index's tables (its schema)."""
        self._conn().execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema)))

    # -- reading
    def _schema_exists(self, conn=None) -> bool:
        return (conn or self._conn()).execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                              (self.schema,)).fetchone() is not None

    def _meta(self, conn=None) -> dict | None:
        conn = conn or self._conn()
        if conn.execute("SELECT to_regclass(%s)", (f"{self.schema}.meta",)).fetchone()[0] is None:
            if self._schema_exists(conn):
                raise PgStoreError(f"schema {self.schema} at {self.where} is not a ragft index: choose another name")
            return None
        meta = dict(conn.execute(sql.SQL("SELECT key, value FROM {}.meta").format(sql.Identifier(self.schema))).fetchall())
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise PgStoreError(f"index {self.name!r} at {self.where} has format {meta.get('format')} version "
                               f"{meta.get('format_version')}; this ragft reads {FORMAT} {FORMAT_VERSION}: rebuild it with --force")
        return meta

    def _q(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=sql.Identifier(self.schema))

    def __len__(self) -> int:
        return self._conn().execute(self._q("SELECT count(*) FROM {s}.chunks")).fetchone()[0]

    @property
    def doc_ids(self) -> list[str]:
        return list(self.doc_hashes())

    def doc_hashes(self) -> dict[str, str]:
        return dict(self._conn().execute(self._q("SELECT doc_id, content_hash FROM {s}.docs ORDER BY doc_id")).fetchall())

    @property
    def chunks(self) -> list[Chunk]:
        rows = self._conn().execute(self._q(f"SELECT {COLUMNS} FROM {{s}}.chunks c ORDER BY c.id")).fetchall()
        return [Chunk(r[0], r[1], r[3], r[5], r[6], r[4], r[2], r[7]) for r in rows]

    def vectors(self) -> np.ndarray:
        """Stored vectors, in chunk order (as `chunks`)."""
        rows = self._conn().execute(self._q("SELECT embedding FROM {s}.chunks ORDER BY id"), binary=True).fetchall()
        return np.array([r[0].to_numpy() for r in rows], dtype=np.float32).reshape(len(rows), self.encoder.dim)

    def memory_bytes(self) -> int:
        """Size on disk of the chunk table with its indexes (HNSW, full-text, keys) and the document table."""
        return int(self._conn().execute("SELECT pg_total_relation_size(%s::regclass) + pg_total_relation_size(%s::regclass)",
                                        (f"{self.schema}.chunks", f"{self.schema}.docs")).fetchone()[0])


class _BareVectors:
    """Stands in for the encoder of an index that holds bare vectors: a dimension, no model."""

    name = "bare"

    def __init__(self, dim: int):
        self.dim, self.model_id = dim, f"bare-vectors-{dim}"
        self.stats = {"cached": 0, "computed": 0, "seconds": 0.0}

    def encode(self, texts, show_progress: bool = False, desc: str = "") -> np.ndarray:
        raise PgStoreError("this index holds bare vectors, not text: search it with search_vectors")


def _bare(ids: Iterable[int]) -> tuple[list[Document], list[Chunk]]:
    ids = [str(i) for i in ids]
    return [Document(i, "") for i in ids], [Chunk(i, i, "", 0, 0) for i in ids]


def open_retriever(name: str, mode: str = "dense", db_url: str | None = None, encoder=None) -> PgVectorIndex:
    """The CLI's way in: an existing pgvector index by name, searched in `mode` (dense, exact, bm25/lexical, hybrid)."""
    return PgVectorIndex.open(name, db_url, encoder=encoder, mode=mode)
