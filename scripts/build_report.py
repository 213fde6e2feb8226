"""Execute every notebook with papermill and write an HTML report: `python scripts/build_report.py [--profile workshop]`.

Writes reports/<notebook>.ipynb (executed), reports/<notebook>.html, reports/figures/<notebook>.json (+ .png plots),
reports/run.json (profile, times, failures) and reports/index.html, the summary page: verdicts first, then one section
per notebook. `--single-file` also writes reports/ragft_report.html with plots and figures inside, to mail as one file;
`--index-only` rewrites the page(s) from an existing report folder without running anything.
A failing notebook does not stop the others: its partial output is kept and the index shows it in red with its error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ragft import report

ROOT = Path(__file__).resolve().parent.parent


def to_html(ipynb: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nbformat.read(ipynb, as_version=4))
    out = ipynb.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="workshop", choices=["smoke", "workshop", "full"])
    ap.add_argument("--out", default=str(ROOT / "reports"))
    ap.add_argument("--only", nargs="*", help="notebook names (default: all, in order)")
    ap.add_argument("--single-file", action="store_true", help="also write ragft_report.html with its plots inlined")
    ap.add_argument("--index-only", action="store_true", help="only rewrite the index from an existing report folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    figures = out / "figures"
    names = args.only or report.list_notebooks()
    if args.index_only:
        run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
        return write_pages(out, args.only or run.get("notebooks") or names, figures, run.get("timings"), run.get("failures"),
                           run.get("profile"), args.single_file)
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
    (out / "run.json").write_text(json.dumps({"profile": args.profile, "notebooks": names, "timings": timings,
                                              "failures": failures}, indent=2))
    total = time.perf_counter() - t_all
    print(f"[report] {len(names) - len(failures)}/{len(names)} notebooks ran in {total / 60:.1f} min")
    write_pages(out, names, figures, timings, failures, args.profile, args.single_file)
    if failures:
        print("[report] failed: " + ", ".join(failures) + ". Open their .html to see the failing cell.")
    return 1 if failures else 0


def write_pages(out: Path, names, figures: Path, timings, failures, profile, single_file: bool) -> int:
    """Write index.html (and ragft_report.html when `single_file`); 1 when a notebook failed."""
    for single in (False, True) if single_file else (False,):
        page = report.write_index(out, names, figures, timings, failures, single_file=single, profile=profile)
        print(f"[report] -> {page}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
