"""The structure chunker for NumPy's docstrings: one numpydoc section at a time, each chunk headed "<API name> |
<section>", and in parameter sections one unit per entry, a version-noted entry ("added in NumPy 2.0") a chunk of its own.

Documents in a markup format (Markdown, reST, HTML, text) go to the heading chunker (`headings.py`); no other strategy
lives here (see `chunking.py`).
"""

from __future__ import annotations

import re

from ..data.corpus import Document
from .headings import HEADING_FORMATS, chunk_headings
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
    sections,
    sentence_spans,
    split_units,
)

# numpydoc sections made of "name : type" entries. Each entry is a unit of its own (never cut between a parameter
# and the `.. versionadded::` note at its end), and an entry carrying a version note is a chunk of its own whose header
# says so, the way the rendered docs do ("Added in version 2.0.0"): a question about what a release added or changed
# then finds that entry, and the model reads its name next to its release.
ENTRY_SECTIONS = ("Parameters", "Other Parameters")
_VERSION_NOTE = re.compile(r"^[ \t]*\.\. (versionadded|versionchanged|deprecated)::[ \t]*(\S+)", re.M)
_ENTRY_NAME = re.compile(r"\**([A-Za-z_]\w*)\s*(?::|,|$)")
_NOTE_WORDS = {"versionadded": "added in NumPy", "versionchanged": "changed in NumPy", "deprecated": "deprecated in NumPy"}


def version_note(entry: str) -> str:
    """'<name>: added in NumPy <version>' for a numpydoc entry carrying a version directive, else ''.

    >>> version_note("device : str, optional\\n    The device.\\n\\n    .. versionadded:: 2.0.0")
    'device: added in NumPy 2.0.0'
    """
    notes = _VERSION_NOTE.findall(entry)
    name = _ENTRY_NAME.match(entry)
    if not notes or not name:
        return ""
    said = dict.fromkeys(f"{_NOTE_WORDS[kind]} {version}" for kind, version in notes)  # once each, in order
    return f"{name.group(1)}: " + ", ".join(said)


def noted_parameter(chunk: Chunk) -> str | None:
    """The parameter of a version-noted entry chunk (header "<api> | <section> | <name>: added in NumPy ..."), else
    None."""
    parts = chunk.header.split(" | ")
    if len(parts) == 3 and chunk.section in ENTRY_SECTIONS and ": " in parts[2]:
        return parts[2].split(": ", 1)[0]
    return None


def _entry_chunks(text: str, tokens: Tokens, tok: Tokenizer, cfg: ChunkConfig, a: int, b: int, title: str,
                  header: str) -> list[tuple[int, int, str, str]]:
    """A parameter section's chunks: plain entries packed together, each version-noted entry alone under its note."""
    out, plain = [], []
    budget = chunk_budget(cfg, tok, header)

    def flush():
        out.extend((x, y, title, header) for x, y in pack_spans(plain, tokens, budget, cfg.chunk_overlap))
        plain.clear()

    for x, y in line_blocks(text, a, b):
        note = version_note(text[x:y])
        if not note:
            plain.extend(split_units(text, tokens, x, y, budget, [paragraph_spans, sentence_spans]))
            continue
        flush()
        noted = f"{header} | {note}"
        own = chunk_budget(cfg, tok, noted)
        pieces = split_units(text, tokens, x, y, own, [paragraph_spans, sentence_spans])
        out.extend((p, q, title, noted) for p, q in pack_spans(pieces, tokens, own, 0))
    flush()
    return out


def chunk_structure(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """One numpydoc section at a time, split at paragraphs, then parameter entries / example lines, then sentences.

    Each chunk carries a header "<API name> | <section>" so a chunk of "Parameters" still says whose parameters they are.
    A document whose metadata names a markup format (`load_folder` sets "format") is cut by its headings instead.
    """
    if doc.metadata.get("format") in HEADING_FORMATS:
        return chunk_headings(doc, cfg, tok)
    tokens = Tokens(tok.offsets(doc.text))
    name = doc.title or doc.doc_id
    out = []
    for title, a, b in sections(doc.text):
        header = f"{name} | {title}"
        if cfg.entry_notes and title in ENTRY_SECTIONS:
            out += _entry_chunks(doc.text, tokens, tok, cfg, a, b, title, header)
            continue
        budget = chunk_budget(cfg, tok, header)
        units = split_units(doc.text, tokens, a, b, budget, [
            paragraph_spans, line_blocks, sentence_spans])
        out += [(x, y, title, header) for x, y in pack_spans(units, tokens, budget, cfg.chunk_overlap)]
    return make_chunks(doc, out)
