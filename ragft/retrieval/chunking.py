"""Cut documents into chunks: fixed token windows, sentences, document structure, or semantic breakpoints.

"structure" means numpydoc sections for the NumPy corpora and, for documents whose metadata names a markup format
(Markdown, reST, HTML, plain text: see `corpus.load_folder`), their heading hierarchy, each chunk headed by its heading
path ("title > section > subsection").

Every chunk keeps its doc_id, a chunk_id, the character offsets of its span in the document (`doc.text[start:end] ==
chunk.text`) and the section it came from. Sizes are counted in the embedding model's tokens (MiniLM's WordPiece).
This module does not embed or index chunks (see `embeddings.py`, `index.py`); the semantic chunker borrows an encoder.
Introduced in notebooks/01_chunking.ipynb.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import PurePosixPath

import numpy as np

from ..data.corpus import USER_SUFFIXES, Document, file_format

STRATEGIES = ("fixed", "sentence", "structure", "semantic")
DEFAULT_CHUNK_SIZE = 200  # MiniLM reads at most 256 word pieces; 200 leaves room for the structure chunker's header
DEFAULT_CHUNK_OVERLAP = 32


@dataclass
class ChunkConfig:
    """How to cut documents. chunk_size and chunk_overlap count tokens of the embedding model.

    entry_notes (structure chunker, numpydoc sections): see `ENTRY_SECTIONS`. Indexes saved before it existed load
    with it off (`from_saved`), so a sync cuts their documents as their first build did.

    breakpoint_percentile (semantic only): cut where the distance between neighbouring sentences is above this
    percentile of all such distances in the documents being chunked. breakpoint_distance, once set (an index sets it
    at its first build), is used instead, so documents re-chunked by a later sync are cut exactly as a fresh build would.
    """

    strategy: str = "structure"
    chunk_size: int = DEFAULT_CHUNK_SIZE
    chunk_overlap: int = DEFAULT_CHUNK_OVERLAP
    breakpoint_percentile: float = 90.0
    breakpoint_distance: float | None = None
    entry_notes: bool = True  # structure, numpydoc: one unit per parameter entry, a version-noted entry a chunk of its own

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown chunking strategy {self.strategy!r}; choose one of {', '.join(STRATEGIES)}")
        if self.chunk_size < 8:
            raise ValueError(f"chunk_size must be at least 8 tokens, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError(f"chunk_overlap must be in [0, chunk_size={self.chunk_size}), got {self.chunk_overlap}")
        if not 0 < self.breakpoint_percentile < 100:
            raise ValueError(f"breakpoint_percentile must be in (0, 100), got {self.breakpoint_percentile}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_saved(cls, row: dict) -> ChunkConfig:
        """The config an index saved: one written before entry_notes existed was cut without them."""
        return cls(**{"entry_notes": False, **row})


@dataclass
class Chunk:
    """A span of one document. `header` (API name and section, structure chunker only) is prepended when embedding."""

    doc_id: str
    chunk_id: str  # "<doc_id>#<n>", n counting from 0 within the document
    text: str  # exactly doc.text[start:end]
    start: int
    end: int
    section: str = ""
    header: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def embed_text(self) -> str:
        """What the encoder and BM25 see: the header line (if any) followed by the span."""
        return f"{self.header}\n{self.text}" if self.header else self.text

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict) -> Chunk:
        return cls(**{k: row[k] for k in ("doc_id", "chunk_id", "text", "start", "end", "section", "header", "metadata")})


# ------------------------------------------------------------------------------------------------------ tokenizer
class Tokenizer:
    """Token offsets in a text, from the embedding model's tokenizer (so sizes match what MiniLM truncates at 256).

    Falls back to a word/punctuation regex (`name="regex"`) when the model is not installed.
    >>> Tokenizer("regex").count("np.sort(a)")
    6
    """

    _REGEX = re.compile(r"\w+|[^\w\s]")

    def __init__(self, name: str = "minilm"):
        self.name = name
        self._hf = None
        if name != "regex":
            from transformers import AutoTokenizer

            from ..generation.models import embedder_path

            self._hf = AutoTokenizer.from_pretrained(str(embedder_path(name)))

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """(start, end) character offsets of each token of `text`, without special tokens."""
        if self._hf is None:
            return [m.span() for m in self._REGEX.finditer(text)]
        enc = self._hf(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [tuple(o) for o in enc["offset_mapping"] if o[1] > o[0]]

    def count(self, text: str) -> int:
        return len(self.offsets(text))

    def count_batch(self, texts: Sequence[str]) -> list[int]:
        if self._hf is None:
            return [self.count(t) for t in texts]
        enc = self._hf(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]


@functools.lru_cache(maxsize=4)
def get_tokenizer(name: str = "minilm") -> Tokenizer:
    """The shared tokenizer: MiniLM's if installed, else the regex fallback."""
    if name == "minilm":
        from ..generation.models import is_available

        if not is_available("minilm"):
            return Tokenizer("regex")
    return Tokenizer(name)


