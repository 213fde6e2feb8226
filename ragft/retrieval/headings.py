"""The heading chunker for users' files in a markup format (Markdown, reST, HTML as Markdown, plain text): find the
headings, cut the text into sections by its heading hierarchy, and head each chunk with its heading path
("title > section > subsection").

It reads no numpydoc structure (see `docstrings.py`) and knows no other strategy (see `chunking.py`).
"""

from __future__ import annotations

import re

from ..data.corpus import Document
from .spans import (
    Chunk,
    ChunkConfig,
    Tokenizer,
    Tokens,
    chunk_budget,
    line_blocks,
    make_chunks,
    pack_spans,
    paragraph_spans,
    sentence_spans,
    split_units,
    strip_span,
)

HEADING_FORMATS = ("markdown", "rst", "html", "text")  # html arrives as Markdown-style text (see corpus.html_to_markdown)
HEADER_SEPARATOR = " > "
_LINE = re.compile(r"[^\n]*\n?")
_ATX = re.compile(r"(#{1,6})(?:[ \t]+(.*?))?[ \t#]*")
_FENCE = re.compile(r"[ ]{0,3}(```|~~~)")
_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1{2,}[ \t]*")


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, line without its newline) for every line of text."""
    return [(m.start(), m.group().rstrip("\r\n")) for m in _LINE.finditer(text) if m.group()]


def markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of ATX (`## Title`) and setext (Title / ===, ---) headings outside fenced code blocks.

    >>> markdown_headings("# A\\n\\ntext\\n\\nB\\n---\\n```\\n# not a heading\\n```\\n")
    [(0, 1, 'A'), (11, 2, 'B')]
    """
    out, fence, prev = [], None, None  # prev: (offset, line) of the previous non-heading text line
    for at, line in _lines(text):
        f = _FENCE.match(line)
        if f:
            fence = None if fence == f.group(1) else (fence or f.group(1))
            prev = None
            continue
        if fence:
            continue
        m = _ATX.fullmatch(line)
        if m:
            if (m.group(2) or "").strip():  # a heading with no text ("##") is left in the text, not a boundary
                out.append((at, len(m.group(1)), m.group(2).strip()))
            prev = None
        elif prev and re.fullmatch(r"[ ]{0,3}(=+|-+)[ \t]*", line) and not prev[1].startswith((" ", "\t")):
            out.append((prev[0], 1 if line.strip()[0] == "=" else 2, prev[1].strip()))
            prev = None
        else:
            prev = (at, line) if line.strip() else None
    return out


def rst_headings(text: str) -> list[tuple[int, int, str]]:
    """(offset, level, title) of reST section titles: an unindented line underlined (optionally also overlined) by a
    repeated punctuation character; levels follow the order in which adornment styles first appear, as in docutils.

    >>> rst_headings("Title\\n=====\\n\\nPart\\n----\\n\\ntext\\n\\n=====\\nOther\\n=====\\n")
    [(0, 1, 'Title'), (13, 2, 'Part'), (30, 3, 'Other')]
    """
    lines = _lines(text)
    styles: dict[tuple[str, bool], int] = {}
    out, i = [], 1
    while i < len(lines):
        at, line = lines[i]
        title_at, title = lines[i - 1]
        m = _ADORNMENT.fullmatch(line)
        if m and title.strip() and not title[0].isspace() and not _ADORNMENT.fullmatch(title):
            over = i >= 2 and lines[i - 2][1].strip() == line.strip()
            style = (m.group(1), over)
            level = styles.setdefault(style, len(styles) + 1)
            out.append((lines[i - 2][0] if over else title_at, level, title.strip()))
            i += 2
            continue
        i += 1
    return out


def heading_sections(text: str, fmt: str = "markdown") -> list[tuple[tuple[str, ...], int, int]]:
    """(heading path, start, end) covering the text: each heading opens a section that runs to the next heading; the
    path holds the titles of its enclosing headings, outermost first. Text before the first heading has the path ().

    >>> heading_sections("# Guide\\n\\nIntro.\\n\\n## Install\\n\\nRun pip.\\n")
    [(('Guide',), 0, 15), (('Guide', 'Install'), 17, 37)]
    """
    heads = rst_headings(text) if fmt in ("rst", "text") else markdown_headings(text)
    out, stack, pos, path = [], [], 0, ()
    for at, level, title in heads:
        if at > pos:
            out.append((path, pos, at))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        pos, path = at, tuple(t for _, t in stack)
    out.append((path, pos, len(text)))
    stripped = [(p, *strip_span(text, a, b)) for p, a, b in out]
    return [(p, a, b) for p, a, b in stripped if b > a]


def _title_path(doc: Document, secs: list[tuple[tuple[str, ...], int, int]]) -> tuple[str, bool]:
    """The document's title, and whether the headings already start with it (one outermost heading, first of all)."""
    paths = [p for p, _, _ in secs if p]
    if paths and all(p[0] == paths[0][0] for p in paths) and sum(len(p) == 1 for p in paths) == 1 and len(paths[0]) == 1:
        return paths[0][0], True
    return doc.title or doc.doc_id, False


def _fit_header(header: str, tok: Tokenizer, limit: int) -> str:
    """Cut a header to at most `limit` tokens (a very deep or long heading path must still leave room for the text)."""
    offs = tok.offsets(header)
    return header if len(offs) <= limit else header[:offs[limit - 1][1]] + " …"


def chunk_headings(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """Markdown, reST and HTML (as Markdown) cut by their heading hierarchy: one section at a time, split at paragraphs,
    then unindented line blocks, then sentences, packed up to chunk_size tokens including the header.

    Each chunk's header is its heading path, "<document title> > <section> > <subsection>", so a chunk of a
    subsection still says which document and section it belongs to.
    """
    tokens = Tokens(tok.offsets(doc.text))
    secs = heading_sections(doc.text, doc.metadata.get("format", "markdown"))
    title, titled = _title_path(doc, secs)
    out = []
    for path, a, b in secs:
        parts = list(path) if titled and path else [title, *path]
        header = _fit_header(HEADER_SEPARATOR.join(parts), tok, cfg.chunk_size // 2)
        budget = chunk_budget(cfg, tok, header)
        units = split_units(doc.text, tokens, a, b, budget, [
            paragraph_spans, line_blocks, sentence_spans])
        out += [(x, y, parts[-1], header) for x, y in pack_spans(units, tokens, budget, cfg.chunk_overlap)]
    return make_chunks(doc, out)
