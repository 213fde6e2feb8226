"""Chunkers: offsets reconstruct the text, nothing is lost, no empty chunks, sizes and overlaps are what was asked."""

import bisect
import functools
import hashlib
import json

import numpy as np
import pytest

from ragft.data.corpus import Document, load_corpus
from ragft.retrieval.chunking import STRATEGIES, Chunk, ChunkConfig, chunk_documents, file_type_summary, token_lengths
from ragft.retrieval.docstrings import version_note
from ragft.retrieval.embeddings import HashingEncoder
from ragft.retrieval.headings import heading_sections, markdown_headings, rst_headings
from ragft.retrieval.spans import Tokenizer, get_tokenizer, sections, sentence_spans

MARKDOWN = Document("guide/intro.md", title="intro", text=(
    "# Installing\n\nRun pip install ragft. It takes two minutes.\n\n"
    "## Updating\n\nRun ragft update PATH SOURCE. Only changed documents are embedded again.\n\n"
    "Nothing else changes.\n"))


@pytest.fixture(scope="module")
def docs():
    corpus = {d.doc_id: d for d in load_corpus("2.4.6")}
    picked = ["numpy.argsort", "numpy.linalg.norm", "numpy.float64", "removed:numpy.float_", "numpy.False_", "numpy.einsum"]
    extra = sorted(corpus)[::60]  # a spread of the rest, deterministic
    return [corpus[i] for i in dict.fromkeys(picked + extra)] + [MARKDOWN]


@pytest.fixture(scope="module")
def tok():
    return get_tokenizer()


def _chunks(docs, strategy, **kw):
    encoder = HashingEncoder() if strategy == "semantic" else None
    return chunk_documents(docs, strategy, encoder=encoder, **kw)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_offsets_reconstruct_the_text_and_cover_it(docs, strategy):
    chunks = _chunks(docs, strategy, chunk_size=64, chunk_overlap=8)
    by_doc = {}
    for c in chunks:
        by_doc.setdefault(c.doc_id, []).append(c)
    for doc in docs:
        mine = by_doc[doc.doc_id]
        covered = np.zeros(len(doc.text), dtype=bool)
        for c in mine:
            assert doc.text[c.start:c.end] == c.text
            assert c.text.strip(), f"empty chunk {c.chunk_id}"
            covered[c.start:c.end] = True
        lost = [i for i, ch in enumerate(doc.text) if not covered[i] and not ch.isspace()]
        assert not lost, f"{strategy}: {doc.doc_id} loses text at {lost[:5]}: {doc.text[lost[0]:lost[0] + 30]!r}"
        assert [c.chunk_id for c in mine] == [f"{doc.doc_id}#{i}" for i in range(len(mine))]
        assert [c.start for c in mine] == sorted(c.start for c in mine)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_chunks_stay_within_chunk_size(docs, tok, strategy):
    chunks = _chunks(docs, strategy, chunk_size=64, chunk_overlap=8)
    by_id = {d.doc_id: d for d in docs}
    assert max(len(_token_ids(tok, by_id[c.doc_id], c)) for c in chunks) <= 64  # counted in the document's tokens
    # a span cut inside a word (fixed windows do that) can re-tokenize one or two pieces longer on its own
    assert np.array(tok.count_batch([c.text for c in chunks])).max() <= 64 + 2
    if strategy == "structure":  # the header comes out of the budget, so what the encoder reads fits too
        assert token_lengths(chunks, tok).max() <= 64 + 2


@functools.lru_cache(maxsize=64)
def _starts(tok, text):
    return [s for s, _ in tok.offsets(text)]


def _token_ids(tok, doc, chunk):
    """Indices of the document's tokens that start inside the chunk's span."""
    starts = _starts(tok, doc.text)
    return set(range(bisect.bisect_left(starts, chunk.start), bisect.bisect_left(starts, chunk.end)))


