"""Notebook plumbing: the setup banner every notebook prints, recording headline figures and plots for tests and the
report, executing notebooks, and writing the report's index (laid out by ragft/report/page.py).

Not an experiment tracker: figures are a small JSON file (and a PNG) per notebook, read back by tests and the report index.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
from pathlib import Path

from ..core.io import atomic_path
from . import page as report_page
from .timings import how_long


def setup_notebook(seed: int = 0, profile: str = "workshop", notebook: str | None = None) -> dict:
    """Seed everything and print one line each: ragft version, device, 4-bit availability, seed, profile; with
    `notebook`, also how long it took in each profile's published run (`timings.how_long`)."""
    import numpy as np
    import torch

    from .. import __version__

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
    if notebook:
        print(how_long(notebook))
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


def save_figure(fig, notebook: str, results_dir: str | os.PathLike, name: str = "") -> Path:
    """Save a notebook's headline matplotlib figure as `<results_dir>/<notebook>.png` (next to its figures JSON).

    The report's index shows it in the notebook's section; `name` adds a second plot as `<notebook>--<name>.png`.
    Call it before `plt.show()`, which closes the figure in Jupyter.

    >>> save_figure(ax.figure, "05_hybrid", RESULTS_DIR)  # doctest: +SKIP
    """
    stem = f"{notebook}--{name}" if name else notebook
    path = Path(results_dir) / f"{stem}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    return path


def write_index(report_dir: str | os.PathLike, notebooks: list[str], figures_dir: str | os.PathLike,
                timings: dict[str, float] | None = None, failures: dict[str, str] | None = None,
                single_file: bool = False, profile: str | None = None) -> Path:
    """Write the report's summary page (see ragft/report/page.py) and return its path.

    `<report_dir>/index.html` links the plots, figures JSON and executed notebooks; with `single_file` the page is
    `<report_dir>/ragft_report.html` and carries its plots and figures JSON inside, to mail or upload as one file.
    """
    report_dir = Path(report_dir)
    results = report_page.collect(report_dir, notebooks, figures_dir, timings, failures, notebook_dir=NOTEBOOK_DIR)
    out = report_dir / ("ragft_report.html" if single_file else "index.html")
    page = report_page.render(results, report_dir, single_file=single_file, profile=profile)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out


NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"


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
