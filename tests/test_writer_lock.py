"""Writers of one hnswlib index folder: two `ragft update` processes at once queue on the folder's lock, the final index
is one folder's content and each process reports what its own save changed; a folder left as `.NAME.old-PID` by a
kill between atomic_path's two renames is recovered on the next open; a full disk ends in one line, index unchanged."""

import errno
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragft.core.io import old_name
from ragft.retrieval.hnsw import DenseIndex, writer_lock
from ragft.ui.cli import main

START = {"a.md": "Apples are red fruit.", "b.md": "Bananas are yellow fruit."}
FOLDER_A = {"a.md": "Apples are red fruit.", "c.md": "Cherries are small and dark."}
FOLDER_B = {"b.md": "Bananas are yellow fruit.", "d.md": "Dates grow on palms.", "e.md": "Elderberries are purple."}


def folder(root: Path, name: str, files: dict) -> Path:
    d = root / name
    d.mkdir()
    for f, text in files.items():
        (d / f).write_text(text)
    return d


def expected_report(before: dict, after: dict) -> str:
    added = [f for f in after if f not in before]
    removed = [f for f in before if f not in after]
    changed = [f for f in after if f in before and before[f] != after[f]]
    return (f"{len(added)} added, {len(removed)} removed, {len(changed)} changed, "
            f"{len(after) - len(added) - len(changed)} unchanged")


def tree(path: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


@pytest.fixture
def index(tmp_path, capsys):
    idx = tmp_path / "idx"
    assert main(["index", str(folder(tmp_path, "start", START)), "--out", str(idx), "--embedder", "hashing",
                 "--quiet"]) == 0
    capsys.readouterr()
    return idx


def test_two_concurrent_updates_queue_and_each_reports_what_it_wrote(tmp_path, index):
    a, b = folder(tmp_path, "A", FOLDER_A), folder(tmp_path, "B", FOLDER_B)
    logs = {name: tmp_path / f"{name}.err" for name in "AB"}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with writer_lock(index):  # hold the lock until both are waiting on it: they must overlap, then queue
        procs = {name: subprocess.Popen([sys.executable, "-m", "ragft.ui.cli", "update", str(index), str(src), "--quiet"],
                                        stderr=open(logs[name], "w"), env=env)
                 for name, src in (("A", a), ("B", b))}
        deadline = time.monotonic() + 120
        while not all("waiting for it to finish" in logs[n].read_text() for n in "AB"):
            assert time.monotonic() < deadline, {n: logs[n].read_text() for n in "AB"}
            assert all(p.poll() is None for p in procs.values()), {n: logs[n].read_text() for n in "AB"}
            time.sleep(0.1)
    for p in procs.values():
        assert p.wait(timeout=120) == 0
    err = {n: logs[n].read_text() for n in "AB"}
    final = set(DenseIndex.load(index).doc_ids)
    assert final in (set(FOLDER_A), set(FOLDER_B)), final
    last, first = ("A", "B") if final == set(FOLDER_A) else ("B", "A")
    files = {"A": FOLDER_A, "B": FOLDER_B}
    assert expected_report(START, files[first]) in err[first], err  # the first synced from the index as it was ...
    assert expected_report(files[first], files[last]) in err[last], err  # ... the second from what the first saved
    assert not [p for p in tmp_path.glob(".idx.*") if not p.name.endswith(".lock")]


def dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_folder_left_between_the_two_renames_is_recovered(tmp_path, index, capsys):
    """A kill after `os.replace(path, old)` and before `os.replace(tmp, path)` leaves only `.idx.old-PID`."""
    before = tree(index)
    os.replace(index, old_name(index, dead_pid()))
    assert not index.exists()
    assert main(["search", str(index), "--query", "apples", "-k", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"doc_id": "a.md"' in out and "recovered" in err and ".idx.old-" in err
    assert tree(index) == before and not list(tmp_path.glob(".idx.old-*"))
    # update recovers it too, and syncs the recovered index
    os.replace(index, old_name(index, dead_pid()))
    assert main(["update", str(index), str(folder(tmp_path, "A", FOLDER_A)), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "recovered" in err and "1 added, 1 removed, 0 changed, 1 unchanged" in err
    # a stale parked copy beside a complete index (killed after the second rename) is cleared on the next open
    shutil.copytree(index, old_name(index, dead_pid()))
    assert main(["search", str(index), "--query", "apples"]) == 0
    assert not list(tmp_path.glob(".idx.old-*"))


def test_a_live_writers_parked_folder_is_left_alone(tmp_path, index, capsys):
    """Between its two renames a LIVE writer's `.idx.old-PID` is not ours to move."""
    os.replace(index, old_name(index, os.getpid()))
    assert main(["search", str(index), "--query", "apples"]) == 2
    assert "no index at" in capsys.readouterr().err
    assert old_name(index, os.getpid()).is_dir() and not index.exists()


@pytest.mark.parametrize("command", ["update", "index"])
def test_a_full_disk_is_one_line_and_the_index_is_unchanged(tmp_path, index, capsys, monkeypatch, command):
    before = tree(index)
    src = folder(tmp_path, "A", FOLDER_A)

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)  # meta.json, the last file a save writes
    argv = ["update", str(index), str(src)] if command == "update" else \
        ["index", str(src), "--out", str(index), "--force", "--embedder", "hashing"]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(r"ragft: error: no space left on the device writing \S+meta\.json: free some space .*\n", err), err
    assert tree(index) == before
    assert not [p for p in tmp_path.glob(".idx.*") if not p.name.endswith(".lock")]  # no half-written folder left