def test_fixed_overlap_is_exactly_what_was_asked(docs, tok):
    doc = next(d for d in docs if d.doc_id == "numpy.einsum")
    chunks = chunk_documents([doc], "fixed", chunk_size=50, chunk_overlap=12)
    assert len(chunks) > 5
    ids = [_token_ids(tok, doc, c) for c in chunks]
    assert all(len(x) == 50 for x in ids[:-1])
    assert all(len(a & b) == 12 for a, b in zip(ids, ids[1:], strict=False))
    no_overlap = chunk_documents([doc], "fixed", chunk_size=50, chunk_overlap=0)
    assert all(a.end <= b.start for a, b in zip(no_overlap, no_overlap[1:], strict=False))


def test_sentence_chunks_end_on_sentences_and_overlap_at_most_what_was_asked(docs, tok):
    doc = next(d for d in docs if d.doc_id == "numpy.argsort")
    chunks = chunk_documents([doc], "sentence", chunk_size=60, chunk_overlap=20)
    ends = {b for _, b in sentence_spans(doc.text)}
    assert sum(c.end in ends for c in chunks) >= len(chunks) - 1  # an oversized sentence may be cut mid-way
    ids = [_token_ids(tok, doc, c) for c in chunks]
    overlaps = [len(a & b) for a, b in zip(ids, ids[1:], strict=False)]
    assert max(overlaps) <= 20 and max(overlaps) > 0


def test_structure_chunks_keep_api_name_and_section(docs):
    doc = next(d for d in docs if d.doc_id == "numpy.argsort")
    chunks = chunk_documents([doc], "structure", chunk_size=120, chunk_overlap=0)
    secs = sections(doc.text)
    assert [s for s, _, _ in secs][:3] == ["Summary", "Parameters", "Returns"]
    for c in chunks:
        noted = c.section == "Parameters" and version_note(c.text)  # a version-noted entry: its note ends the header
        assert c.header == (f"numpy.argsort | Parameters | {noted}" if noted else f"numpy.argsort | {c.section}")
        assert c.embed_text.startswith("numpy.argsort | ")
        (a, b), = [(a, b) for s, a, b in secs if s == c.section and a <= c.start < b]
        assert c.end <= b, "a structure chunk must not cross a section boundary"
    assert {c.section for c in chunks} >= {"Summary", "Parameters", "Returns", "Examples"}


def test_markdown_headers_are_sections():
    chunks = chunk_documents([MARKDOWN], "structure", chunk_size=200, chunk_overlap=0)
    assert [c.section for c in chunks] == ["Installing", "Updating"]
    assert chunks[1].header == "intro | Updating"


def test_semantic_cuts_where_the_topic_changes():
    cats = " ".join(f"Cats purr {w} when the cats sit in the sun on a warm day and the cats feel safe and calm and fed."
                    for w in ("softly", "loudly", "often"))
    rockets = " ".join(f"Rockets launch {w} into orbit from the pad when the rockets fire their engines at full thrust."
                       for w in ("satellites", "probes", "crews"))
    doc = Document("t", f"{cats} {rockets}")
    chunks = chunk_documents([doc], "semantic", encoder=HashingEncoder(), chunk_size=256, chunk_overlap=0,
                             breakpoint_percentile=75)
    assert [c.text for c in chunks] == [cats, rockets]


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="chunk_overlap"):
        ChunkConfig("fixed", chunk_size=32, chunk_overlap=32)
    with pytest.raises(ValueError, match="unknown chunking strategy"):
        ChunkConfig("paragraphs")
    with pytest.raises(ValueError, match="chunk_size"):
        ChunkConfig("fixed", chunk_size=0, chunk_overlap=0)


def test_empty_documents_give_no_chunks():
    assert chunk_documents([Document("e", "   \n ")], "fixed") == []


def test_regex_tokenizer_fallback_and_round_trip():
    assert Tokenizer("regex").count("np.sort(a)") == 6
    c = Chunk("d", "d#0", "abc", 0, 3, "Summary", "d | Summary", {"k": 1})
    assert Chunk.from_json(c.to_json()) == c


def test_chunk_browser_callbacks(docs):
    from ragft.ui.widgets import chunk_browser

    ui = chunk_browser(docs[:3], strategies=("fixed", "structure"))
    doc, strategy, row, result = ui.children
    size, overlap = row.children
    assert "numpy.argsort | Summary" in result.value
    strategy.value = "fixed"
    size.value = 48
    assert "numpy.argsort#0" in result.value and "numpy.argsort | Summary" not in result.value
    overlap.value = 64
    assert "must be below chunk_size" in result.value


