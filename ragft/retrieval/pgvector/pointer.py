"""Where `ragft index --backend pgvector --out PATH` put its index: a small JSON file at PATH naming the backend, the
database (without its password) and the table schema, so `search`, `update` and `ask` find it from PATH alone; and the
index name a path maps to, unique per path (`a/idx` and `b/idx` are two indexes, not one).

Opens no connection and reads no table (see `store.py`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ...core.io import atomic_path
from .schema import index_name

POINTER_FORMAT = "ragft-pgvector-pointer"


def name_for_path(path: str | os.PathLike) -> str:
    """The index name for PATH: its last part made SQL-safe, plus 8 hex digits of the absolute path, so two folders'
    `idx` never share a table: "runs/NumPy 2.4.6" -> "numpy_2_4_6_1a2b3c4d"."""
    digest = hashlib.sha256(str(Path(path).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    try:
        base = index_name(path)[:31]
    except ValueError:
        base = "i"
    return f"{base}_{digest}"


def without_password(url: str) -> str:
    """`url` with its password left out (a pointer file is not a place for secrets: give it with --db or PGPASSWORD)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo  # psycopg only where a database is used

    info = conninfo_to_dict(url)
    info.pop("password", None)
    return make_conninfo(**info)


def write_pointer(path: str | os.PathLike, name: str, url: str | None, where: str) -> Path:
    """Write the pointer file at `path` atomically. url None: the embedded server (or $RAGFT_DATABASE_URL) at use time."""
    row = {"format": POINTER_FORMAT, "backend": "pgvector", "name": name,
           "db": None if url is None else without_password(url), "where": where}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(row, indent=1) + "\n", encoding="utf-8")
    return Path(path)


def read_pointer(path: str | os.PathLike) -> dict | None:
    """The pointer at `path`, or None when `path` is not a pointer file (a folder, another file, nothing)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size > 65536:
        return None
    try:
        row = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(row, dict) or row.get("format") != POINTER_FORMAT or not isinstance(row.get("name"), str):
        return None
    return row
