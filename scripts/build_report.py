"""Execute every notebook with papermill and write an HTML report: `python scripts/build_report.py [--profile workshop]`.

Writes reports/<notebook>.ipynb (executed), reports/<notebook>.html, reports/figures/<notebook>.json and reports/index.html.
A failing notebook does not stop the others: its partial output is kept and the index marks it FAILED.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def to_html(ipynb: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(ipynb, as_version=4))
    out = ipynb.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def main(argv=None) -> int:
    from ragft import report

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="workshop", choices=["smoke", "workshop", "full"])
    ap.add_argument("--out", default=str(ROOT / "reports"))
    ap.add_argument("--only", nargs="*", help="notebook names (default: all, in order)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    figures = out / "figures"
    names = args.only or report.list_notebooks()
    timings, failures = {}, {}
    t_all = time.perf_counter()
    for i, name in enumerate(names, 1):
        print(f"[report] ({i}/{len(names)}) {name} — profile {args.profile}", flush=True)
        t0 = time.perf_counter()
        try:
            report.execute_notebook(name, out, profile=args.profile, results_dir=figures, progress=True)
        except Exception as e:  # keep going: the executed copy up to the failing cell is still written
            failures[name] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:500]
            print(f"[report] {name} FAILED: {failures[name]}", flush=True)
        timings[name] = time.perf_counter() - t0
        if (out / f"{name}.ipynb").exists():
            to_html(out / f"{name}.ipynb")
        print(f"[report] {name}: {timings[name]:.0f} s", flush=True)
    index = report.write_index(out, names, figures, timings, failures)
    total = time.perf_counter() - t_all
    print(f"[report] {len(names) - len(failures)}/{len(names)} notebooks ran in {total / 60:.1f} min -> {index}")
    if failures:
        print("[report] failed: " + ", ".join(failures) + ". Open their .html to see the failing cell.")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
