"""Render a reST page (Django's dialect) mechanically as Markdown or HTML, so that the same pages and questions can be
searched in each format a user may hold (benchmarks/natural_questions.py --formats).

Section titles become `#` / <hN> by the order their adornment styles appear (as `rst_headings` ranks them), `::`
literal blocks and `.. code-block::` become fenced / <pre><code> blocks, roles become their visible text (in
backticks / <code> when they name code) and a directive's body is kept as paragraphs.
But: this is not a reST parser (no docutils): tables, lists and emphasis pass through as text, and a `:doc:` role
without a title shows its target, not the linked page's title.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

from ..data.corpus import Document
from ..retrieval.headings import rst_headings
from .nq_bench import ROLE_OF

FORMATS = ("md", "rst", "txt", "html")  # a file suffix each: load_folder reads them as markdown, rst, text, html
CODE_DIRECTIVES = ("code-block", "sourcecode", "code", "console")
PROSE_ROLES = ("doc", "ref", "term", "abbr", "pep", "rfc", "ticket", "commit", "download", "menuselection", "guilabel")
# an admonition's argument is shown after the word Sphinx prints for it ("New in version 5.0")
LABELS = {"note": "Note", "warning": "Warning", "seealso": "See also", "admonition": "", "versionadded":
          "New in version", "versionchanged": "Changed in version", "deprecated": "Deprecated since version"}

_DIRECTIVE = re.compile(r"([ \t]*)\.\. ([\w:-]+)::[ \t]*(.*)")
_OPTION = re.compile(r"[ \t]*:[\w-]+:")
_ADORNMENT_ONLY = re.compile(r"[ \t]*([=\-~^*+#`'\"_.:]{3,}[ \t]*)+")  # table borders, transitions
_INLINE = re.compile(r"``(?P<lit>.+?)``|:(?P<role>[a-z:+-]+):`(?P<body>[^`]+)`"
                     r"|`(?P<link>[^`]+)`__?|`(?P<default>[^`]+)`")
_TARGET = re.compile(r"^(.*?)\s*<[^<>]*>$", re.S)

Block = tuple  # ("heading", level, title) | ("para", lines) | ("code", language, lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _block_end(lines: Sequence[str], start: int, indent: int) -> int:
    """The index after the lines from `start` that are blank or indented deeper than `indent`."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > indent):
        end += 1
    return end


def _dedent(lines: Sequence[str]) -> list[str]:
    """Lines without their common indent, and without the blank lines around them."""
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    cut = min((_indent(s) for s in lines if s.strip()), default=0)
    return [s[cut:] for s in lines]


def role_text(role: str, body: str) -> tuple[str, bool]:
    """(visible text, names code) of a role: `title <target>` -> title, `~a.B` -> B, `!x` -> x.

    >>> role_text("class", "~django.db.models.FileField"), role_text("doc", "the cache </topics/cache>")
    (('FileField', True), ('the cache', False))
    """
    m = _TARGET.match(body)
    text = m.group(1) if m and m.group(1) else (m.group(0)[1:-1].strip() if m else body)
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return text, role.split(":")[-1] not in PROSE_ROLES


def inline(text: str, code: Callable[[str], str], plain: Callable[[str], str] = str) -> str:
    """reST inline markup rendered: code (literals, code roles, `default`) through `code`, the rest through `plain`.

    >>> inline("Use :setting:`DEBUG` and ``x`` (see :doc:`/topics/cache`).", lambda s: f"`{s}`")
    'Use `DEBUG` and `x` (see /topics/cache).'
    """
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(plain(text[pos:m.start()]))
        pos = m.end()
        if m.group("role"):
            shown, is_code = role_text(m.group("role"), m.group("body"))
            out.append(code(shown) if is_code else plain(shown))
        elif m.group("link"):
            out.append(plain(role_text("ref", m.group("link"))[0]))
        else:
            out.append(code(m.group("lit") or m.group("default")))
    return "".join(out) + plain(text[pos:])