class _Tokens:
    """A document's token offsets with O(log n) counting over any character span."""

    def __init__(self, offsets: list[tuple[int, int]]):
        self.offsets = offsets
        self.starts = [s for s, _ in offsets]

    def first_at(self, pos: int) -> int:
        return bisect.bisect_left(self.starts, pos)

    def count(self, start: int, end: int) -> int:
        return self.first_at(end) - self.first_at(start)


# ------------------------------------------------------------------------------------------------- span helpers
_BLANK = re.compile(r"\n[ \t]*\n")
_SENT_END = re.compile(r"(?<=[.!?:])\s+(?=[A-Z0-9`'\"(>\[*-])|\n(?=>>> )")
_UNDERLINE_HEADER = re.compile(r"^(\S[^\n]*)\n([-=~^*#])\2{2,}[ \t]*$", re.M)
_MARKDOWN_HEADER = re.compile(r"^#{1,6}[ \t]+(\S[^\n]*)$", re.M)


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _split(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    """Non-empty, whitespace-stripped pieces of text[start:end] between matches of `pattern`."""
    spans, pos = [], start
    for m in pattern.finditer(text, start, end):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, end))
    return [s for s in (_strip(text, a, b) for a, b in spans) if s[1] > s[0]]


def _paragraphs(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return _split(text, start, end, _BLANK)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence-like spans: paragraphs split after . ! ? : before a capital/code start, and before each `>>>` line.

    >>> sentence_spans("Sort it. Then stop.\\n\\n>>> a")
    [(0, 8), (9, 19), (21, 26)]
    """
    end = len(text) if end is None else end
    return [s for para in _split(text, start, end, _BLANK) for s in _split(text, *para, _SENT_END)]


def _line_blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """An unindented line plus the indented lines under it: one numpydoc parameter entry, one `>>>` example line."""
    cuts = [m.start() for m in re.finditer(r"\n(?=\S)", text[start:end])]
    bounds = [start] + [start + c for c in cuts] + [end]
    return [s for s in (_strip(text, a, b) for a, b in zip(bounds, bounds[1:], strict=False)) if s[1] > s[0]]


def sections(text: str) -> list[tuple[str, int, int]]:
    """(section title, start, end) covering the text; numpydoc/reST underlined headers and markdown `#` headers.

    The part before the first header is the section "Summary" (signature, summary line, extended summary).
    """
    heads = sorted([(m.start(), m.group(1).strip()) for m in _UNDERLINE_HEADER.finditer(text)]
                   + [(m.start(), m.group(1).strip()) for m in _MARKDOWN_HEADER.finditer(text)])
    out, pos, title = [], 0, "Summary"
    for at, name in heads:
        if at > pos:
            out.append((title, pos, at))
        pos, title = at, name
    out.append((title, pos, len(text)))
    stripped = [(t, *_strip(text, a, b)) for t, a, b in out]
    return [(t, a, b) for t, a, b in stripped if b > a]


# ---------------------------------------------------------------------------------------------------- packing
def _windows(tokens: _Tokens, start: int, end: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Fixed windows of `size` tokens moving by size - overlap, over the tokens inside [start, end)."""
    i0, i1 = tokens.first_at(start), tokens.first_at(end)
    offs = tokens.offsets
    if i1 <= i0:
        return [(start, end)] if end > start else []
    out, i = [], i0
    while True:
        j = min(i + size, i1)
        out.append((offs[i][0], min(offs[j - 1][1], end)))
        if j >= i1:
            return out
        i = j - overlap


def _units(text: str, tokens: _Tokens, start: int, end: int, budget: int, splitters) -> list[tuple[int, int]]:
    """Split [start, end) with the first splitter; pieces still over `budget` go down to the next one, then to windows."""
    if tokens.count(start, end) <= budget:
        return [(start, end)]
    if not splitters:
        return _windows(tokens, start, end, budget, 0)
    pieces = splitters[0](text, start, end)
    if len(pieces) <= 1:
        return _units(text, tokens, start, end, budget, splitters[1:])
    return [u for a, b in pieces for u in _units(text, tokens, a, b, budget, splitters[1:])]


def _pack(units: list[tuple[int, int]], tokens: _Tokens, budget: int, overlap: int) -> list[tuple[int, int]]:
    """Greedily join consecutive units up to `budget` tokens; a new chunk repeats the trailing units of the previous
    one that fit in `overlap` tokens (whole units only, so the overlap is at most `overlap` tokens)."""
    chunks, cur = [], []

    def size(us):
        return tokens.count(us[0][0], us[-1][1]) if us else 0

    for u in units:
        if cur and size(cur + [u]) > budget:
            chunks.append((cur[0][0], cur[-1][1]))
            carry = []
            for prev in reversed(cur):
                if size([prev] + carry) > overlap or size([prev] + carry + [u]) > budget:
                    break
                carry.insert(0, prev)
            cur = carry
        cur.append(u)
    if cur:
        chunks.append((cur[0][0], cur[-1][1]))
    return chunks


# ---------------------------------------------------------------------------------------------------- chunkers
def _budget(cfg: ChunkConfig, tok: Tokenizer, header: str) -> int:
    """Tokens left for a chunk's text under `header` (the header is embedded with it), never under half a chunk."""
    return max(cfg.chunk_size - tok.count(header), cfg.chunk_size // 2)


def _make(doc: Document, spans: list[tuple[int, int, str, str]]) -> list[Chunk]:
    return [Chunk(doc_id=doc.doc_id, chunk_id=f"{doc.doc_id}#{i}", text=doc.text[a:b], start=a, end=b, section=sec,
                  header=head, metadata=dict(doc.metadata, title=doc.title))
            for i, (a, b, sec, head) in enumerate(spans)]


def _section_of(secs: list[tuple[str, int, int]], pos: int) -> str:
    for title, a, b in secs:
        if a <= pos < b:
            return title
    return secs[-1][0] if secs else ""


def chunk_fixed(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """Windows of chunk_size tokens, each sharing exactly chunk_overlap tokens with the previous one."""
    tokens = _Tokens(tok.offsets(doc.text))
    secs = sections(doc.text)
    spans = _windows(tokens, 0, len(doc.text), cfg.chunk_size, cfg.chunk_overlap)
    return _make(doc, [(a, b, _section_of(secs, a), "") for a, b in spans])


def chunk_sentences(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """Whole sentences packed up to chunk_size tokens; overlap = trailing sentences within chunk_overlap tokens."""
    tokens = _Tokens(tok.offsets(doc.text))
    secs = sections(doc.text)
    units = [u for s in sentence_spans(doc.text) for u in _units(doc.text, tokens, *s, cfg.chunk_size, [])]
    spans = _pack(units, tokens, cfg.chunk_size, cfg.chunk_overlap)
    return _make(doc, [(a, b, _section_of(secs, a), "") for a, b in spans])


def chunk_structure(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """One numpydoc section at a time, split at paragraphs, then parameter entries / example lines, then sentences.

    Each chunk carries a header "<API name> | <section>" so a chunk of "Parameters" still says whose parameters they are.
    A document whose metadata names a markup format (`load_folder` sets "format") is cut by its headings instead.
    """
    if doc.metadata.get("format") in HEADING_FORMATS:
        return chunk_headings(doc, cfg, tok)
    tokens = _Tokens(tok.offsets(doc.text))
    name = doc.title or doc.doc_id
    out = []
    for title, a, b in sections(doc.text):
        header = f"{name} | {title}"
        if cfg.entry_notes and title in ENTRY_SECTIONS:
            out += _entry_chunks(doc.text, tokens, tok, cfg, a, b, title, header)
            continue
        budget = _budget(cfg, tok, header)
        units = _units(doc.text, tokens, a, b, budget, [
            _paragraphs, _line_blocks, sentence_spans])
        out += [(x, y, title, header) for x, y in _pack(units, tokens, budget, cfg.chunk_overlap)]
    return _make(doc, out)


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


def _entry_chunks(text: str, tokens: _Tokens, tok: Tokenizer, cfg: ChunkConfig, a: int, b: int, title: str,
                  header: str) -> list[tuple[int, int, str, str]]:
    """A parameter section's chunks: plain entries packed together, each version-noted entry alone under its note."""
    out, plain = [], []
    budget = _budget(cfg, tok, header)

    def flush():
        out.extend((x, y, title, header) for x, y in _pack(plain, tokens, budget, cfg.chunk_overlap))
        plain.clear()

    for x, y in _line_blocks(text, a, b):
        note = version_note(text[x:y])
        if not note:
            plain.extend(_units(text, tokens, x, y, budget, [_paragraphs, sentence_spans]))
            continue
        flush()
        noted = f"{header} | {note}"
        own = _budget(cfg, tok, noted)
        pieces = _units(text, tokens, x, y, own, [_paragraphs, sentence_spans])
        out.extend((p, q, title, noted) for p, q in _pack(pieces, tokens, own, 0))
    flush()
    return out


# ------------------------------------------------------------------------------------------- heading hierarchy
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
    stripped = [(p, *_strip(text, a, b)) for p, a, b in out]
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
    tokens = _Tokens(tok.offsets(doc.text))
    secs = heading_sections(doc.text, doc.metadata.get("format", "markdown"))
    title, titled = _title_path(doc, secs)
    out = []
    for path, a, b in secs:
        parts = list(path) if titled and path else [title, *path]
        header = _fit_header(HEADER_SEPARATOR.join(parts), tok, cfg.chunk_size // 2)
        budget = _budget(cfg, tok, header)
        units = _units(doc.text, tokens, a, b, budget, [
            _paragraphs, _line_blocks, sentence_spans])
        out += [(x, y, parts[-1], header) for x, y in _pack(units, tokens, budget, cfg.chunk_overlap)]
    return _make(doc, out)


SEMANTIC_MIN_TOKENS = 24  # sentences shorter than this (a `>>>` line, "Examples") join their neighbour before embedding


def _merge_short(units: list[tuple[int, int]], tokens: _Tokens, min_tokens: int, budget: int) -> list[tuple[int, int]]:
    """Join consecutive units until each holds min_tokens (never more than budget): a one-line code fragment has no topic
    of its own, and embedding half as many units halves the semantic chunker's cost."""
    out: list[tuple[int, int]] = []
    for a, b in units:
        if out and tokens.count(*out[-1]) < min_tokens and tokens.count(out[-1][0], b) <= budget:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def chunk_semantic(docs: Sequence[Document], cfg: ChunkConfig, tok: Tokenizer, encoder, show_progress: bool) -> list[Chunk]:
    """Cut between neighbouring sentences whose embeddings diverge (cosine distance above the breakpoint percentile,
    computed over all documents given); segments longer than chunk_size are packed into windows with chunk_overlap."""
    per_doc = []
    for doc in docs:
        tokens = _Tokens(tok.offsets(doc.text))
        units = [u for s in sentence_spans(doc.text) for u in _units(doc.text, tokens, *s, cfg.chunk_size, [])]
        per_doc.append((doc, tokens, _merge_short(units, tokens, SEMANTIC_MIN_TOKENS, cfg.chunk_size)))
    texts = [doc.text[a:b] for doc, _, units in per_doc for a, b in units]
    vecs = encoder.encode(texts, show_progress=show_progress) if texts else np.zeros((0, 1), np.float32)
    dists, pos = [], 0
    for _, _, units in per_doc:
        v = vecs[pos:pos + len(units)]
        pos += len(units)
        dists.append(1.0 - np.sum(v[1:] * v[:-1], axis=1) if len(units) > 1 else np.zeros(0))
    flat = np.concatenate(dists) if dists else np.zeros(0)
    if cfg.breakpoint_distance is not None:
        cut = cfg.breakpoint_distance
    else:
        cut = float(np.percentile(flat, cfg.breakpoint_percentile)) if len(flat) else 1.0
        cfg.breakpoint_distance = cut  # frozen: the next documents chunked with this config are cut the same way
    chunks = []
    for (doc, tokens, units), d in zip(per_doc, dists, strict=True):
        secs = sections(doc.text)
        groups, cur = [], []
        for i, u in enumerate(units):
            if cur and d[i - 1] > cut:
                groups.append(cur)
                cur = []
            cur.append(u)
        if cur:
            groups.append(cur)
        spans = [s for g in groups for s in _pack(g, tokens, cfg.chunk_size, cfg.chunk_overlap)]
        chunks += _make(doc, [(a, b, _section_of(secs, a), "") for a, b in spans])
    return chunks


_CHUNKERS = {"fixed": chunk_fixed, "sentence": chunk_sentences, "structure": chunk_structure}


def chunk_documents(docs: Iterable[Document], config: ChunkConfig | str | None = None, *, encoder=None,
                    tokenizer: Tokenizer | None = None, show_progress: bool = False, **overrides) -> list[Chunk]:
    """Chunk documents with a config, a strategy name, or keyword overrides of the default config.

    >>> chunks = chunk_documents(docs, "fixed", chunk_size=128, chunk_overlap=16)  # doctest: +SKIP
    >>> chunks[0].chunk_id, chunks[0].section  # doctest: +SKIP
    ('numpy.abs#0', 'Summary')
    """
    if isinstance(config, str):
        config = ChunkConfig(strategy=config, **overrides)
    elif config is None:
        config = ChunkConfig(**overrides)
    elif overrides:
        config = ChunkConfig(**{**config.to_json(), **overrides})
    tok = tokenizer or get_tokenizer()
    docs = [d for d in docs if d.text.strip()]
    if config.strategy == "semantic":
        if encoder is None:
            from .embeddings import get_encoder

            encoder = get_encoder()
        return chunk_semantic(docs, config, tok, encoder, show_progress)
    fn = _CHUNKERS[config.strategy]
    if show_progress:
        from tqdm.auto import tqdm

        docs = tqdm(docs, desc=f"chunking ({config.strategy})", unit="doc")
    return [c for d in docs for c in fn(d, config, tok)]


def token_lengths(chunks: Sequence[Chunk], tokenizer: Tokenizer | None = None) -> np.ndarray:
    """Token count of each chunk's embed_text (what the encoder reads; MiniLM truncates beyond 256)."""
    tok = tokenizer or get_tokenizer()
    return np.array(tok.count_batch([c.embed_text for c in chunks]), dtype=np.int64)


def chunk_table(doc: Document, strategy: str = "structure", chunk_size: int = DEFAULT_CHUNK_SIZE,
                chunk_overlap: int = DEFAULT_CHUNK_OVERLAP, encoder=None, preview: int = 160):
    """How one document is cut: one row per chunk (chunk_id, section, start, end, tokens, text preview). Widget-ready.

    >>> chunk_table(doc, "fixed", 64, 8).columns.tolist()  # doctest: +SKIP
    ['chunk_id', 'section', 'start', 'end', 'tokens', 'text']
    """
    import pandas as pd

    chunks = chunk_documents([doc], strategy, encoder=encoder, chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    lengths = token_lengths(chunks) if chunks else []
    return pd.DataFrame([{"chunk_id": c.chunk_id, "section": c.section, "start": c.start, "end": c.end, "tokens": int(n),
                          "text": " ".join(c.embed_text.split())[:preview]} for c, n in zip(chunks, lengths, strict=True)],
                        columns=["chunk_id", "section", "start", "end", "tokens", "text"])


def file_type_summary(docs: Sequence[Document], chunks: Sequence[Chunk], skipped: Sequence[tuple[str, str]] = (),
                      tokenizer: Tokenizer | None = None) -> list[dict]:
    """What indexing did per file type: files, chunks, mean and max chunk tokens (of what the encoder reads), and the
    files skipped with their reasons. The type is the document's "format" metadata (or the format its suffix implies).

    >>> file_type_summary([], [], [("a.bin", "skipped: suffix .bin ...")])[0]["skipped"]
    1
    """
    def kind(doc_id: str, meta: dict | None = None) -> str:
        if (meta or {}).get("format"):
            return meta["format"]
        suffix = PurePosixPath(doc_id).suffix.lower()
        if suffix in USER_SUFFIXES:
            return file_format(doc_id)
        if (meta or {}).get("kind"):  # a corpus JSONL's API object ("numpy.zeros" has no file suffix): its kind
            return f"api {meta['kind']}"
        return suffix.lstrip(".") or "(none)"

    type_of = {d.doc_id: kind(d.doc_id, d.metadata) for d in docs}
    lengths = token_lengths(chunks, tokenizer) if chunks else np.zeros(0, np.int64)
    rows: dict[str, dict] = {}

    def row(t: str) -> dict:
        return rows.setdefault(t, {"type": t, "files": 0, "chunks": 0, "mean_tokens": 0.0, "max_tokens": 0,
                                   "skipped": 0, "reasons": []})

    for d in docs:
        row(type_of[d.doc_id])["files"] += 1
    per_type: dict[str, list[int]] = {}
    for c, n in zip(chunks, lengths, strict=True):
        per_type.setdefault(type_of.get(c.doc_id, kind(c.doc_id)), []).append(int(n))
    for t, ns in per_type.items():
        r = row(t)
        r["chunks"], r["mean_tokens"], r["max_tokens"] = len(ns), float(np.mean(ns)), int(max(ns))
    for where, why in skipped:
        r = row(kind(where))
        r["skipped"] += 1
        r["reasons"].append(f"{where}: {why}")
    return sorted(rows.values(), key=lambda r: r["type"])
