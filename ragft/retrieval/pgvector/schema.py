"""The tables of a pgvector index as SQL text: the schema name an index name maps to, the DDL of its tables and indexes,
and the statements that search them (dense, exact, lexical, hybrid fusion) with the chunk columns a hit is read from.

Only text: it opens no connection and runs nothing (see `store.py`, `search.py`, `sync.py`).
"""

from __future__ import annotations

import re
from pathlib import Path

FORMAT = "ragft-pgvector-index"
FORMAT_VERSION = 1
SCHEMA_PREFIX = "ragft_"
COLUMNS = "c.doc_id, c.chunk_id, c.header, c.text, c.section, c.start, c.\"end\", c.metadata"


def index_name(text: str) -> str:
    """A safe SQL name for an index from a name or path: "runs/NumPy 2.4.6" -> "numpy_2_4_6"."""
    name = re.sub(r"[^a-z0-9_]+", "_", Path(str(text)).name.lower()).strip("_")[:40]
    if not name:
        raise ValueError(f"cannot make an index name from {text!r}: use letters, digits or underscores")
    return name if name[0].isalpha() else f"i_{name}"


# An index's schema and tables: `{s}` is the schema, `{dim}` the vectors' dimension (filled in by psycopg's sql.SQL).
DDL = (
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
)
# Built after the load, as pgvector's README advises: one bulk build is faster than row-by-row inserts.
HNSW_INDEX = ("CREATE INDEX ON {}.chunks USING hnsw (embedding vector_cosine_ops) "
              "WITH (m = {}, ef_construction = {})")
TEXT_INDEX = "CREATE INDEX ON {}.chunks USING gin (tsv)"
# Raw vector search (`search_vectors`): one query per statement, or a batch of them unnested.
VECTORS_ONE = ("SELECT 1, chunk_id, 1 - (embedding <=> %(q)b) FROM {s}.chunks "
               "ORDER BY embedding <=> %(q)b LIMIT %(k)s")
VECTORS_BATCH = ("SELECT q.i, r.chunk_id, 1 - r.dist FROM unnest(%(qs)b::vector[]) WITH ORDINALITY AS q(v, i) "
                 "CROSS JOIN LATERAL (SELECT c.chunk_id, c.embedding <=> q.v AS dist FROM {s}.chunks c "
                 "ORDER BY c.embedding <=> q.v LIMIT %(k)s) r ORDER BY q.i, r.dist")


def search_text(mode: str, by_version: bool) -> str:
    """One statement for a batch of queries: the query vectors (%(qs)s) and tsquery strings (%(qts)s) unnested with
    their number, each answered by a LATERAL subquery (an ORDER BY <=> LIMIT on the indexed column: an HNSW scan
    per query). Rows: query number, the chunk columns and score (plus ranks and cosine for hybrid), sort key, id.
    The text names the schema `{s}`, to be formatted as psycopg SQL (see `PgVectorIndex._q`)."""
    version = ("JOIN {s}.docs dv ON dv.doc_id = c.doc_id AND dv.version = %(version)s" if by_version else "")
    dense = (f"SELECT c.id, c.embedding <=> q.v AS dist FROM {{s}}.chunks c {version} "
             "ORDER BY c.embedding <=> q.v LIMIT {limit}")
    lexical = (f"SELECT c.id, ts_rank(c.tsv, tq, 1) AS rank FROM {{s}}.chunks c {version}, "
               "to_tsquery('simple', q.qt) tq WHERE c.tsv @@ tq ORDER BY rank DESC, c.id LIMIT {limit}")
    if mode in ("dense", "exact"):
        body = (f"SELECT {COLUMNS}, 1 - d.dist AS score, d.dist AS key, c.id FROM ({dense.replace('{limit}', '%(k)s')}) d "
                "JOIN {s}.chunks c ON c.id = d.id")
    elif mode == "lexical":
        body = (f"SELECT {COLUMNS}, l.rank AS score, -l.rank AS key, c.id FROM ({lexical.replace('{limit}', '%(k)s')}) l "
                "JOIN {s}.chunks c ON c.id = l.id")
    else:  # reciprocal rank fusion (Cormack et al. 2009): score = sum over both lists of 1 / (rrf_k + rank from 1)
        body = (f"WITH d AS (SELECT id, row_number() OVER (ORDER BY dist, id) AS r FROM ({dense.replace('{limit}', '%(n)s')}) x), "
                f"l AS (SELECT id, row_number() OVER (ORDER BY rank DESC, id) AS r FROM ({lexical.replace('{limit}', '%(n)s')}) y), "
                "f AS (SELECT id, coalesce(1.0 / (%(rrf)s + d.r), 0) + coalesce(1.0 / (%(rrf)s + l.r), 0) AS score, "
                "d.r - 1 AS dense_rank, l.r - 1 AS lexical_rank FROM d FULL JOIN l USING (id)) "
                f"SELECT {COLUMNS}, f.score, f.dense_rank, f.lexical_rank, 1 - (c.embedding <=> q.v) AS cosine, "
                "-f.score AS key, c.id FROM f JOIN {s}.chunks c ON c.id = f.id "
                "WHERE %(thr)s::float8 IS NULL OR 1 - (c.embedding <=> q.v) >= %(thr)s::float8 "
                "ORDER BY f.score DESC, c.id LIMIT %(k)s")
    return ("SELECT q.i, r.* FROM unnest(%(qs)b::vector[], %(qts)s::text[]) WITH ORDINALITY AS q(v, qt, i) "
            f"CROSS JOIN LATERAL ({body}) r ORDER BY q.i, r.key, r.id")