# sha256 of the structure chunker's chunks (JSON, sorted keys) on every 5th document of each committed NumPy corpus,
# recorded from the numpydoc chunker before format-aware chunking was added: NumPy chunks must stay byte-identical
# (with entry_notes off, the cut indexes saved before it keep). If a corpus file is rebuilt, re-record these from the
# commit that introduced them.
NUMPY_STRUCTURE_FINGERPRINTS = {
    ("1.26.4", 200): (1121, "1c412175177f31bed347d7962289e3b55f26902014e65b616095c83049de3c3b"),
    ("1.26.4", 64): (2676, "1e3e0d72bf7f6044f332fec41b28082f019730b68d9bae9c07fd02ee7d08b88b"),
    ("2.0.2", 200): (1299, "7ac799999be198ec894aa035eee7785457aa4fbd8a677c5c11707660e30b54f4"),
    ("2.0.2", 64): (3143, "25856120076547c2284d73318176775427c6da6ac946ed4f22be37990f0bb5c8"),
    ("2.4.6", 200): (1292, "0219a935d9a1fd07132bf5eb719a0180a611c710c0ccc46312b076e66ba2cf33"),
    ("2.4.6", 64): (3135, "34bcae4bf7255fd4879f161d79e1a3f5617fd168e303a0cdf645597a8c8b25aa"),
}


@pytest.mark.parametrize("version,chunk_size", sorted(NUMPY_STRUCTURE_FINGERPRINTS))
def test_numpy_structure_chunks_are_byte_identical_to_the_numpydoc_chunker(tok, version, chunk_size):
    if tok.name != "minilm":
        pytest.skip("the fingerprints were recorded with MiniLM's tokenizer")
    docs = load_corpus(version)[::5]
    chunks = chunk_documents(docs, "structure", chunk_size=chunk_size, chunk_overlap=32 if chunk_size == 200 else 8,
                             entry_notes=False)
    digest = hashlib.sha256(json.dumps([c.to_json() for c in chunks], sort_keys=True).encode()).hexdigest()
    assert (len(chunks), digest) == NUMPY_STRUCTURE_FINGERPRINTS[(version, chunk_size)]


NOTED = Document("numpy.fft.ihfft", title="numpy.fft.ihfft", text=(
    "numpy.fft.ihfft(a, n=None, axis=-1, norm=None, out=None)\n\nCompute the inverse FFT of a signal.\n\n"
    "Parameters\n----------\na : array_like\n    Input array.\nn : int, optional\n    Length of the inverse FFT.\n"
    "norm : {\"backward\", \"ortho\", \"forward\"}, optional\n    Normalization mode.\n\n"
    "    .. versionadded:: 1.20.0\n\n        The \"backward\", \"forward\" values were added.\n\n"
    "out : complex ndarray, optional\n    If provided, the result will be placed in this array.\n\n"
    "    .. versionadded:: 2.0.0\n\nReturns\n-------\nout : complex ndarray\n    The result.\n"))


def test_a_version_noted_parameter_is_a_chunk_of_its_own_under_its_note():
    chunks = chunk_documents([NOTED], "structure", chunk_size=200, chunk_overlap=0)
    by_header = {c.header: c.text for c in chunks}
    out = by_header["numpy.fft.ihfft | Parameters | out: added in NumPy 2.0.0"]
    assert out.startswith("out : complex ndarray") and out.endswith(".. versionadded:: 2.0.0")
    norm = by_header["numpy.fft.ihfft | Parameters | norm: added in NumPy 1.20.0"]
    assert norm.startswith("norm :") and "values were added." in norm  # the note's own text stays with its entry
    plain = by_header["numpy.fft.ihfft | Parameters"]
    assert "a : array_like" in plain and "n : int" in plain and "versionadded" not in plain
    for c in chunks:
        assert NOTED.text[c.start:c.end] == c.text
    # off: the entries are packed by size alone, and the 2.0.0 note can land with the next entry or section
    old = chunk_documents([NOTED], "structure", chunk_size=200, chunk_overlap=0, entry_notes=False)
    assert {c.header for c in old} == {"numpy.fft.ihfft | Summary", "numpy.fft.ihfft | Parameters",
                                       "numpy.fft.ihfft | Returns"}


