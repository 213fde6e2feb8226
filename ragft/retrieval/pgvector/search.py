"""Searching a pgvector index: a batch of queries per SQL statement, each with its own HNSW scan (dense), a sequential
scan (exact), Postgres full-text search (lexical) or their reciprocal rank fusion (hybrid), all from one snapshot.

`Searching` is a part of `PgVectorIndex` (store.py): it uses the index's connection (`_conn`), schema (`_q`), encoder,
config and mode, and holds no state of its own. The SQL text is in `schema.py`; nothing here writes.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np

from ...retrieval.index import Hit, check_query, check_top_k
from .schema import VECTORS_BATCH, VECTORS_ONE, search_text

MODES = ("dense", "exact", "lexical", "hybrid")
MAX_EF_SEARCH = 1000  # pgvector's upper bound for hnsw.ef_search
BATCH = 256  # queries per SQL statement in search_batch / search_vectors: one round trip answers them all
_TOKEN = re.compile(r"[a-z0-9]+")


def lexical_query(text: str) -> str | None:
    """The OR of a text's word tokens as a tsquery string: "np.sort(a)" -> "a | np | sort" (None when it has none)."""
    tokens = sorted(set(_TOKEN.findall(text.lower())))
    return " | ".join(tokens) if tokens else None


def check_batch(batch: int | None) -> int:
    batch = BATCH if batch is None else batch
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"batch must be a positive number of queries per statement, not {batch!r}")
    return batch


class Searching:
    """The search half of `PgVectorIndex`."""

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
        queries = [check_query(q) for q in queries]
        top_k = check_top_k(top_k)
        mode = "lexical" if mode == "bm25" else (mode or self.mode)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        batch = check_batch(batch)
        if not queries:
            return []
        qv = self.encoder.encode(queries, show_progress=False) if mode != "lexical" else None
        n = max(self.candidates, top_k)
        conn = self._conn()
        stmt = self._q(search_text(mode, version is not None))
        out: list[list[Hit]] = []
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # an exact scan reads every row: the HNSW beam does not apply, and a warning about it would mislead
            beam = min(max(self.config.ef, top_k), MAX_EF_SEARCH) if mode == "exact" else \
                self._ef(ef, n if mode == "hybrid" else top_k)
            self._set_search(conn, beam, exact=mode == "exact")
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
        batch = check_batch(batch)
        qv = np.asarray(qv, np.float32)
        conn = self._conn()
        stmt = self._q(VECTORS_ONE if batch == 1 else VECTORS_BATCH)
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
