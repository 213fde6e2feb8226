"""Own documents: bad input is indexed or reported by name (never a traceback), the question derivation of the
own-documents benchmark, and fusion whose calibrated weight never loses to its better part on the dev questions."""

import json
import os

import numpy as np
import pytest

from ragft.builders.docs_bench import (
    build_questions,
    char_chunks,
    clean_inline,
    description_questions,
    docstring_sentences,
    file_ranking,
    split_of,
)
from ragft.data.corpus import Document, decode_text, file_format, html_to_markdown, load_folder
from ragft.evaluation.calibration import calibrate_fusion
from ragft.retrieval.chunking import chunk_documents, token_lengths
from ragft.retrieval.headings import markdown_headings
from ragft.retrieval.retrievers import BM25Retriever, HybridRetriever, build_retriever, minmax
from ragft.ui.cli import main

GIANT_CODE = "```python\n" + "\n".join(f"value_{i} = transform(value_{i - 1}) * {i}" for i in range(1, 3000)) + "\n```\n"


@pytest.fixture
def messy(tmp_path):
    """A folder with every kind of bad input the issue lists, next to two good files."""
    d = tmp_path / "messy"
    (d / "sub").mkdir(parents=True)
    (d / "good.md").write_text("# Guide\n\n## Install\n\nRun pip install ragft.\n")
    (d / "page.html").write_text("<html><head><title>Page</title><style>p {}</style></head><body><h1>Birds</h1>"
                                 "<h2>Song</h2><p>Birds sing &amp; fly.</p></body></html>")
    (d / "blob.txt").write_bytes(b"PK\x03\x04\x00\x00binary\x00data")
    with open(d / "huge.txt", "wb") as f:  # 50 MB of text
        f.write(b"a line of a huge log file\n" * (50_000_000 // 26 + 1))
    os.symlink("..", d / "sub" / "loop")  # a folder link back up: a loop if followed
    os.symlink("self.md", d / "self.md")  # a file link to itself: ELOOP on open
    (d / "latin1.rst").write_bytes("Caf\xe9\n====\n\nna\xefve text\n".encode("latin-1"))
    (d / "mixed.md").write_bytes("# Mixed\n\nutf-8 caf\u00e9 then ".encode() + "latin-1 caf\xe9".encode("latin-1"))
    (d / "utf16.md").write_bytes("# Wide\n\nSaved as UTF-16 with a byte-order mark.".encode("utf-16"))
    (d / "empty_headings.md").write_text("#\n\n##   \n\nText under headings with no words.\n\n###\n")
    (d / "code.md").write_text(GIANT_CODE)
    (d / "nothing.rst").write_text("   \n\n")
    return d


def test_load_folder_reports_every_bad_file_by_name_with_its_reason(messy):
    docs, report = load_folder(messy)
    why = dict(report.problems)
    assert why["blob.txt"] == "skipped: binary (holds NUL bytes)"
    assert why["huge.txt"].startswith("skipped: 50.0 MB is over the 10 MB limit")
    assert why["sub/loop"].startswith("skipped: link to a folder (not followed")
    assert why["self.md"].startswith("skipped: unreadable (") and "symbolic links" in why["self.md"]
    assert why["latin1.rst"] == "skipped: not UTF-8 (invalid continuation byte at byte 3)"
    bad_byte = len("# Mixed\n\nutf-8 caf\u00e9 then latin-1 caf".encode())
    assert why["mixed.md"].startswith("skipped: not UTF-8 (") and f"at byte {bad_byte})" in why["mixed.md"]
    assert why["nothing.rst"] == "skipped: empty"
    by_id = {d.doc_id: d for d in docs}
    assert sorted(by_id) == ["code.md", "empty_headings.md", "good.md", "page.html", "utf16.md"]
    assert by_id["utf16.md"].metadata["encoding"] == "utf-16" and "byte-order mark" in by_id["utf16.md"].text
    assert by_id["page.html"].title == "Page" and by_id["page.html"].text == "# Birds\n\n## Song\n\nBirds sing & fly."
    assert [by_id[i].metadata["format"] for i in ("code.md", "page.html")] == ["markdown", "html"]


def test_fallback_encoding_indexes_the_latin1_file(messy):
    docs, report = load_folder(messy, fallback_encoding="cp1252")
    latin = next(d for d in docs if d.doc_id == "latin1.rst")
    assert latin.text == "Café\n====\n\nnaïve text" and latin.metadata["encoding"] == "cp1252"
    assert "latin1.rst" not in dict(report.problems)
    assert decode_text(b"\xff\xfe\x00") == (None, "starts with a utf-16 byte-order mark but is not utf-16 "
                                                  "(truncated data at byte 2)")


def test_bad_documents_chunk_within_size_with_their_headings(messy):
    docs, _ = load_folder(messy)
    chunks = chunk_documents(docs, "structure", chunk_size=128, chunk_overlap=16)
    code = [c for c in chunks if c.doc_id == "code.md"]
    assert len(code) > 30 and token_lengths(code).max() <= 128 + 2
    assert {c.header for c in chunks if c.doc_id == "page.html"} == {"Birds", "Birds > Song"}
    assert [c.header for c in chunks if c.doc_id == "empty_headings.md"] == ["empty_headings"]


def test_cli_index_reports_file_types_and_skips_without_a_traceback(messy, tmp_path, capsys):
    code = main(["index", str(messy), "--out", str(tmp_path / "idx"), "--embedder", "hashing", "--quiet"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "Traceback" not in err
    assert "ragft: blob.txt: skipped: binary" in err and "ragft: sub/loop: skipped: link to a folder" in err
    table = {line.split()[0]: line.split()[1:] for line in err.splitlines()[-5:]}
    assert table["html"][:2] == ["1", "2"]  # 1 file, 2 chunks (Birds, Birds > Song)
    assert table["markdown"][0] == "4" and int(table["markdown"][3]) <= 200  # files; max tokens within chunk_size
    assert table["rst"][-1] == "2" and table["text"][-1] == "2"  # latin1.rst + nothing.rst; blob.txt + huge.txt
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == ["chunks.jsonl", "hnsw.bin", "meta.json"]
    assert json.loads((tmp_path / "idx" / "meta.json").read_text())["files"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".lock") == ["idx", "messy"]  # no half-written index (the writer lock file stays)
    for fusion in ("convex", "rrf"):
        code = main(["search", str(tmp_path / "idx"), "--query", "birds song", "--mode", "hybrid", "--fusion", fusion,
                     "-k", "2", "--json"])
        hits = json.loads(capsys.readouterr().out)["results"]
        assert code == 0 and hits[0]["doc_id"] == "page.html", fusion
        assert hits[0]["score"] <= (1.0 if fusion == "convex" else 2 / 61) + 1e-6  # JSON rounds to 6 digits
    assert main(["search", str(tmp_path / "idx"), "--query", "x", "--mode", "hybrid", "--fusion-weight", "2"]) == 2
    assert "--fusion-weight must be in [0, 1]" in capsys.readouterr().err


def test_html_to_markdown_and_file_formats():
    assert html_to_markdown("<h2>Use <code>x</code></h2><p>a&amp;b</p><script>var x;</script>") == "## Use x\n\na&b"
    page = html_to_markdown("<h1>T</h1><pre># set up\n    x = a &lt; b</pre><p>after</p>")
    assert page == "# T\n\n```\n# set up\n    x = a < b\n```\n\nafter"  # a code comment is no heading
    assert [t for _, _, t in markdown_headings(page)] == ["T"]
    assert [file_format(p) for p in ("a.md", "b.rst.txt", "c.HTML", "d.txt", "e.rst")] == [
        "markdown", "rst", "html", "text", "rst"]


# ------------------------------------------------------------------------------------------------ question derivation
RST = """\
.. module:: json

.. function:: dumps(obj, *, skipkeys=False, \\
                    indent=None)

   Serialize *obj* to a JSON formatted :class:`str` using this :ref:`conversion
   table <py-to-json-table>`.  The arguments have the same meaning as in :func:`dump`.

.. class:: JSONEncoder(*, skipkeys=False)

   Extensible JSON encoder for Python data structures.

   .. method:: encode(o)

      Return a JSON string representation of a Python data structure, *o*.  For example::

.. function:: short()

   Too short.

.. function:: nodesc()
.. method:: Thing.close()
   :noindex:

   Close the thing and release every resource it holds, as :meth:`~io.IOBase.close` does.
"""


def test_description_questions_from_an_inline_rest_snippet():
    qs = description_questions(RST, "json.rst.txt")
    assert [(q.qid, q.question, q.target) for q in qs] == [
        ("json.rst.txt::dumps", "Serialize obj to a JSON formatted str using this conversion table.", "json:dumps"),
        ("json.rst.txt::JSONEncoder", "Extensible JSON encoder for Python data structures.", "json:JSONEncoder"),
        ("json.rst.txt::JSONEncoder.encode", "Return a JSON string representation of a Python data structure, o.",
         "json:JSONEncoder.encode"),
        ("json.rst.txt::Thing.close", "Close the thing and release every resource it holds, as close does.",
         "json:Thing.close"),
    ]
    assert all(q.doc_id == "json.rst.txt" and q.split == split_of(q.qid) for q in qs)


def test_ambiguous_questions_are_dropped_and_splits_are_stable():
    twice = ".. function:: f()\n\n   Return the number of items in the container object.\n"
    docs = [Document("a.rst.txt", twice), Document("b.rst.txt", twice), Document("json.rst.txt", RST)]
    assert {q.doc_id for q in build_questions(docs)} == {"json.rst.txt"}
    splits = [split_of(f"q{i}") for i in range(2000)]
    assert 0.25 < splits.count("dev") / len(splits) < 0.35
    assert splits == [split_of(f"q{i}") for i in range(2000)]
    assert clean_inline(":func:`~json.dump` writes **obj** to ``fp``, see `docs <https://x>`_") == \
        "dump writes obj to fp, see docs"


def test_docstring_sentences_resolve_objects_in_a_child_python():
    found = docstring_sentences(["json:dumps", "json:JSONEncoder.encode", "json:no_such_name", "antigravity:x"])
    assert found == {"json:dumps": "Serialize obj to a JSON formatted str.",
                     "json:JSONEncoder.encode": "Return a JSON string representation of a Python data structure."}


def test_char_chunks_and_file_ranking():
    doc = Document("d", "x" * 2500)
    chunks = char_chunks([doc], 1000, 200)
    assert [(c.start, c.end) for c in chunks] == [(0, 1000), (800, 1800), (1600, 2500)]
    assert file_ranking(["a", "b", "a", "c"], np.array([0.1, 0.5, 0.9, 0.2]), depth=2) == ["a", "b"]


# ------------------------------------------------------------------------------------------------------------ fusion
@pytest.fixture(scope="module")
def hybrid():
    docs = [Document(f"d{i}", f"{topic} notes number {i}: {topic} {detail}.")
            for i, (topic, detail) in enumerate([
                ("sorting", "orders the items of an array"), ("searching", "finds an item in a sorted array"),
                ("hashing", "maps keys to buckets"), ("parsing", "reads tokens into a tree"),
                ("caching", "keeps results for reuse"), ("logging", "writes events to a file"),
                ("sorting", "stable merge of two runs"), ("retrying", "tries again after a failure")])]
    dense = build_retriever(docs, "dense", "fixed", chunk_size=64, chunk_overlap=0, embedder="hashing",
                            show_progress=False)
    return HybridRetriever(dense, BM25Retriever(dense.chunks), fusion="convex", candidates=8)


def test_convex_fusion_by_hand(hybrid):
    q = "stable merge of sorted runs"
    cands = hybrid.candidate_scores([q], top_k=5)[0]
    ids = list(cands)
    cos = minmax(np.array([cands[c]["cosine"] for c in ids]))
    bm = minmax(np.array([cands[c]["bm25"] for c in ids]))
    want = dict(zip(ids, 0.3 * cos + 0.7 * bm, strict=True))
    hybrid.weight = 0.3
    hits = hybrid.search(q, top_k=5)
    assert [h.score for h in hits] == pytest.approx(sorted(want.values(), reverse=True)[:5])
    assert all(h.score == pytest.approx(want[h.chunk_id]) for h in hits)
    assert hits[0].doc_id == "d6"
    assert minmax(np.array([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]


def test_calibrated_fusion_is_never_worse_than_its_parts_on_dev(hybrid):
    questions = ["orders items of an array", "find an item", "keys into buckets", "tokens into a tree",
                 "reuse results", "events to a file", "merge two runs", "again after failure"]
    golds = ["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"]
    cal = calibrate_fusion(hybrid, questions, golds)
    rows = {r["weight"]: r for r in cal.rows}
    assert set(rows) == {round(w, 2) for w in np.linspace(0, 1, 11)}
    best = rows[cal.weight]
    for part in (0.0, 1.0):  # BM25 alone, dense alone
        assert best["recall@5"] + best["mrr@10"] >= rows[part]["recall@5"] + rows[part]["mrr@10"]
    assert hybrid.weight == cal.weight and hybrid.fusion == "convex"
    dense_only = hybrid.dense.search_batch(questions, top_k=10)
    mrr_dense = np.mean([next((1 / (i + 1) for i, d in enumerate(dict.fromkeys(h.doc_id for h in hits)) if d == g), 0)
                         for hits, g in zip(dense_only, golds, strict=True)])
    assert rows[1.0]["mrr@10"] == pytest.approx(mrr_dense)  # weight 1 is dense alone
    with pytest.raises(ValueError, match="fusion"):
        HybridRetriever(hybrid.dense, hybrid.bm25, fusion="max")


def test_cli_index_with_an_unknown_or_unavailable_backend_is_a_one_line_error(messy, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    code = main(["index", str(messy), "--out", str(tmp_path / "idx"), "--embedding-backend", "onnx-int8", "--quiet"])
    err = capsys.readouterr().err
    # without the extra, onnx is missing too ("needs onnxruntime and onnx"); the message names what to install
    assert code == 2 and "backend 'onnx-int8' needs onnxruntime" in err and "pip install 'ragft[onnx]'" in err
    assert "Traceback" not in err and not (tmp_path / "idx").exists()