def test_version_note_reads_the_directives_of_one_entry():
    assert version_note("copy : bool, optional\n    Copy it.\n\n    .. versionadded:: 2.1") == "copy: added in NumPy 2.1"
    assert (version_note("interpolation : str\n    Old name.\n\n    .. deprecated:: 1.22.0")
            == "interpolation: deprecated in NumPy 1.22.0")
    two = "axis : int\n    .. versionadded:: 1.7.0\n    .. versionchanged:: 2.0\n       Tuples."
    assert version_note(two) == "axis: added in NumPy 1.7.0, changed in NumPy 2.0"
    assert version_note("axis : int\n    The axis.") == ""


def test_an_index_saved_before_entry_notes_loads_with_them_off(tmp_path):
    from ragft.retrieval.hnsw import DenseIndex

    index = DenseIndex(HashingEncoder(), chunk_config=ChunkConfig(entry_notes=False))
    index.add([NOTED])
    index.save(tmp_path / "ix")
    meta_path = tmp_path / "ix" / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["chunking"]["entry_notes"]  # what an index written before the setting existed holds
    meta_path.write_text(json.dumps(meta))
    loaded = DenseIndex.load(tmp_path / "ix", encoder=HashingEncoder())
    assert loaded.chunk_config.entry_notes is False


# ------------------------------------------------------------------------------------------ format-aware chunking
GUIDE_MD = Document("guide.md", title="guide", metadata={"format": "markdown"}, text=(
    "# User guide\n\nWelcome.\n\n## Install\n\nRun pip install ragft.\n\n### On Linux\n\nUse a venv first.\n\n"
    "```\n# not a heading, a shell comment\npip install ragft\n```\n\n## Search\n\nType a query.\n\nUpdating\n--------\n\n"
    "Run ragft update.\n\n##\n\nAn empty heading is text, not a section.\n"))
GUIDE_RST = Document("guide.rst", title="guide", metadata={"format": "rst"}, text=(
    ".. _top:\n\n=========\nUser guide\n=========\n\nWelcome.\n\nInstall\n=======\n\nRun pip install ragft.\n\n"
    "On Linux\n--------\n\nUse a venv first::\n\n    pip install ragft\n\n--------------\n\nSearch\n======\n\nType a query.\n"))


@pytest.mark.parametrize("doc", [GUIDE_MD, GUIDE_RST], ids=["markdown", "rst"])
def test_heading_chunks_carry_the_heading_path(doc):
    chunks = chunk_documents([doc], "structure", chunk_size=200, chunk_overlap=0)
    by_text = {c.text.split("\n")[-1]: c.header for c in chunks}
    assert by_text["Welcome."] == "User guide"
    assert by_text["Run pip install ragft."] == "User guide > Install"
    assert by_text["Type a query."] == "User guide > Search"
    linux = next(c for c in chunks if "venv" in c.text)
    assert linux.header == "User guide > Install > On Linux" and linux.section == "On Linux"
    assert linux.embed_text.startswith("User guide > Install > On Linux\n")
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
    covered = "".join(doc.text[c.start:c.end] for c in chunks)
    assert "".join(doc.text.split()) == "".join(covered.split())  # nothing lost, nothing repeated (no overlap asked)


def test_markdown_fences_setext_and_empty_headings():
    chunks = chunk_documents([GUIDE_MD], "structure", chunk_size=200, chunk_overlap=0)
    assert not any("shell comment" in c.header for c in chunks)  # a `#` line inside a code fence is not a heading
    updating = next(c for c in chunks if "ragft update" in c.text)
    assert updating.header == "User guide > Updating"  # a setext "---" underline is level 2: a sibling of "Search"
    empty = next(c for c in chunks if "empty heading" in c.text)
    assert empty.header == updating.header  # "##" with no text opens no section


