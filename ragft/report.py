"""Notebook plumbing: the setup banner every notebook prints, recording headline figures for tests and the report,
and building the HTML report from executed notebooks.

Not an experiment tracker: figures are a small JSON file per notebook, read back by tests and the report index.
"""

from __future__ import annotations

import html
import json
import math
import os
import platform
import random
from pathlib import Path

from .io import atomic_path


def setup_notebook(seed: int = 0, profile: str = "workshop") -> dict:
    """Seed everything and print one line each: ragft version, device, 4-bit availability, seed, profile."""
    import numpy as np
    import torch

    from . import __version__

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        import bitsandbytes  # noqa: F401

        four_bit = f"available (bitsandbytes {bitsandbytes.__version__})"
    except Exception as e:  # import errors differ by platform; any of them means 4-bit is off
        four_bit = f"off ({type(e).__name__}: {e})"
    info = {"ragft": __version__, "device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "four_bit": four_bit, "seed": seed, "profile": profile, "python": platform.python_version()}
    print(f"ragft {__version__} | torch {torch.__version__} on {device} ({torch.get_num_threads()} threads) | "
          f"4-bit: {four_bit} | seed {seed} | profile {profile}")
    return info


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item"):  # numpy / torch scalars
        return _clean(v.item())
    return v


def record_figures(notebook: str, figures: dict, results_dir: str | os.PathLike) -> Path:
    """Write `<results_dir>/<notebook>.json` (atomically) with the notebook's headline figures; return the path.

    >>> record_figures("00_overview", {"n_docs": 1110}, "/tmp/r")  # doctest: +SKIP
    """
    path = Path(results_dir) / f"{notebook}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_clean(figures), indent=2, sort_keys=True))
    print(f"recorded {len(figures)} figures -> {path}")
    return path


def read_figures(notebook: str, results_dir: str | os.PathLike) -> dict:
    path = Path(results_dir) / f"{notebook}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the notebook {notebook} did not record its figures (did it run to the end?)")
    return json.loads(path.read_text())


def write_index(report_dir: str | os.PathLike, notebooks: list[str], figures_dir: str | os.PathLike,
                timings: dict[str, float] | None = None, failures: dict[str, str] | None = None) -> Path:
    """Write `<report_dir>/index.html`: one section per notebook with a link to its HTML page and its recorded figures."""
    report_dir = Path(report_dir)
    timings, failures = timings or {}, failures or {}
    parts = ["<!doctype html><meta charset='utf-8'><title>ragft report</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left;vertical-align:top}.fail{color:#b00}</style>",
             "<h1>ragft report</h1><p>Every notebook executed with papermill; headline figures as each notebook recorded them.</p>"]
    for nb in notebooks:
        t = f" ({timings[nb]:.0f} s)" if nb in timings else ""
        parts.append(f"<h2><a href='{html.escape(nb)}.html'>{html.escape(nb)}</a>{t}</h2>")
        if nb in failures:
            parts.append(f"<p class='fail'>FAILED: {html.escape(failures[nb])}</p>")
        try:
            figs = read_figures(nb, figures_dir)
        except FileNotFoundError:
            parts.append("<p class='fail'>no figures recorded</p>")
            continue
        parts.append(_figures_table(figs))
    out = report_dir / "index.html"
    with atomic_path(out) as tmp:
        tmp.write_text("\n".join(parts))
    return out


def _figures_table(figs: dict) -> str:
    rows = []
    for k, v in figs.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):  # a table (list of records) renders as a table
            cols = list(v[0])  # figures are stored with sorted keys: put the column naming each row first
            cols.sort(key=lambda c: c not in ("arm", "system", "name", "id"))
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in v)
            rows.append(f"<tr><td>{html.escape(k)}</td><td><table><tr>{head}</tr>{body}</table></td></tr>")
        else:
            rows.append(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_fmt(v))}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)[:300]
    return str(v)


NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def list_notebooks() -> list[str]:
    """The numbered notebooks, in order: ['00_overview', '01_chunking', ...]."""
    return sorted(p.stem for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))


def execute_notebook(name: str, out_dir: str | os.PathLike, profile: str = "smoke", results_dir: str | os.PathLike | None = None,
                     progress: bool = False, **parameters) -> Path:
    """Execute `notebooks/<name>.ipynb` with papermill into `<out_dir>/<name>.ipynb`; figures go to `results_dir`.

    The notebook runs with notebooks/ as its working folder and the kernel named "python3" (this environment's).
    """
    import papermill as pm

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = {"PROFILE": profile, "RESULTS_DIR": str(Path(results_dir or out_dir).resolve()), **parameters}
    out = out_dir / f"{name}.ipynb"
    pm.execute_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"), str(out), parameters=params, kernel_name="python3",
                        cwd=str(NOTEBOOK_DIR), progress_bar=progress, log_output=False)
    return out
