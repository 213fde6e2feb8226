"""One caching idea for everything ragft computes once: a value is stored under the sha256 of what decides it.

Three small pieces: `KeyValueCache` (JSON-able values on disk under a content key, built on diskcache's SQLite store:
a write is one transaction, so an interrupted write leaves the old state, never half a value), `locked` (an exclusive
cross-process lock, built on filelock, for artefacts that are folders, such as adapters and converted models), and the
two hashing helpers every cache key uses: `content_key` (a key from JSON-able parts) and `files_state` (a folder's file
names, sizes and mtimes: cheap to compute, changes whenever a file does). `seeded_key` / `seeded_unit` give the
deterministic "shuffle by hash" order that samples and splits use.

Does not decide what goes into a key (the caller does: model hash, adapter hash, prompt, decoding) and does not expire
entries (delete the folder under `paths.cache_dir` to start over).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import diskcache
import filelock


def content_key(*parts) -> str:
    """sha256 of JSON-able parts (dict keys sorted): the same parts always give the same key.

    >>> content_key({"b": 1, "a": 2}) == content_key({"a": 2, "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def seeded_key(seed: int, text: str) -> str:
    """A sort key that shuffles texts deterministically: `sorted(items, key=lambda t: seeded_key(0, t))`."""
    return hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()


def stable_hash(text: str) -> int:
    """A 48-bit integer from a text, the same on every machine and run (sha256): picks templates and shapes by name."""
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def seeded_unit(seed: int, text: str) -> float:
    """A deterministic number in [0, 1) from a seed and a text (a coin that always lands the same way)."""
    return stable_hash(f"{seed}:{text}") / 16**12


def files_state(folder: str | os.PathLike, pattern: str = "*") -> str:
    """A folder's files (matching `pattern`, recursively for "**/*"), their sizes and mtimes, as one string.

    Memoises content hashes: equal states mean nothing was written since the last time the folder was hashed.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith("."))
    return json.dumps([(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files])


@contextlib.contextmanager
def locked(path: str | os.PathLike, timeout: float = -1, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) while the block runs; other processes wait for it.
    `on_wait` is called once when another process holds it (to say why nothing happens yet).

    Used where two notebooks or test workers may build the same cached artefact at once (e.g. one adapter), and by
    writers of one index folder (two `ragft update` runs queue).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    if on_wait is None:
        lock.acquire(timeout=timeout)
    else:
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            on_wait()
            lock.acquire(timeout=timeout)
    try:
        yield
    finally:
        lock.release()


class KeyValueCache:
    """JSON-able values on disk, keyed by `content_key`; safe to interrupt and to share between processes.

    >>> c = KeyValueCache(tmp_path); c.put("k", {"text": "hi"}); c.get("k")  # doctest: +SKIP
    {'text': 'hi'}
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._store = diskcache.Cache(str(self.folder), size_limit=2**40, eviction_policy="none")
        self.hits = self.misses = 0

    def get(self, key: str):
        value = self._store.get(key, default=None, retry=True)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        return json.loads(value)

    def put(self, key: str, value) -> None:
        self._store.set(key, json.dumps(value), retry=True)

    def __contains__(self, key: str) -> bool:
        return key in self._store

    def __len__(self) -> int:
        return len(self._store)

    def close(self) -> None:
        self._store.close()