def test_headings_without_a_single_title_are_prefixed_with_the_file_title():
    doc = Document("notes.md", title="notes", metadata={"format": "markdown"},
                   text="Intro line.\n\n## First\n\nOne.\n\n## Second\n\nTwo.\n")
    headers = [c.header for c in chunk_documents([doc], "structure", chunk_size=100, chunk_overlap=0)]
    assert headers == ["notes", "notes > First", "notes > Second"]


def test_one_giant_code_block_and_deep_headings_stay_within_chunk_size(tok):
    code = "```\n" + "\n".join(f"x{i} = compute(x{i - 1}, factor={i}) + offset_{i} * 3" for i in range(1, 2000)) + "\n```\n"
    deep = "".join(f"{'#' * min(i, 6)} Level {i} heading with a long and winding title number {i}\n\n"
                   for i in range(1, 13))
    doc = Document("code.md", title="code", metadata={"format": "markdown"}, text=deep + code)
    chunks = chunk_documents([doc], "structure", chunk_size=64, chunk_overlap=8)
    assert len(chunks) > 20
    assert token_lengths(chunks, tok).max() <= 64 + 2
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)


def test_heading_parsers():
    md = "Title\n=====\n\ntext\n\n    # indented code\n#hashtag\n## Real ##\n"
    assert markdown_headings(md) == [(0, 1, "Title"), (md.index("## Real"), 2, "Real")]
    # a transition (an adornment after a blank line) is not a title; levels follow first appearance
    assert rst_headings("A\n***\n\ntext\n\n----\n\nB\n===\n\nC\n***\n") == [(0, 1, "A"), (19, 2, "B"), (26, 1, "C")]
    assert heading_sections("no headings here\n", "rst") == [((), 0, 16)]


def test_numpy_documents_keep_the_numpydoc_chunker(docs):
    doc = next(d for d in docs if d.doc_id == "numpy.argsort")
    as_markdown = Document(doc.doc_id, doc.text, doc.title, {**doc.metadata, "format": "markdown"})
    plain = chunk_documents([doc], "structure")
    assert all(c.header.startswith("numpy.argsort | ") for c in plain)
    assert [c.header for c in chunk_documents([as_markdown], "structure")] != [c.header for c in plain]


def test_file_type_summary_counts_files_chunks_tokens_and_skips(tok):
    docs = [GUIDE_MD, GUIDE_RST, Document("a.md", "# A\n\nshort", "a", {"format": "markdown"})]
    chunks = chunk_documents(docs, "structure", chunk_size=200, chunk_overlap=0)
    rows = {r["type"]: r for r in file_type_summary(docs, chunks, [("x.png", "skipped: suffix .png"),
                                                                   ("big.md", "skipped: 52.4 MB is over")])}
    assert rows["markdown"]["files"] == 2 and rows["rst"]["files"] == 1 and rows["png"]["skipped"] == 1
    assert rows["markdown"]["skipped"] == 1 and rows["markdown"]["reasons"] == ["big.md: skipped: 52.4 MB is over"]
    md = [c for c in chunks if c.doc_id.endswith(".md")]
    assert rows["markdown"]["chunks"] == len(md)
    assert rows["markdown"]["max_tokens"] == int(token_lengths(md, tok).max())
    assert rows["markdown"]["mean_tokens"] == pytest.approx(float(token_lengths(md, tok).mean()))


def test_file_type_summary_groups_api_objects_by_kind_not_by_the_dotted_name():
    docs = [Document("numpy.zeros", "numpy.zeros(shape)\n\nReturn zeros.", "numpy.zeros", {"kind": "function"}),
            Document("numpy.ones", "numpy.ones(shape)\n\nReturn ones.", "numpy.ones", {"kind": "function"}),
            Document("numpy.ndarray", "numpy.ndarray\n\nAn array.", "numpy.ndarray", {"kind": "class"})]
    rows = {r["type"]: r for r in file_type_summary(docs, chunk_documents(docs, "structure"))}
    assert set(rows) == {"api function", "api class"} and rows["api function"]["files"] == 2
