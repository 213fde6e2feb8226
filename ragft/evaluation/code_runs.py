"""Does an answer's suggested code run? Each code block runs under this environment's NumPy (2.4.6) in a sandboxed
child: `python -I`, a time limit per snippet, a memory limit, no network, no subprocesses, writes only inside a
temporary folder that is removed afterwards, and no inherited environment (so no secrets).

Many snippets share one child (each in its own namespace, NumPy's state restored between them), so grading hundreds of
answers costs seconds. It does not grade the answer's claim (see `scoring`) and it is a guard for model output, not a
security boundary against hostile code (ctypes can reach past it).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..core import house
from ..core.cache import KeyValueCache, content_key
from ..core.paths import CURRENT_VERSION, cache_dir

TIMEOUT_S = 5.0
MEMORY_MB = 1024  # address space the snippets may add to the child after NumPy is imported
STARTUP_S = 60.0  # the child's own start (importing NumPy) on a loaded machine
GRACE_S = 2.0  # past a snippet's own alarm, the parent kills a child stuck in C code (or swallowing the alarm)
# For a removed-name question the failure that matters is the missing name: an AttributeError (or code that never got
# that far: it does not parse, or it was stopped). A fragment's NameError on an undefined `x` does not count there.
REMOVED_FAILURES = ("AttributeError", "SyntaxError", "IndentationError", "Timeout", "Crashed", "MemoryError", "Refused")

# The child: reads {"snippets", "timeout", "memory_mb"} on stdin, writes one JSON line per snippet on its own copy of
# stdout (the snippets' prints go to /dev/null). An audit hook refuses sockets, subprocesses and writes outside the cwd.
_CHILD = r'''
import builtins, io, json, os, resource, signal, sys, time, types
job = json.loads(sys.stdin.read())
sys.stdin = io.StringIO("")
out = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_WRONLY)
os.dup2(null, 1); os.dup2(null, 2)
sys.stdout = sys.stderr = open(os.devnull, "w")
import numpy
out.write(json.dumps({"numpy": numpy.__version__}) + "\n"); out.flush()
HOME = os.path.realpath(os.getcwd())

class Refused(PermissionError):
    pass

class Timeout(BaseException):
    pass

BLOCKED = ("socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
           "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill")
PATH_EVENTS = {"os.remove": 1, "os.rename": 2, "os.rmdir": 1, "os.mkdir": 1, "shutil.rmtree": 1, "os.chmod": 1,
               "os.chown": 1, "os.truncate": 1, "os.symlink": 2, "os.link": 2, "os.utime": 1, "os.chdir": 1}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
armed = [False]

def inside(path):
    if isinstance(path, int):
        return True
    path = os.fsdecode(path)
    full = os.path.realpath(os.path.join(HOME, path))
    return full == HOME or full.startswith(HOME + os.sep) or full == os.devnull

def hook(event, args):
    if not armed[0]:
        return
    if event.startswith(BLOCKED):
        raise Refused(f"sandbox: {event} is not allowed")
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (mode is None and flags & WRITE_FLAGS)
        if writes and not inside(path):
            raise Refused(f"sandbox: no writing outside the working folder ({path})")
    elif event in PATH_EVENTS:
        if not all(inside(p) for p in args[:PATH_EVENTS[event]] if isinstance(p, (str, bytes, os.PathLike))):
            raise Refused(f"sandbox: {event} outside the working folder")

sys.addaudithook(hook)

def vm_bytes():
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return 0

try:
    limit = vm_bytes() + int(job["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 2**20, 64 * 2**20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
except (ValueError, OSError, AttributeError):
    pass

def alarm(signum, frame):
    raise Timeout()

signal.signal(signal.SIGALRM, alarm)
modules = [m for n, m in sys.modules.items() if n == "numpy" or n.startswith("numpy.")] + [builtins]
err, printopts = numpy.geterr(), numpy.get_printoptions()
for i, code in enumerate(job["snippets"]):
    saved = [(m, dict(vars(m))) for m in modules]
    namespace = {"__name__": "__snippet__", "__builtins__": builtins, "np": numpy, "numpy": numpy}
    start, error = time.perf_counter(), None
    try:
        compiled = compile(code, "<answer>", "exec")
        armed[0] = True
        signal.setitimer(signal.ITIMER_REAL, float(job["timeout"]))
        try:
            exec(compiled, namespace)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            armed[0] = False
    except Timeout:
        error = ("Timeout", f"stopped after {job['timeout']} s")
    except Refused as e:
        error = ("Refused", str(e))
    except BaseException as e:
        error = (type(e).__name__, str(e))
    signal.setitimer(signal.ITIMER_REAL, 0)
    armed[0] = False
    for m, d in saved:  # a snippet that sets np.float_ = np.float64 must not make the next one run
        current = vars(m)
        for k in [k for k, v in current.items() if k not in d and not isinstance(v, types.ModuleType)]:
            del current[k]  # a submodule imported since stays: sys.modules holds it and numpy's lazy loader relies on it
        for k, v in d.items():
            if current.get(k) is not v:
                current[k] = v
    numpy.seterr(**err); numpy.set_printoptions(**printopts)
    os.chdir(HOME)
    namespace.clear()
    out.write(json.dumps({"i": i, "error": error and [error[0], error[1][:300]],
                          "s": round(time.perf_counter() - start, 4)}) + "\n")
    out.flush()
'''


@dataclass(frozen=True)
class RunResult:
    """One snippet's run: `error` is None when it ran with no exception, else (exception name, message)."""

    error: tuple[str, str] | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def error_type(self) -> str | None:
        return self.error[0] if self.error else None


