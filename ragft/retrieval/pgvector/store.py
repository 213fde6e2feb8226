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
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from ...data.corpus import Document
from ...retrieval.chunking import Chunk, ChunkConfig, chunk_documents
from ...retrieval.embeddings import encoder_for_model_id
from ...retrieval.index import Hit, HnswConfig, Retriever, SyncReport, _check_query, _check_top_k
from .server import EmbeddedServer, PgStoreError, connect, describe_url, resolve_url

__all__ = ["EmbeddedServer", "PgStoreError", "PgVectorIndex", "connect", "index_name", "lexical_query", "open_retriever"]

FORMAT = "ragft-pgvector-index"
FORMAT_VERSION = 1
SCHEMA_PREFIX = "ragft_"
MODES = ("dense", "exact", "lexical", "hybrid")
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
BATCH = 256  # queries per SQL statement in search_batch / search_vectors: one round trip answers them all
_TOKEN = re.compile(r"[a-z0-9]+")


def index_name(text: str) -> str:
    """A safe SQL name for an index from a name or path: "runs/NumPy 2.4.6" -> "numpy_2_4_6"."""
    name = re.sub(r"[^a-z0-9_]+", "_", Path(str(text)).name.lower()).strip("_")[:40]
    if not name:
        raise ValueError(f"cannot make an index name from {text!r}: use letters, digits or underscores")
    return name if name[0].isalpha() else f"i_{name}"


def lexical_query(text: str) -> str | None:
    """The OR of a text's word tokens as a tsquery string: "np.sort(a)" -> "a | np | sort" (None when it has none)."""
    tokens = sorted(set(_TOKEN.findall(text.lower())))
    return " | ".join(tokens) if tokens else None


# ---------------------------------------------------------------------------------------------------------- index
_COLUMNS = "c.doc_id, c.chunk_id, c.header, c.text, c.section, c.start, c.\"end\", c.metadata"


