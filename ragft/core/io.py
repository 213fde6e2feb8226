"""Small file helpers shared by every module: atomic writes and JSONL reading that reports bad lines instead of skipping them.

Not a general I/O layer: only what ragft needs to never leave half-written files behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success rename it onto `path`, on failure remove it.

    >>> with atomic_path("out.json") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("{}")  # out.json appears only if this block finishes
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) if is_dir else \
        path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if is_dir and path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        raise


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows atomically, one JSON object per line; return how many were written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


@dataclass
class ReadReport:
    """What a loader could not use: `problems` holds (where, reason) pairs, e.g. ("pairs.jsonl:7", "not valid JSON")."""

    source: str
    loaded: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def __str__(self) -> str:
        head = f"{self.source}: {self.loaded} loaded, {len(self.problems)} problem(s)"
        return "\n".join([head] + [f"  {where}: {why}" for where, why in self.problems[:50]]
                         + ([f"  ... and {len(self.problems) - 50} more"] if len(self.problems) > 50 else []))


class DataError(ValueError):
    """Raised when input data cannot be used; the message lists every bad line."""


def read_jsonl(path: str | os.PathLike, required: tuple[str, ...] = (), on_error: str = "raise") -> tuple[list[dict], ReadReport]:
    """Read a JSONL file, checking each line is a JSON object with the `required` non-empty keys.

    on_error="raise" raises DataError listing every bad line; "skip" keeps the good rows and reports the bad ones.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    report = ReadReport(str(path))
    rows = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError as e:
            raise DataError(f"{path} is not UTF-8 text ({e})") from e
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            report.problems.append((where, f"not valid JSON ({e.msg})"))
            continue
        if not isinstance(row, dict):
            report.problems.append((where, f"expected a JSON object, got {type(row).__name__}"))
            continue
        missing = [k for k in required if not (isinstance(row.get(k), str) and row[k].strip())]
        if missing:
            report.problems.append((where, f"missing or empty field(s): {', '.join(missing)}"))
            continue
        rows.append(row)
    report.loaded = len(rows)
    if report.problems and on_error == "raise":
        raise DataError(str(report))
    return rows, report
