"""How long each notebook takes, per profile, as the published runs measured it: `docs/timings.json`, written by
`make publish` (scripts/build_report.py --publish) and read by each notebook's banner, so no minute is typed by hand.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..core.io import atomic_path
from ..core.paths import REPO_ROOT

TIMINGS_FILE = REPO_ROOT / "docs" / "timings.json"
PROFILE_NAMES = {"workshop": "workshop", "full": "research (full)"}  # the profiles a published run can have


def read_timings(path: str | os.PathLike = TIMINGS_FILE) -> dict:
    """{profile: {"seconds": {notebook: s}, "commit", "date", "cpus", "device"}}; {} when nothing was published."""
    path = Path(path)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def merge_run(timings: Mapping, run: Mapping) -> dict:
    """`timings` with this run's notebooks (those that did not fail) replacing the same profile's earlier figures."""
    failed = set(run.get("failures") or ())
    seconds = {n: round(float(s), 1) for n, s in (run.get("timings") or {}).items() if n not in failed}
    if not seconds:
        return dict(timings)
    earlier = timings.get(run["profile"], {})
    load = {n: v for n, v in (run.get("load") or {}).items() if n in seconds}
    entry = {"seconds": {**earlier.get("seconds", {}), **seconds}, "load": {**earlier.get("load", {}), **load},
             "commit": (run.get("commit") or "")[:12], "date": run.get("date"), "cpus": run.get("cpus"),
             "device": run.get("device")}
    return {**timings, run["profile"]: entry}


def write_timings(timings: Mapping, path: str | os.PathLike = TIMINGS_FILE) -> None:
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def published(notebook: str, timings: Mapping):
    """(label, seconds or None, the profile's entry) per profile a published run can have."""
    for profile, label in PROFILE_NAMES.items():
        entry = timings.get(profile) or {}
        yield label, (entry.get("seconds") or {}).get(notebook), entry


def how_long(notebook: str, timings: Mapping | None = None) -> str:
    """'How long: workshop 6.1 min, research (full) not published yet (measured on 2 CPUs, cpu; commit abc, date).'"""
    timings = read_timings() if timings is None else timings
    parts, where = [], []
    for label, s, entry in published(notebook, timings):
        parts.append(f"{label} {s / 60:.1f} min" if s is not None else f"{label} not published yet")
        if s is not None:
            where.append(f"{label}: {entry.get('cpus') or '?'} CPUs, {entry.get('device') or '?'}, "
                         f"commit {entry.get('commit') or '?'}, {entry.get('date') or '?'}")
    return "How long: " + ", ".join(parts) + "; smoke (the tests) seconds to minutes." + (
        f" Measured by the published runs ({'; '.join(where)})." if where else "")


HOW_LONG_MARK = "**How long**"  # the line of a notebook's opening cell that `make publish` rewrites


def opening_line(notebook: str, timings: Mapping) -> str:
    """'**How long** on 2 cores (published runs): workshop 6.1 min · research (full) not published yet'."""
    parts = []
    for label, s, entry in published(notebook, timings):
        cpus = f"{entry.get('cpus')} CPUs" if entry.get("cpus") else "?"
        load = (entry.get("load") or {}).get(notebook)
        busy = f", load {load:.1f}" if load is not None else ""  # the machine's 5-min load average as it ended
        parts.append(f"{label} {s / 60:.1f} min ({cpus}, {entry.get('device') or '?'}{busy})" if s is not None
                     else f"{label} not published yet")
    return f"{HOW_LONG_MARK} (published runs, `docs/timings.json`): " + " · ".join(parts)


def splice_opening(nb: dict, line: str) -> bool:
    """Put `line` into the notebook's first markdown cell (replacing an earlier one); True when the text changed."""
    cell = next((c for c in nb["cells"] if c["cell_type"] == "markdown"), None)
    if cell is None:
        return False
    text = "".join(cell["source"])
    lines = text.split("\n")
    kept = [x for x in lines if not x.startswith(HOW_LONG_MARK)]
    at = 1 if kept and kept[0].startswith("#") else 0  # right under the title
    new = "\n".join(kept[:at] + [line] + kept[at:])
    if new == text:
        return False
    cell["source"] = new.splitlines(keepends=True)
    return True