class PgVectorIndex(Retriever):
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

    def _create_and_load(self, docs, chunks, vecs, replace: bool, hashes: dict[str, str] | None = None) -> None:
        ident, conn, dim = sql.Identifier(self.schema), self._conn(), self.encoder.dim
        with conn.transaction():
            self._writer_lock(conn)
            if self._schema_exists(conn):
                if not replace:
                    raise self._exists_error()
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(ident))
            ddl = [
                "CREATE SCHEMA {s}",
                "CREATE TABLE {s}.meta (key text PRIMARY KEY, value jsonb NOT NULL)",
                "CREATE TABLE {s}.docs (doc_id text PRIMARY KEY, content_hash text NOT NULL, version text, "
                "title text NOT NULL DEFAULT '', metadata jsonb NOT NULL DEFAULT '{{}}')",
                "CREATE TABLE {s}.chunks (id bigserial PRIMARY KEY, "
                "doc_id text NOT NULL REFERENCES {s}.docs ON DELETE CASCADE, chunk_id text NOT NULL UNIQUE, "
                "header text NOT NULL, text text NOT NULL, section text NOT NULL, start integer NOT NULL, "
                "\"end\" integer NOT NULL, metadata jsonb NOT NULL, embedding vector({dim}) NOT NULL, "
                # the same word tokens on both sides: dots and underscores split names, as in the BM25 of retrievers.py
                "tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, "
                "regexp_replace(lower(header || ' ' || text), '[^a-z0-9]+', ' ', 'g'))) STORED)",
                "CREATE INDEX ON {s}.chunks (doc_id)",
                "CREATE INDEX ON {s}.docs (version)",
            ]
            for stmt in ddl:
                conn.execute(sql.SQL(stmt).format(s=ident, dim=sql.Literal(dim)))
            meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "encoder": {"name": self.encoder.name, "model_id": self.encoder.model_id, "dim": dim},
                    "hnsw": asdict(self.config), "chunking": self.chunk_config.to_json()}
            with conn.cursor() as cur:
                cur.executemany(sql.SQL("INSERT INTO {}.meta VALUES (%s, %s)").format(ident),
                                [(k, Jsonb(v)) for k, v in meta.items()])
            self._write(conn, docs, chunks, vecs, hashes)
            # Built after the load, as pgvector's README advises: one bulk build is faster than row-by-row inserts.
            conn.execute("SELECT set_config('maintenance_work_mem', '512MB', true)")
            conn.execute(sql.SQL("CREATE INDEX ON {}.chunks USING hnsw (embedding vector_cosine_ops) "
                                 "WITH (m = {}, ef_construction = {})").format(
                ident, sql.Literal(self.config.M), sql.Literal(self.config.ef_construction)))
            conn.execute(sql.SQL("CREATE INDEX ON {}.chunks USING gin (tsv)").format(ident))

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
        rows = self._conn().execute(self._q(f"SELECT {_COLUMNS} FROM {{s}}.chunks c ORDER BY c.id")).fetchall()
        return [Chunk(r[0], r[1], r[3], r[5], r[6], r[4], r[2], r[7]) for r in rows]

    def vectors(self) -> np.ndarray:
        """Stored vectors, in chunk order (as `chunks`)."""
        rows = self._conn().execute(self._q("SELECT embedding FROM {s}.chunks ORDER BY id"), binary=True).fetchall()
        return np.array([r[0].to_numpy() for r in rows], dtype=np.float32).reshape(len(rows), self.encoder.dim)

    def memory_bytes(self) -> int:
        """Size on disk of the chunk table with its indexes (HNSW, full-text, keys) and the document table."""
        return int(self._conn().execute("SELECT pg_total_relation_size(%s::regclass) + pg_total_relation_size(%s::regclass)",
                                        (f"{self.schema}.chunks", f"{self.schema}.docs")).fetchone()[0])

    # -- searching
    def search(self, query: str, top_k: int = 5, threshold: float | None = None, ef: int | None = None,
               mode: str | None = None, version: str | None = None) -> list[Hit]:
        return self.search_batch([query], top_k, threshold, ef, mode, version)[0]

    def search_batch(self, queries: Sequence[str], top_k: int = 5, threshold: float | None = None, ef: int | None = None,
                     mode: str | None = None, version: str | None = None, batch: int | None = None) -> list[list[Hit]]:
        """top_k hits per query, all read from one snapshot (a sync committing meanwhile is seen by none or all).

        ef: HNSW beam (default config.ef; raised to top_k, at most 1000). version: only chunks of documents of that
        version (an SQL filter applied after the HNSW scan, so a rare version can return fewer than top_k hits).
        batch: queries answered per SQL statement (default BATCH; 1 = one statement per query, as a single request).
        """
        queries = [_check_query(q) for q in queries]
        top_k = _check_top_k(top_k)
        mode = "lexical" if mode == "bm25" else (mode or self.mode)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        batch = _check_batch(batch)
        if not queries:
            return []
        qv = self.encoder.encode(queries, show_progress=False) if mode != "lexical" else None
        n = max(self.candidates, top_k)
        conn = self._conn()
        stmt = self._search_sql(mode, version is not None)
        out: list[list[Hit]] = []
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._set_search(conn, self._ef(ef, n if mode == "hybrid" else top_k), exact=mode == "exact")
            for s in range(0, len(queries), batch):
                part = slice(s, s + batch)
                params = {"qs": None if qv is None else list(np.asarray(qv[part], np.float32)),
                          "qts": [lexical_query(q) for q in queries[part]], "k": top_k, "n": n, "rrf": self.rrf_k,
                          "thr": threshold, "version": version}
                rows = conn.execute(stmt, params, prepare=True, binary=True).fetchall()
                by_query: list[list] = [[] for _ in queries[part]]
                for r in rows:  # (query number from 1, chunk columns..., sort key, id), sorted by query then rank
                    by_query[r[0] - 1].append(r[1:])
                out += [self._hits(r, mode, threshold) for r in by_query]
        return out

    def search_vectors(self, qv: np.ndarray, top_k: int, ef: int | None = None, batch: int | None = None
                       ) -> tuple[np.ndarray, list[list[str]]]:
        """Raw HNSW search on query vectors: (cosine similarities, chunk_ids), `batch` queries per SQL statement
        (default BATCH; 1 = one statement and one round trip per query); for benchmarks."""
        batch = _check_batch(batch)
        qv = np.asarray(qv, np.float32)
        conn = self._conn()
        if batch == 1:
            stmt = self._q("SELECT 1, chunk_id, 1 - (embedding <=> %(q)b) FROM {s}.chunks "
                           "ORDER BY embedding <=> %(q)b LIMIT %(k)s")
        else:
            stmt = self._q("SELECT q.i, r.chunk_id, 1 - r.dist FROM unnest(%(qs)b::vector[]) WITH ORDINALITY AS q(v, i) "
                           "CROSS JOIN LATERAL (SELECT c.chunk_id, c.embedding <=> q.v AS dist FROM {s}.chunks c "
                           "ORDER BY c.embedding <=> q.v LIMIT %(k)s) r ORDER BY q.i, r.dist")
        sims, ids = np.zeros((len(qv), top_k), np.float32), [[] for _ in range(len(qv))]
        with conn.transaction():
            self._set_search(conn, self._ef(ef, top_k))
            for s in range(0, len(qv), batch):
                params = {"q": qv[s], "k": top_k} if batch == 1 else {"qs": list(qv[s:s + batch]), "k": top_k}
                for i, chunk_id, sim in conn.execute(stmt, params, prepare=True, binary=True).fetchall():
                    row = s + i - 1
                    sims[row, len(ids[row])] = sim
                    ids[row].append(chunk_id)
        return sims, ids

    @staticmethod
    def _set_search(conn, ef: int, exact: bool = False) -> None:
        """Settings for the rest of the caller's transaction: the HNSW beam, no JIT compilation (a batch of queries
        looks costly to the planner, and compiling it takes longer than running it), a sequential scan for "exact"."""
        conn.execute("SELECT set_config('hnsw.ef_search', %s, true), set_config('jit', 'off', true)", (str(ef),))
        if exact:
            conn.execute("SELECT set_config('enable_indexscan', 'off', true)")

    def _ef(self, ef: int | None, k: int) -> int:
        ef = self.config.ef if ef is None else ef
        if ef < k and not self._warned_ef:
            warnings.warn(f"ef={ef} < {k} results wanted: HNSW returns at most ef rows, searching with ef={k}", stacklevel=3)
            self._warned_ef = True
        return min(max(ef, k), MAX_EF_SEARCH)

    def _search_sql(self, mode: str, by_version: bool) -> sql.Composed:
        """One statement for a batch of queries: the query vectors (%(qs)s) and tsquery strings (%(qts)s) unnested with
        their number, each answered by a LATERAL subquery (an ORDER BY <=> LIMIT on the indexed column: an HNSW scan
        per query). Rows: query number, the chunk columns and score (plus ranks and cosine for hybrid), sort key, id."""
        version = ("JOIN {s}.docs dv ON dv.doc_id = c.doc_id AND dv.version = %(version)s" if by_version else "")
        dense = (f"SELECT c.id, c.embedding <=> q.v AS dist FROM {{s}}.chunks c {version} "
                 "ORDER BY c.embedding <=> q.v LIMIT {limit}")
        lexical = (f"SELECT c.id, ts_rank(c.tsv, tq, 1) AS rank FROM {{s}}.chunks c {version}, "
                   "to_tsquery('simple', q.qt) tq WHERE c.tsv @@ tq ORDER BY rank DESC, c.id LIMIT {limit}")
        if mode in ("dense", "exact"):
            body = (f"SELECT {_COLUMNS}, 1 - d.dist AS score, d.dist AS key, c.id FROM ({dense.replace('{limit}', '%(k)s')}) d "
                    "JOIN {s}.chunks c ON c.id = d.id")
        elif mode == "lexical":
            body = (f"SELECT {_COLUMNS}, l.rank AS score, -l.rank AS key, c.id FROM ({lexical.replace('{limit}', '%(k)s')}) l "
                    "JOIN {s}.chunks c ON c.id = l.id")
        else:  # reciprocal rank fusion (Cormack et al. 2009): score = sum over both lists of 1 / (rrf_k + rank from 1)
            body = (f"WITH d AS (SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM ({dense.replace('{limit}', '%(n)s')}) x), "
                    f"l AS (SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM ({lexical.replace('{limit}', '%(n)s')}) y), "
                    "f AS (SELECT id, coalesce(1.0 / (%(rrf)s + d.r), 0) + coalesce(1.0 / (%(rrf)s + l.r), 0) AS score, "
                    "d.r - 1 AS dense_rank, l.r - 1 AS lexical_rank FROM d FULL JOIN l USING (id)) "
                    f"SELECT {_COLUMNS}, f.score, f.dense_rank, f.lexical_rank, 1 - (c.embedding <=> q.v) AS cosine, "
                    "-f.score AS key, c.id FROM f JOIN {s}.chunks c ON c.id = f.id "
                    "WHERE %(thr)s::float8 IS NULL OR 1 - (c.embedding <=> q.v) >= %(thr)s::float8 "
                    "ORDER BY f.score DESC, c.id LIMIT %(k)s")
        return self._q("SELECT q.i, r.* FROM unnest(%(qs)b::vector[], %(qts)s::text[]) WITH ORDINALITY AS q(v, qt, i) "
                       f"CROSS JOIN LATERAL ({body}) r ORDER BY q.i, r.key, r.id")

    @staticmethod
    def _hits(rows, mode: str, threshold: float | None) -> list[Hit]:
        hits = []
        for r in rows:
            doc_id, chunk_id, header, text, section, start, end, metadata, score = r[:9]
            if mode != "hybrid" and threshold is not None and score < threshold:
                continue
            meta = {"section": section, "start": start, "end": end, **metadata}
            if mode == "hybrid":
                meta.update({k: v for k, v in (("dense_rank", r[9]), ("lexical_rank", r[10])) if v is not None})
                meta["cosine"] = float(r[11])
            hits.append(Hit(doc_id, chunk_id, float(score), f"{header}\n{text}" if header else text, len(hits), meta))
        return hits

    # -- writing: every change is one transaction behind an advisory lock, so writers queue and readers see no halves
    def _writer_lock(self, conn) -> None:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.schema,))

    def _write(self, conn, docs: Sequence[Document], chunks: Sequence[Chunk], vecs: np.ndarray,
               hashes: dict[str, str] | None = None) -> None:
        """Insert documents and their chunks (COPY, binary) inside the caller's transaction."""
        ident = sql.Identifier(self.schema)
        with conn.cursor() as cur:
            with cur.copy(sql.SQL("COPY {}.docs (doc_id, content_hash, version, title, metadata) FROM STDIN").format(ident)) as cp:
                for d in docs:
                    cp.write_row((d.doc_id, (hashes or {}).get(d.doc_id) or d.content_hash, d.metadata.get("version"),
                                  d.title, json.dumps(d.metadata, ensure_ascii=False)))
            with cur.copy(sql.SQL("COPY {}.chunks (doc_id, chunk_id, header, text, section, start, \"end\", metadata, "
                                  "embedding) FROM STDIN WITH (FORMAT BINARY)").format(ident)) as cp:
                cp.set_types(["text", "text", "text", "text", "text", "int4", "int4", "jsonb", "vector"])
                for c, v in zip(chunks, np.asarray(vecs, np.float32), strict=True):
                    cp.write_row((c.doc_id, c.chunk_id, c.header, c.text, c.section, c.start, c.end, Jsonb(c.metadata), v))

    def _embed(self, docs: Sequence[Document], show_progress: bool) -> tuple[list[Chunk], np.ndarray]:
        chunks = chunk_documents(docs, self.chunk_config,
                                 encoder=self.encoder if self.chunk_config.strategy == "semantic" else None)
        return chunks, self.encoder.encode([c.embed_text for c in chunks], show_progress=show_progress)

    def add(self, docs: Iterable[Document], show_progress: bool = True) -> int:
        """Chunk, embed and insert new documents in one transaction; a doc_id already present raises. Returns chunks added."""
        docs = list(docs)
        if len({d.doc_id for d in docs}) != len(docs):
            raise ValueError("duplicate doc_ids in the documents to add")
        chunks, vecs = self._embed(docs, show_progress)
        conn = self._conn()
        with conn.transaction():
            self._writer_lock(conn)
            present = [r[0] for r in conn.execute(self._q("SELECT doc_id FROM {s}.docs WHERE doc_id = ANY(%s)"),
                                                  ([d.doc_id for d in docs],))]
            if present:
                raise ValueError(f"{len(present)} doc_id(s) already indexed (use sync()): {present[:5]}")
            self._write(conn, docs, chunks, vecs)
        return len(chunks)

    def delete(self, doc_ids: Iterable[str], missing: str = "raise") -> int:
        """Remove documents and their chunks in one transaction; unknown doc_ids raise KeyError (or are skipped with
        missing="skip"). Returns the number of chunks removed."""
        doc_ids = list(doc_ids)
        conn = self._conn()
        with conn.transaction():
            self._writer_lock(conn)
            known = {r[0] for r in conn.execute(self._q("SELECT doc_id FROM {s}.docs WHERE doc_id = ANY(%s)"), (doc_ids,))}
            unknown = [d for d in doc_ids if d not in known]
            if unknown and missing == "raise":
                raise KeyError(f"{len(unknown)} doc_id(s) not in the index: {unknown[:10]}")
            return self._delete(conn, list(known))

    def _delete(self, conn, doc_ids: list[str]) -> int:
        n = conn.execute(self._q("DELETE FROM {s}.chunks WHERE doc_id = ANY(%s)"), (doc_ids,)).rowcount
        conn.execute(self._q("DELETE FROM {s}.docs WHERE doc_id = ANY(%s)"), (doc_ids,))
        return n

    def sync(self, docs: Iterable[Document], show_progress: bool = True) -> SyncReport:
        """Make the index hold exactly `docs`, in ONE transaction: add new doc_ids, delete missing ones, replace those
        whose content hash changed. A concurrent sync waits for this one and then diffs against its result.

        Changed documents are chunked and embedded before the transaction opens (the embedding cache keeps repeats
        cheap); the diff is taken again under the lock, so a writer that committed meanwhile is never overwritten blindly.
        """
        t0 = time.perf_counter()
        docs = list(docs)
        by_id = {d.doc_id: d for d in docs}
        if len(by_id) != len(docs):
            raise ValueError("duplicate doc_ids in the documents to sync")
        before = self.encoder.stats["computed"]
        prepared: dict[str, tuple[str, list[Chunk], np.ndarray]] = {}

        def prepare(ids: list[str]) -> None:
            todo = [by_id[i] for i in ids if prepared.get(i, ("",))[0] != by_id[i].content_hash]
            chunks, vecs = self._embed(todo, show_progress)
            rows: dict[str, list[int]] = {}
            for j, c in enumerate(chunks):
                rows.setdefault(c.doc_id, []).append(j)
            for d in todo:
                prepared[d.doc_id] = (d.content_hash, [chunks[j] for j in rows.get(d.doc_id, [])],
                                      vecs[rows.get(d.doc_id, [])])

        added, _, changed = _diff(self.doc_hashes(), by_id)
        prepare(added + changed)
        conn = self._conn()
        with conn.transaction():
            self._writer_lock(conn)
            current = dict(conn.execute(self._q("SELECT doc_id, content_hash FROM {s}.docs")).fetchall())
            added, removed, changed = _diff(current, by_id)
            prepare(added + changed)  # only what a concurrent writer made different from the first diff
            n_removed = self._delete(conn, removed + changed)
            new = [by_id[i] for i in added + changed]
            chunks = [c for d in new for c in prepared[d.doc_id][1]]
            vecs = np.concatenate([prepared[d.doc_id][2] for d in new]) if new else np.zeros((0, self.encoder.dim))
            self._write(conn, new, chunks, vecs)
        return SyncReport(added=added, removed=removed, changed=changed, unchanged=len(by_id) - len(added) - len(changed),
                          seconds=time.perf_counter() - t0, chunks_added=len(chunks), chunks_removed=n_removed,
                          embedded=self.encoder.stats["computed"] - before)


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


def _check_batch(batch: int | None) -> int:
    batch = BATCH if batch is None else batch
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive number of queries per statement, not {batch!r}")
    return batch


def _diff(current: dict[str, str], by_id: dict[str, Document]) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) doc_ids going from `current` (doc_id -> hash) to the documents `by_id`."""
    added = [i for i in by_id if i not in current]
    removed = [i for i in current if i not in by_id]
    changed = [i for i in by_id if i in current and current[i] != by_id[i].content_hash]
    return added, removed, changed


def open_retriever(name: str, mode: str = "dense", db_url: str | None = None, encoder=None) -> PgVectorIndex:
    """The CLI's way in: an existing pgvector index by name, searched in `mode` (dense, exact, bm25/lexical, hybrid)."""
    return PgVectorIndex.open(name, db_url, encoder=encoder, mode=mode)