def parse(text: str, headings: bool = True) -> list[Block]:
    """A page's blocks: headings (with their level), paragraphs (stripped lines) and code blocks (language, lines).

    >>> parse("Title\\n=====\\n\\nRun this::\\n\\n    pip install x\\n")
    [('heading', 1, 'Title'), ('para', ['Run this:']), ('code', '', ['pip install x'])]
    """
    text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    starts = [0]
    for s in lines:
        starts.append(starts[-1] + len(s) + 1)
    line_of = {at: i for i, at in enumerate(starts)}
    heads = {}
    for at, level, title in rst_headings(text) if headings else ():
        i = line_of[at]
        heads[i] = (level, title, 3 if lines[i].strip() != title else 2)
    out: list[Block] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            out.append(("para", para.copy()))
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if i in heads:
            flush()
            level, title, span = heads[i]
            out.append(("heading", level, title))
            i += span
            continue
        if not line.strip() or _ADORNMENT_ONLY.fullmatch(line):
            flush()
            i += 1
            continue
        d = _DIRECTIVE.fullmatch(line)
        if d or line.lstrip().startswith(".. "):  # a directive; or a comment, label or link target: dropped
            flush()
            end = _block_end(lines, i + 1, _indent(line))
            if d:
                out += _directive(d.group(2), d.group(3).strip(), lines[i + 1:end])
            i = end
            continue
        if line.rstrip().endswith("::"):
            kept = line.rstrip()[:-2]  # "photo::" -> "photo:"; "photo ::" and a lone "::" show no colon
            if kept.strip():
                para.append(kept.strip() + ("" if kept[-1].isspace() else ":"))
            flush()
            end = _block_end(lines, i + 1, _indent(line))
            if end > i + 1:
                out.append(("code", "", _dedent(lines[i + 1:end])))
            i = max(end, i + 1)
            continue
        para.append(line.strip())
        i += 1
    flush()
    return out


def _directive(name: str, arg: str, body: Sequence[str]) -> list[Block]:
    """A directive's blocks: code for code directives; else its argument (labelled or as code) and its body's blocks."""
    body = list(body)
    while body and _OPTION.match(body[0]):  # `:caption: x` options under the directive line
        body.pop(0)
    if name in CODE_DIRECTIVES:
        return [("code", arg, _dedent(body))]
    out: list[Block] = []
    if name in LABELS:
        out.append(("para", [f"{LABELS[name]} {arg}".strip() + ":"]))
    elif name in ROLE_OF and arg:
        out.append(("para", [f"``{arg}``"]))
    return out + parse("\n".join(_dedent(body)), headings=False)


def to_markdown(text: str) -> str:
    """A reST page as Markdown.

    >>> print(to_markdown("Files\\n=====\\n\\nUse :class:`~a.File`.\\n\\n.. code-block:: python\\n\\n    f = File()\\n"), end="")
    # Files
    <BLANKLINE>
    Use `File`.
    <BLANKLINE>
    ```python
    f = File()
    ```
    """
    def marked(s: str) -> str:
        return inline(s, lambda c: f"`{c}`")

    parts = []
    for b in parse(text):
        if b[0] == "heading":
            parts.append(f"{'#' * min(b[1], 6)} {marked(b[2])}")
        elif b[0] == "para":
            parts.append("\n".join(marked(s) for s in b[1]))
        else:
            parts.append("\n".join([f"```{b[1]}", *b[2], "```"]))
    return "\n\n".join(parts) + "\n"


def to_html(text: str, title: str = "") -> str:
    """A reST page as HTML: <title> (the first heading unless given), <hN>, <p>, <pre><code>, all text escaped.

    >>> print(to_html("A & B\\n=====\\n\\nSee ``x<y``.\\n"), end="")
    <!DOCTYPE html>
    <html><head><meta charset="utf-8"><title>A &amp; B</title></head><body>
    <h1>A &amp; B</h1>
    <p>See <code>x&lt;y</code>.</p>
    </body></html>
    """
    def marked(s: str) -> str:
        return inline(s, lambda c: f"<code>{html.escape(c)}</code>", html.escape)

    blocks = parse(text)
    title = title or next((inline(b[2], str) for b in blocks if b[0] == "heading"), "")
    body = []
    for b in blocks:
        if b[0] == "heading":
            body.append(f"<h{min(b[1], 6)}>{marked(b[2])}</h{min(b[1], 6)}>")
        elif b[0] == "para":
            body.append("<p>" + "\n".join(marked(s) for s in b[1]) + "</p>")
        else:
            lang = f' class="language-{html.escape(b[1])}"' if b[1] else ""
            body.append(f"<pre><code{lang}>" + html.escape("\n".join(b[2])) + "</code></pre>")
    head = f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>'
    return "\n".join([head, *body, "</body></html>"]) + "\n"


def renamed(doc_id: str, fmt: str) -> str:
    """The doc_id of a page written in another format: same folder and stem. `"topics/files.txt", "md" -> "topics/files.md"`."""
    return str(PurePosixPath(doc_id).with_suffix(f".{fmt}"))


def render(text: str, fmt: str) -> str:
    """A reST page's text in `fmt` ("md", "html"; "rst" and "txt" keep the text as it is)."""
    return {"md": to_markdown, "html": to_html}.get(fmt, lambda t: t)(text)


def write_formats(docs: Sequence[Document], root: str | Path, formats: Sequence[str] = FORMATS) -> dict[str, Path]:
    """Write every reST document in each format under `root/<fmt>/`, keeping its folder and stem; {fmt: folder}."""
    out = {}
    for fmt in formats:
        folder = Path(root) / fmt
        for d in docs:
            path = folder / renamed(d.doc_id, fmt)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(d.text, fmt), encoding="utf-8")
        out[fmt] = folder
    return out
