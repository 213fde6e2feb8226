"""Small file helpers shared by every module: atomic writes (with the recovery of a folder whose swap a kill cut in
two) and JSONL reading that reports bad lines instead of skipping them.

Not a general I/O layer: only what ragft needs to never leave half-written files behind.
"""

from __future__ import annotations

import contextlib
import glob
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
            old = old_name(path)  # a kill before the second rename leaves only this: see recover_folder
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


def old_name(path: str | os.PathLike, pid: int | None = None) -> Path:
    """Where atomic_path parks the previous folder between its two renames: `.NAME.old-PID` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.old-{os.getpid() if pid is None else pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def recover_folder(path: str | os.PathLike) -> Path | None:
    """Undo half of a folder swap that a kill interrupted: with `path` missing and a `.NAME.old-PID` of a dead process
    beside it, rename that back to `path` (the state before the interrupted write) and return where it came from.
    Leftover `.NAME.old-PID` folders of dead processes next to an existing `path` are removed. A live PID's folder
    is left alone: its writer is between the two renames right now."""
    path = Path(path)
    if not path.parent.is_dir():
        return None
    stale = []
    for p in path.parent.glob(f".{glob.escape(path.name)}.old-*"):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and p.is_dir() and not _alive(int(pid)):
            stale.append(p)
    if not stale:
        return None
    stale.sort(key=lambda p: p.stat().st_mtime_ns)
    recovered = None
    if not path.exists():
        recovered = stale.pop()  # the newest: the last complete state
        try:
            os.replace(recovered, path)
        except OSError:  # another reader recovered it first
            return None
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return recovered


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
        if len(self.problems) == 1:  # one bad line: one line, naming it
            where, why = self.problems[0]
            return f"{where}: {why} ({self.source}: {self.loaded} loaded, 1 problem)"
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
