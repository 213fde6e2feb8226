"""What every chunker is made of: the chunk config and the chunk, token counts over character spans (the embedding
model's tokenizer), splitting a span into paragraphs, line blocks, sentences or numpydoc sections, and packing units
into chunks of at most so many tokens with an overlap.

It decides no chunking strategy (see `chunking.py`, `docstrings.py`, `headings.py`) and embeds nothing.
Introduced in notebooks/01_chunking.ipynb.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from ..core.registry import is_available
from ..data.corpus import Document

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

            from .embeddings import embedder_path

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
        if not is_available("minilm"):
            return Tokenizer("regex")
    return Tokenizer(name)


class Tokens:
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


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink [start, end) so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_spans(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    """Non-empty, whitespace-stripped pieces of text[start:end] between matches of `pattern`."""
    spans, pos = [], start
    for m in pattern.finditer(text, start, end):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, end))
    return [s for s in (strip_span(text, a, b) for a, b in spans) if s[1] > s[0]]


def paragraph_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return split_spans(text, start, end, _BLANK)


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence-like spans: paragraphs split after . ! ? : before a capital/code start, and before each `>>>` line.

    >>> sentence_spans("Sort it. Then stop.\\n\\n>>> a")
    [(0, 8), (9, 19), (21, 26)]
    """
    end = len(text) if end is None else end
    return [s for para in split_spans(text, start, end, _BLANK) for s in split_spans(text, *para, _SENT_END)]


def line_blocks(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """An unindented line plus the indented lines under it: one numpydoc parameter entry, one `>>>` example line."""
    cuts = [m.start() for m in re.finditer(r"\n(?=\S)", text[start:end])]
    bounds = [start] + [start + c for c in cuts] + [end]
    return [s for s in (strip_span(text, a, b) for a, b in zip(bounds, bounds[1:], strict=False)) if s[1] > s[0]]


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
    stripped = [(t, *strip_span(text, a, b)) for t, a, b in out]
    return [(t, a, b) for t, a, b in stripped if b > a]


# ---------------------------------------------------------------------------------------------------- packing
def token_windows(tokens: Tokens, start: int, end: int, size: int, overlap: int) -> list[tuple[int, int]]:
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


def split_units(text: str, tokens: Tokens, start: int, end: int, budget: int, splitters) -> list[tuple[int, int]]:
    """Split [start, end) with the first splitter; pieces still over `budget` go down to the next one, then to windows."""
    if tokens.count(start, end) <= budget:
        return [(start, end)]
    if not splitters:
        return token_windows(tokens, start, end, budget, 0)
    pieces = splitters[0](text, start, end)
    if len(pieces) <= 1:
        return split_units(text, tokens, start, end, budget, splitters[1:])
    return [u for a, b in pieces for u in split_units(text, tokens, a, b, budget, splitters[1:])]


def pack_spans(units: list[tuple[int, int]], tokens: Tokens, budget: int, overlap: int) -> list[tuple[int, int]]:
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


# ---------------------------------------------------------------------------------------------- making chunks
def chunk_budget(cfg: ChunkConfig, tok: Tokenizer, header: str) -> int:
    """Tokens left for a chunk's text under `header` (the header is embedded with it), never under half a chunk."""
    return max(cfg.chunk_size - tok.count(header), cfg.chunk_size // 2)


def make_chunks(doc: Document, spans: list[tuple[int, int, str, str]]) -> list[Chunk]:
    return [Chunk(doc_id=doc.doc_id, chunk_id=f"{doc.doc_id}#{i}", text=doc.text[a:b], start=a, end=b, section=sec,
                  header=head, metadata=dict(doc.metadata, title=doc.title))
            for i, (a, b, sec, head) in enumerate(spans)]


def section_of(secs: list[tuple[str, int, int]], pos: int) -> str:
    for title, a, b in secs:
        if a <= pos < b:
            return title
