"""Execute every notebook with papermill and write an HTML report: `python scripts/build_report.py [--profile workshop]`.

Writes reports/<notebook>.ipynb (executed), reports/<notebook>.html, reports/figures/<notebook>.json (+ .png plots),
reports/run.json (profile, times, failures) and reports/index.html, the summary page: verdicts first, then one section
per notebook. `--single-file` also writes reports/ragft_report.html with plots and figures inside, to mail as one file;
`--index-only` rewrites the page(s) from an existing report folder without running anything.
A failing notebook does not stop the others: its partial output is kept and the index shows it in red with its error.
`--publish` (workshop or full profile only) then copies the figures JSON the results page reads into docs/figures/
(with run.json: profile, commit, date, times) and renders docs/results.md and README.md's results table from them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ragft import report

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ("docs/figures", "docs/results.md", "docs/timings.json", "README.md")  # what --publish writes: not "uncommitted code"


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
    ap.add_argument("--publish", action="store_true",
                    help="also write docs/results.md, docs/figures/ and README.md's results table from this run")
    ap.add_argument("--docs", default=str(ROOT / "docs"), help=argparse.SUPPRESS)  # tests publish into a scratch folder
    ap.add_argument("--readme", default=str(ROOT / "README.md"), help=argparse.SUPPRESS)
    ap.add_argument("--notebooks", default=str(report.NOTEBOOK_DIR), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    out = Path(args.out)
    figures = out / "figures"
    names = args.only or report.list_notebooks()
    if args.publish and not args.index_only and args.profile == "smoke":
        print(f"[report] {report.SMOKE_REFUSAL}", file=sys.stderr)
        return 2
    if args.index_only:
        run = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
        code = write_pages(out, args.only or run.get("notebooks") or names, figures, run.get("timings"),
                           run.get("failures"), run.get("profile"), args.single_file)
        return (publish(out, run, Path(args.docs), Path(args.readme), Path(args.notebooks)) or code) if args.publish else code
    timings, failures, load = {}, {}, {}
    state = {**git_state(ROOT), "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),  # the code that ran, and where
             "cpus": os.cpu_count(), "device": device()}
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
        load[name] = round(os.getloadavg()[1], 2)  # 5-min load average as it ended: other work on the machine slows it
        if (out / f"{name}.ipynb").exists():
            to_html(out / f"{name}.ipynb")
        print(f"[report] {name}: {timings[name]:.0f} s", flush=True)
    run = {"profile": args.profile, "notebooks": names, "timings": timings, "failures": failures, "load": load, **state}
    (out / "run.json").write_text(json.dumps(run, indent=2))
    total = time.perf_counter() - t_all
    print(f"[report] {len(names) - len(failures)}/{len(names)} notebooks ran in {total / 60:.1f} min")
    write_pages(out, names, figures, timings, failures, args.profile, args.single_file)
    if failures:
        print("[report] failed: " + ", ".join(failures) + ". Open their .html to see the failing cell.")
    refused = publish(out, run, Path(args.docs), Path(args.readme), Path(args.notebooks)) if args.publish else 0
    return refused or (1 if failures else 0)


def device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def git_state(root: Path) -> dict:
    """{"commit": HEAD, "dirty": uncommitted changes to tracked files outside what --publish writes}; None when no git."""
    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", str(root), *a], capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){p}" for p in PUBLISHED))
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(changes)}


def publish(out: Path, run: dict, docs: Path, readme: Path, notebooks: Path = report.NOTEBOOK_DIR) -> int:
    """Copy the page's figures and the run record into docs/figures/, render docs/results.md (and README.md's table,
    when it carries the markers) from that copy; 2 with one line why when this run must not be published."""
    recorded = {n for n in report.PAGE_NOTEBOOKS if (out / "figures" / f"{n}.json").exists()}
    refusal = report.publish_refusal(run, recorded)
    if refusal:
        print(f"[report] not published: {refusal}", file=sys.stderr)
        return 2
    dest = docs / "figures"
    dest.mkdir(parents=True, exist_ok=True)
    keep = {f"{n}.json" for n in recorded} | {report.RUN_FILE}
    for stale in dest.glob("*.json"):  # a notebook the page no longer reads leaves no orphan behind
        if stale.name not in keep:
            stale.unlink()
    for name in sorted(recorded):
        shutil.copyfile(out / "figures" / f"{name}.json", dest / f"{name}.json")
    (dest / report.RUN_FILE).write_text(json.dumps(run, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    figures, published = report.read_published(dest)  # the page is rendered from the copy, as the test re-renders it
    (docs / "results.md").write_text(report.render_results(figures, published), encoding="utf-8")
    print(f"[report] published -> {docs / 'results.md'} and {dest}/")
    timings_file = docs / report.TIMINGS_FILE.name  # each notebook's banner reads its minutes per profile from here
    timings = report.merge_run(report.read_timings(timings_file), run)
    report.write_timings(timings, timings_file)
    for path in sorted(notebooks.glob("*.ipynb")):  # each notebook's opening states its minutes
        nb = json.loads(path.read_text(encoding="utf-8"))
        if report.timings.splice_opening(nb, report.timings.opening_line(path.stem, timings)):
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    spliced = report.splice_readme(text, report.readme_block(figures, published))
    if spliced is None:
        print(f"[report] {readme} has no results markers: its table was not written")
    elif spliced != text:
        readme.write_text(spliced, encoding="utf-8")
        print(f"[report] -> {readme} (results table)")
    return 0


def write_pages(out: Path, names, figures: Path, timings, failures, profile, single_file: bool) -> int:
    """Write index.html (and ragft_report.html when `single_file`); 1 when a notebook failed."""
    for single in (False, True) if single_file else (False,):
        page = report.write_index(out, names, figures, timings, failures, single_file=single, profile=profile)
        print(f"[report] -> {page}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
