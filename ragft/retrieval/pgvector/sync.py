"""Writing to a pgvector index: create and bulk-load its tables, add and delete documents, and `sync` a new corpus
in ONE transaction behind an advisory lock (writers queue; a reader sees the old corpus or the new one, never half).

`Writing` is a part of `PgVectorIndex` (store.py): it uses the index's connection (`_conn`), schema (`_q`), encoder and
configs, and holds no state of its own. The DDL text is in `schema.py`; nothing here searches.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from ...data.corpus import Document
from ...retrieval.chunking import Chunk, chunk_documents
from ...retrieval.index import SyncReport
from .schema import DDL, FORMAT, FORMAT_VERSION, HNSW_INDEX, TEXT_INDEX


class Writing:
    """The write half of `PgVectorIndex`."""

    def _create_and_load(self, docs, chunks, vecs, replace: bool, hashes: dict[str, str] | None = None) -> None:
        ident, conn, dim = sql.Identifier(self.schema), self._conn(), self.encoder.dim
        with conn.transaction():
            self._writer_lock(conn)
            if self._schema_exists(conn):
                if not replace:
                    raise self._exists_error()
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(ident))
            for stmt in DDL:
                conn.execute(sql.SQL(stmt).format(s=ident, dim=sql.Literal(dim)))
            meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
                    "encoder": {"name": self.encoder.name, "model_id": self.encoder.model_id, "dim": dim},
                    "hnsw": asdict(self.config), "chunking": self.chunk_config.to_json()}
            with conn.cursor() as cur:
                cur.executemany(sql.SQL("INSERT INTO {}.meta VALUES (%s, %s)").format(ident),
                                [(k, Jsonb(v)) for k, v in meta.items()])
            self._write(conn, docs, chunks, vecs, hashes)
            # the indexes last, after the load (see HNSW_INDEX)
            conn.execute("SELECT set_config('maintenance_work_mem', '512MB', true)")
            conn.execute(sql.SQL(HNSW_INDEX).format(
                ident, sql.Literal(self.config.M), sql.Literal(self.config.ef_construction)))
            conn.execute(sql.SQL(TEXT_INDEX).format(ident))

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

        added, _, changed = diff_docs(self.doc_hashes(), by_id)
        prepare(added + changed)
        conn = self._conn()
        with conn.transaction():
            self._writer_lock(conn)
            current = dict(conn.execute(self._q("SELECT doc_id, content_hash FROM {s}.docs")).fetchall())
            added, removed, changed = diff_docs(current, by_id)
            prepare(added + changed)  # only what a concurrent writer made different from the first diff
            n_removed = self._delete(conn, removed + changed)
            new = [by_id[i] for i in added + changed]
            chunks = [c for d in new for c in prepared[d.doc_id][1]]
            vecs = np.concatenate([prepared[d.doc_id][2] for d in new]) if new else np.zeros((0, self.encoder.dim))
            self._write(conn, new, chunks, vecs)
        return SyncReport(added=added, removed=removed, changed=changed, unchanged=len(by_id) - len(added) - len(changed),
                          seconds=time.perf_counter() - t0, chunks_added=len(chunks), chunks_removed=n_removed,
                          embedded=self.encoder.stats["computed"] - before)


def diff_docs(current: dict[str, str], by_id: dict[str, Document]) -> tuple[list[str], list[str], list[str]]:
    """(added, removed, changed) doc_ids going from `current` (doc_id -> hash) to the documents `by_id`."""
    added = [i for i in by_id if i not in current]
    removed = [i for i in current if i not in by_id]
    changed = [i for i in by_id if i in current and current[i] != by_id[i].content_hash]
    return added, removed, changed
