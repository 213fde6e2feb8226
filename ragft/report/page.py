"""The report's index page: the verdicts first, then one section per notebook that a teacher can hand out.

Reads what the notebooks left behind (figures JSON and headline PNGs in the figures folder, executed copies next to the
page) and writes one HTML page: the arms table with intervals and each claim's verdict, then per notebook a one-sentence
takeaway written from its numbers, its plot, 3-6 headline numbers with labels and units, its nested data as small tables,
and links to its figures JSON and executed notebook (tables: ragft/report/tables.py). A failed notebook shows in red
with its error. Does not run notebooks (scripts/build_report.py does) and computes no new result: every number on it
is one a notebook recorded.
"""

from __future__ import annotations

import base64
import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import summaries as report_summaries
from .labels import fmt
from .tables import arms_table, claims_list, details_tables, is_records

VERDICTS_FROM = "05_hybrid"  # the notebook whose arms table and claims open the page (another one's "claims" if absent)
IMAGE_TYPES = {".png": "image/png", ".svg": "image/svg+xml"}
HIDDEN = ("per_question",)  # recorded for scripts/final.py (every answer's flags), too long to read on the page

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;max-width:76em;margin:0 auto;padding:.8em 1.2em}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .3em;border-bottom:1px solid #ddd;padding-bottom:.15em}
h3{font-size:1em;margin:.9em 0 .3em}.meta{color:#555;margin:.1em 0 .5em}.note{color:#555;font-size:.9em}
nav{font-size:.9em;margin:.3em 0 .6em}nav span{margin-right:1.1em;white-space:nowrap;display:inline-block}
a{color:#1558b0}.ok{color:#1a7f37}.bad{color:#b42318}.na{color:#777}
.verdicts{display:grid;grid-template-columns:minmax(0,1.15fr) minmax(0,1fr);gap:1.2em;align-items:start}
@media (max-width:1000px){.verdicts,.nb{grid-template-columns:minmax(0,1fr)}}
.nb{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1.2em;align-items:start}
img{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;font-size:.86em;margin:.2em 0 .6em;max-width:100%}
td,th{border:1px solid #d8d8d8;padding:2px 7px;text-align:right;vertical-align:top;overflow-wrap:break-word}
td.w{overflow-wrap:anywhere}
th{background:#f4f4f4;font-weight:600}td:first-child,th:first-child{text-align:left}
td.t{text-align:left;max-width:38em}.arms td:first-child{min-width:9em}.tw{overflow-x:auto;max-width:100%}.arms td.t{color:#555}.ci{white-space:nowrap;color:#555}.u{white-space:nowrap}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(10.5em,1fr));gap:.5em;margin:.4em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.35em .6em}.card .v{font-size:1.35em;font-weight:600}
.card .l{font-size:.82em;color:#444}
ul.claims{padding-left:1.1em;margin:.3em 0}ul.claims li{margin:.15em 0}
.failed{border:2px solid #b42318;background:#fff4f2;color:#b42318;padding:.4em .7em;border-radius:6px}
.failed code{white-space:pre-wrap;overflow-wrap:anywhere}
details{margin:.3em 0}summary{cursor:pointer;color:#1558b0}
"""


@dataclass
class NotebookResult:
    """What one notebook left for the report: its figures (None if it recorded none), plots, error and output link."""

    name: str
    title: str
    figures: dict | None = None
    images: list[Path] = field(default_factory=list)
    error: str | None = None
    seconds: float | None = None
    output: Path | None = None  # the executed notebook as HTML (or .ipynb when no HTML was written)
    figures_path: Path | None = None

    @property
    def ran(self) -> bool:
        return self.error is None and self.figures is not None


def collect(report_dir: str | os.PathLike, notebooks: list[str], figures_dir: str | os.PathLike,
            timings: dict[str, float] | None = None, failures: dict[str, str] | None = None,
            notebook_dir: str | os.PathLike | None = None) -> list[NotebookResult]:
    """Gather each notebook's figures, plots, error (from `failures` or the executed copy) and output link."""
    report_dir, figures_dir = Path(report_dir), Path(figures_dir)
    timings, failures = timings or {}, failures or {}
    results = []
    for nb in notebooks:
        r = NotebookResult(nb, notebook_title(nb, notebook_dir), seconds=timings.get(nb))
        path = figures_dir / f"{nb}.json"
        if path.exists():
            r.figures, r.figures_path = json.loads(path.read_text()), path
        r.images = sorted((p for p in figures_dir.glob(f"{nb}*") if p.suffix in IMAGE_TYPES
                           and (p.stem == nb or p.stem.startswith(f"{nb}--"))), key=lambda p: (p.stem != nb, p.name))
        r.output = next((p for p in (report_dir / f"{nb}.html", report_dir / f"{nb}.ipynb") if p.exists()), None)
        r.error = failures.get(nb)
        if r.error is None and r.figures is None:
            executed = report_dir / f"{nb}.ipynb"
            r.error = (executed_error(executed) if executed.exists() else None) or (
                "it recorded no figures (did it run to the end?)" if executed.exists() else "it was not run")
        results.append(r)
    return results


def executed_error(ipynb: Path) -> str | None:
    """The first error output of an executed notebook as 'Name: message', or None."""
    try:
        nb = json.loads(ipynb.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"[:500]
    return None


def notebook_title(name: str, notebook_dir: str | os.PathLike | None = None) -> str:
    """The notebook's '# Title' line ('00 · Overview: ...'); its humanized file name when it has none."""
    if notebook_dir is not None:
        try:
            cells = json.loads((Path(notebook_dir) / f"{name}.ipynb").read_text(encoding="utf-8"))["cells"]
            for cell in cells:
                if cell.get("cell_type") == "markdown":
                    first = "".join(cell.get("source", "")).lstrip().splitlines()[0] if cell.get("source") else ""
                    if first.startswith("# "):
                        return first[2:].strip()
        except (OSError, ValueError, KeyError, IndexError):
            pass
    number, _, rest = name.partition("_")
    return f"{number} · {rest.replace('_', ' ').capitalize()}" if rest else name


def render(results: list[NotebookResult], report_dir: str | os.PathLike, single_file: bool = False,
           profile: str | None = None, verdicts_from: str = VERDICTS_FROM) -> str:
    """The whole page as an HTML string (links relative to `report_dir`; images inlined when `single_file`)."""
    report_dir = Path(report_dir)
    link = _Linker(report_dir, single_file)
    source = next((r for r in results if r.figures and "claims" in r.figures),
                  next((r for r in results if r.name == verdicts_from), None))
    ran = sum(r.ran for r in results)
    total = sum(r.seconds or 0 for r in results)
    meta = [f"profile {html.escape(profile)}" if profile else None, f"{ran} of {len(results)} notebooks ran",
            f"{total / 60:.1f} min of notebooks" if total else None, time.strftime("written %Y-%m-%d %H:%M")]
    parts = ["<!doctype html><html lang='en'><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width,initial-scale=1'><title>ragft report</title>",
             f"<style>{CSS}</style><body>",
             "<h1>ragft report: RAG, fine-tuning and their hybrid on NumPy's API reference</h1>",
             f"<p class='meta'>{' · '.join(m for m in meta if m)}</p>"]
    if profile == "smoke":
        parts.append("<p class='note'>Smoke profile: a handful of questions and training steps. It proves the code runs; "
                     "its numbers separate nothing. Use the workshop profile for numbers worth discussing.</p>")
    parts.append(_nav(results, source))
    parts.append(_verdicts(source, link))
    for r in results:
        parts.append(_section(r, link, shown_above=r is source and r.ran))
    parts.append("</body></html>")
    return "\n".join(parts)


def _nav(results, source) -> str:
    items = ["<a href='#verdicts'>Verdicts</a>"] if source else []
    for r in results:
        mark = "" if r.ran else " <span class='bad'>(failed)</span>"
        items.append(f"<a href='#{_anchor(r.name)}'>{html.escape(r.name)}</a>{mark}")
    return f"<nav>{''.join(f'<span>{i}</span>' for i in items)}</nav>"


def _verdicts(r: NotebookResult | None, link: _Linker) -> str:
    head = "<h2 id='verdicts'>Verdicts</h2>"
    if r is None:
        return ""
    if not r.ran:
        return head + (f"<p class='failed'>No verdicts: {html.escape(r.title)} did not finish "
                       f"(see <a href='#{_anchor(r.name)}'>its section</a>).</p>")
    f = r.figures
    arms = f.get("arms")
    left = []
    context = report_summaries.context_line(f)
    if context:
        left.append(f"<p class='meta'>{html.escape(context)}</p>")
    if is_records(arms):
        left.append(f"<div class='tw'>{arms_table(arms)}</div>")
    right = [link.image(p, f"{r.title}: headline plot") for p in r.images[:1]]
    claims = claims_list(f.get("claims"))
    if claims:  # beside the table, under the plot: on the first screen with it
        right.append("<h3>The expected story, claim by claim</h3>" + claims)
    takeaway = report_summaries.takeaway(r.name, f)
    lead = f"<p>{html.escape(takeaway)}</p>" if takeaway else ""
    return (f"{head}{lead}<div class='verdicts'><div>{''.join(left)}</div><div>{''.join(right)}</div></div>"
            f"<p class='note'>From <a href='#{_anchor(r.name)}'>{html.escape(r.title)}</a>.</p>")


def _section(r: NotebookResult, link: _Linker, shown_above: bool) -> str:
    status = (f" <span class='note'>({r.seconds:.0f} s)</span>" if r.seconds is not None else "")
    parts = [f"<h2 id='{_anchor(r.name)}'>{html.escape(r.title)}{status}</h2>"]
    links = []
    if r.output is not None:
        links.append(link.file(r.output, "the executed notebook" if r.ran else "the partial output"))
    if r.figures_path is not None:
        links.append(link.json(r.figures_path, "all recorded figures (JSON)"))
    if r.error is not None:
        where = f" Open {links[0]} to see the failing cell." if r.output is not None else ""
        parts.append(f"<p class='failed'><b>Failed.</b> <code>{html.escape(r.error)}</code>{where}</p>")
    if r.figures is None:
        return "\n".join(parts)
    f = r.figures
    takeaway = None if shown_above else report_summaries.takeaway(r.name, f)
    if takeaway:
        parts.append(f"<p>{html.escape(takeaway)}</p>")
    headlines = report_summaries.headlines(r.name, f)
    cards = "".join(f"<div class='card'><div class='v'>{html.escape(fmt(h.value, h.unit, headline=True))}</div>"
                    f"<div class='l'>{html.escape(h.label)}</div></div>" for h in headlines)
    images = r.images[1:] if shown_above else r.images
    pictures = "".join(link.image(p, f"{r.title}: plot") for p in images)
    if shown_above:
        parts.append("<p class='note'>Its arms table, claims and plot open this page (<a href='#verdicts'>Verdicts</a>).</p>")
    if pictures:
        parts.append(f"<div class='nb'><div>{pictures}</div><div><div class='cards'>{cards}</div></div></div>")
    else:
        parts.append(f"<div class='cards'>{cards}</div>")
    # a card that shows one number of a table (a path into it) leaves the table in place
    used = {h.key for h in headlines if not isinstance(f.get(h.key), (dict, list))}
    used |= {"arms", "claims"} if shown_above else set()
    used |= set(HIDDEN)
    parts.append(details_tables(f, used))
    if links:
        parts.append(f"<p class='note'>{' · '.join(links)}</p>")
    return "\n".join(parts)


def _anchor(name: str) -> str:
    return "nb-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


class _Linker:
    """Links to the report's files: relative paths, or inlined data when the page must travel alone."""

    def __init__(self, report_dir: Path, single_file: bool):
        self.report_dir, self.single_file = report_dir, single_file

    def _rel(self, path: Path) -> str:
        return Path(os.path.relpath(path, self.report_dir)).as_posix()

    def image(self, path: Path, alt: str) -> str:
        src = (f"data:{IMAGE_TYPES[path.suffix]};base64,{base64.b64encode(path.read_bytes()).decode()}"
               if self.single_file else html.escape(self._rel(path)))
        return f"<img src='{src}' alt='{html.escape(alt)}'>"

    def json(self, path: Path, text: str) -> str:
        if self.single_file:
            data = base64.b64encode(path.read_bytes()).decode()
            return (f"<a download='{html.escape(path.name)}' href='data:application/json;base64,{data}'>"
                    f"{html.escape(text)}</a>")
        return f"<a href='{html.escape(self._rel(path))}'>{html.escape(text)}</a>"

    def file(self, path: Path, text: str) -> str:
        note = " (in the report folder)" if self.single_file else ""
        return f"<a href='{html.escape(self._rel(path))}'>{html.escape(text)}</a>{note}"