def _env(folder: str) -> dict:
    """Nothing of the parent's environment (tokens, keys): a path, a home and a temp folder inside the sandbox."""
    return {"PATH": os.defpath, "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "MPLCONFIGDIR": folder}


class _Lines:
    """Lines from a child's stdout, each waited for until a deadline (so a child stuck in C code is noticed)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.buffer = proc, b""

    def next(self, wait_s: float) -> dict | None:
        deadline = time.monotonic() + wait_s
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


def _run_child(snippets: Sequence[str], timeout_s: float, memory_mb: int, python: str,
               numpy_version: str | None) -> list[RunResult]:
    """Run snippets in one child, in order; a snippet that hangs or kills the child is recorded and the rest run in a
    fresh child."""
    results: list[RunResult] = []
    while len(results) < len(snippets):
        todo = list(snippets[len(results):])
        with tempfile.TemporaryDirectory(prefix="ragft-code-") as folder:
            proc = subprocess.Popen([python, "-I", "-B", "-c", _CHILD], cwd=folder, env=_env(folder), stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                proc.stdin.write(json.dumps({"snippets": todo, "timeout": timeout_s, "memory_mb": memory_mb}).encode())
                proc.stdin.close()
                lines = _Lines(proc)
                header = lines.next(STARTUP_S)
                if header is None:
                    raise RuntimeError(f"the code-running child did not start ({python})")
                if numpy_version and header["numpy"] != numpy_version:
                    raise RuntimeError(f"code_runs needs NumPy {numpy_version}; {python} has {header['numpy']}")
                for _ in todo:
                    line = lines.next(timeout_s + GRACE_S)
                    if line is None:  # stuck past its own alarm (in C code, or swallowed it) or dead: this one failed
                        what = "Timeout" if proc.poll() is None else "Crashed"
                        proc.kill()
                        proc.wait()
                        results.append(RunResult((what, f"the child ended with {proc.returncode}"), timeout_s))
                        break
                    results.append(RunResult(tuple(line["error"]) if line["error"] else None, line["s"]))
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                proc.stdout.close()
    return results


def run_snippets(snippets: Sequence[str], timeout_s: float = TIMEOUT_S, memory_mb: int = MEMORY_MB,
                 cache: KeyValueCache | dict | bool | None = None, python: str | None = None,
                 numpy_version: str | None = CURRENT_VERSION) -> list[RunResult]:
    """Run each snippet (with `np` and `numpy` imported) in the sandbox; one `RunResult` per snippet, in order.

    Identical snippets run once; `cache` (a dict, a KeyValueCache, or True for the user's cache folder) keeps results by
    a hash of the code, the limits and the NumPy version. `numpy_version`: the child must have it (None: any).
    """
    python = python or sys.executable
    store = KeyValueCache(cache_dir("code_runs")) if cache is True else (None if cache is False else cache)
    keys = {code: content_key({"v": 1, "code": code, "timeout": timeout_s, "memory_mb": memory_mb,
                               "numpy": numpy_version}) for code in snippets}
    known: dict[str, RunResult] = {}
    for code, key in keys.items():
        hit = store.get(key) if store is not None else None
        if hit is not None:
            known[code] = RunResult(tuple(hit["error"]) if hit["error"] else None, hit["s"])
    todo = [code for code in keys if code not in known]
    for code, result in zip(todo, _run_child(todo, timeout_s, memory_mb, python, numpy_version) if todo else [],
                            strict=True):
        known[code] = result
        if store is not None:
            value = {"error": list(result.error) if result.error else None, "s": result.seconds}
            if isinstance(store, KeyValueCache):
                store.put(keys[code], value)
            else:
                store[keys[code]] = value
    return [known[code] for code in snippets]


def runs(kind: str, result: RunResult) -> bool:
    """The `code_runs` grade of one run: no exception; for a removed-name question, none of `REMOVED_FAILURES`."""
    if result.ok:
        return True
    return kind == "removed" and result.error_type not in REMOVED_FAILURES


def run_answers(kinds: Sequence[str], answers: Sequence[str], **limits) -> list[dict]:
    """`code_runs` (True / False / None: no code block, or an abstention) and `code_error` ("AttributeError: ..." or
    None) for each answer, the question kinds in the same order; `limits` go to `run_snippets`."""
    parsed = [house.parse(a) for a in answers]
    codes = [p.code if p.code and not p.abstained else None for p in parsed]
    results = iter(run_snippets([c for c in codes if c is not None], **limits))
    out = []
    for kind, code in zip(kinds, codes, strict=True):
        if code is None:
            out.append({"code_runs": None, "code_error": None})
            continue
        r = next(results)
        out.append({"code_runs": runs(kind, r), "code_error": f"{r.error[0]}: {r.error[1]}" if r.error else None})
    return out


def add_code_runs(df, answer: str = "answer", **limits):
    """A copy of an answers table (columns kind and `answer`) with `code_runs` and `code_error` added, for
    `arms.summarize_arms`. `evaluation.add_code_runs(results, cache=True)`."""
    cols = run_answers(list(df["kind"]), list(df[answer]), **limits) if len(df) else []
    out = df.copy()
    out["code_runs"] = [c["code_runs"] for c in cols]
    out["code_error"] = [c["code_error"] for c in cols]
    return out
