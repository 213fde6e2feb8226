"""Cut documents into chunks: fixed token windows, sentences, document structure, or semantic breakpoints; the one
place to call (`chunk_documents`) and to look at the result (`chunk_table`, `token_lengths`, `file_type_summary`).

"structure" means numpydoc sections for the NumPy corpora (`docstrings.py`) and, for documents whose metadata names a
markup format (Markdown, reST, HTML, plain text: see `corpus.load_folder`), their heading hierarchy (`headings.py`),
each chunk headed by its heading path ("title > section > subsection"). The parts all chunkers share are in `spans.py`.

Every chunk keeps its doc_id, a chunk_id, the character offsets of its span in the document (`doc.text[start:end] ==
chunk.text`) and the section it came from. Sizes are counted in the embedding model's tokens (MiniLM's WordPiece).
This module does not embed or index chunks (see `embeddings.py`, `hnsw.py`); the semantic chunker borrows an encoder.
Introduced in notebooks/01_chunking.ipynb.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath

import numpy as np

from ..data.corpus import USER_SUFFIXES, Document, file_format
from .docstrings import ENTRY_SECTIONS, chunk_structure, noted_parameter, version_note
from .spans import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    STRATEGIES,
    Chunk,
    ChunkConfig,
    Tokenizer,
    Tokens,
    get_tokenizer,
    make_chunks,
    pack_spans,
    section_of,
    sections,
    sentence_spans,
    split_units,
    token_windows,
)

# the names people import from here, defined in the modules this one composes
__all__ = ["DEFAULT_CHUNK_OVERLAP", "DEFAULT_CHUNK_SIZE", "ENTRY_SECTIONS", "STRATEGIES", "Chunk", "ChunkConfig",
           "Tokenizer", "chunk_documents", "chunk_fixed", "chunk_semantic", "chunk_sentences", "chunk_structure",
           "chunk_table", "file_type_summary", "get_tokenizer", "noted_parameter", "token_lengths", "version_note"]


def chunk_fixed(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """Windows of chunk_size tokens, each sharing exactly chunk_overlap tokens with the previous one."""
    tokens = Tokens(tok.offsets(doc.text))
    secs = sections(doc.text)
    spans = token_windows(tokens, 0, len(doc.text), cfg.chunk_size, cfg.chunk_overlap)
    return make_chunks(doc, [(a, b, section_of(secs, a), "") for a, b in spans])


def chunk_sentences(doc: Document, cfg: ChunkConfig, tok: Tokenizer) -> list[Chunk]:
    """Whole sentences packed up to chunk_size tokens; overlap = trailing sentences within chunk_overlap tokens."""
    tokens = Tokens(tok.offsets(doc.text))
    secs = sections(doc.text)
    units = [u for s in sentence_spans(doc.text) for u in split_units(doc.text, tokens, *s, cfg.chunk_size, [])]
    spans = pack_spans(units, tokens, cfg.chunk_size, cfg.chunk_overlap)
    return make_chunks(doc, [(a, b, section_of(secs, a), "") for a, b in spans])



SEMANTIC_MIN_TOKENS = 24  # sentences shorter than this (a `>>>` line, "Examples") join their neighbour before embedding


def _merge_short(units: list[tuple[int, int]], tokens: Tokens, min_tokens: int, budget: int) -> list[tuple[int, int]]:
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
        tokens = Tokens(tok.offsets(doc.text))
        units = [u for s in sentence_spans(doc.text) for u in split_units(doc.text, tokens, *s, cfg.chunk_size, [])]
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
        spans = [s for g in groups for s in pack_spans(g, tokens, cfg.chunk_size, cfg.chunk_overlap)]
        chunks += make_chunks(doc, [(a, b, section_of(secs, a), "") for a, b in spans])
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
