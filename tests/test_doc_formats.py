"""One reST page rendered as Markdown and HTML: headings, code blocks and roles survive as each format writes them, the
folders load through load_folder with their format, the heading chunker cuts them at the same sections, and the results
page shows the per-format figures."""

import re

from ragft.builders import doc_formats
from ragft.data.corpus import Document, load_folder
from ragft.report import results
from ragft.retrieval.chunking import chunk_documents

PAGE = """\
==============
Managing files
==============

Use :class:`~django.db.models.FileField` and read :doc:`the storage API </ref/files/storage>`, or see
`the website <https://example.org>`_ and :ref:`file-upload-settings`.

.. _files-in-models:

Using files in models
=====================

Consider the following model::

    class Car(models.Model):
        photo = models.ImageField(upload_to="cars")

.. code-block:: pycon

    >>> car.photo.url
    'https://media.example.com/cars/chevy.jpg'

.. note::
    The file is saved as part of saving the model, so ``car.photo.path`` <is> & stays.

Storage objects
---------------

.. class:: FileSystemStorage(location=None)

    Implements basic file storage on a local filesystem.

The ``File`` object
===================

A wrapper around a Python file object.
"""

TITLES = ["Managing files", "Using files in models", "Storage objects", "The File object"]


def test_markdown_keeps_headings_code_and_the_visible_text_of_roles():
    md = doc_formats.to_markdown(PAGE)
    heads = re.findall(r"^(#+) (.*)$", md, re.M)
    assert [(len(h), t) for h, t in heads] == [(1, "Managing files"), (2, "Using files in models"),
                                               (3, "Storage objects"), (2, "The `File` object")]
    assert "Use `FileField` and read the storage API, or see\nthe website and file-upload-settings." in md
    assert ":class:" not in md and ":doc:" not in md and ".. " not in md and "====" not in md
    assert "Consider the following model:\n\n```\nclass Car(models.Model):\n    photo = " in md
    assert "```pycon\n>>> car.photo.url\n'https://media.example.com/cars/chevy.jpg'\n```" in md
    assert "Note:\n\nThe file is saved" in md and "`car.photo.path` <is> & stays." in md
    assert "`FileSystemStorage(location=None)`\n\nImplements basic file storage" in md  # a directive's body: a paragraph


def test_html_keeps_the_same_structure_escaped():
    page = doc_formats.to_html(PAGE)
    assert "<title>Managing files</title>" in page
    assert re.findall(r"<h(\d)>(.*?)</h\1>", page) == [("1", "Managing files"), ("2", "Using files in models"),
                                                        ("3", "Storage objects"), ("2", "The <code>File</code> object")]
    assert "<pre><code>class Car(models.Model):\n    photo = models.ImageField(upload_to=&quot;cars&quot;)</code></pre>" in page
    assert '<pre><code class="language-pycon">&gt;&gt;&gt; car.photo.url' in page
    assert "<code>car.photo.path</code> &lt;is&gt; &amp; stays." in page
    assert "<p>Use <code>FileField</code> and read the storage API, or see" in page


def test_rst_and_txt_are_the_page_as_it_is_and_ids_keep_their_stem():
    assert doc_formats.render(PAGE, "rst") == doc_formats.render(PAGE, "txt") == PAGE
    assert doc_formats.renamed("topics/files.txt", "html") == "topics/files.html"
    assert doc_formats.role_text("meth", "Model.save() <django.db.models.Model.save>") == ("Model.save()", True)
    assert doc_formats.role_text("ref", "file-upload-settings") == ("file-upload-settings", False)


def test_the_folders_load_with_their_format_and_are_cut_at_their_headings(tmp_path):
    docs = [Document("topics/files.txt", PAGE, "files"), Document("ref/other.txt", "Other\n=====\n\nText.\n", "other")]
    folders = doc_formats.write_formats(docs, tmp_path)
    assert sorted(folders) == sorted(doc_formats.FORMATS)
    want = {"md": "markdown", "rst": "rst", "txt": "text", "html": "html"}
    for fmt, folder in folders.items():
        loaded, report = load_folder(folder)
        assert not report.problems
        assert [d.doc_id for d in loaded] == [f"ref/other.{fmt}", f"topics/files.{fmt}"]
        assert {d.metadata["format"] for d in loaded} == {want[fmt]}
        page = next(d for d in loaded if d.doc_id.startswith("topics/"))
        chunks = chunk_documents([page], "structure", chunk_size=64, chunk_overlap=0)
        sections = [re.sub(r"`|<code>|</code>", "", c.section) for c in chunks]
        assert list(dict.fromkeys(sections)) == TITLES, fmt
        assert any(c.header == "Managing files > Using files in models > Storage objects" for c in chunks), fmt


FIGURES = {"commit": "0123456789abcdef", "date": "2099-01-02 03:04 UTC", "pages": 263,
           "command": "python benchmarks/natural_questions.py --formats --out docs/benchmarks/natural_questions.json",
           "formats": {fmt: {"format": name, "splits": {"test": {"questions": 13, "results": {
               results.FORMAT_ARMS["default"]: {"recall@5": 0.449 - i / 100, "mrr@10": 0.338},
               results.FORMAT_ARMS["baseline"]: {"recall@5": 0.372, "mrr@10": 0.336 + i / 100}}}}}
               for i, (fmt, name) in enumerate([("md", "markdown"), ("rst", "rst"), ("txt", "text"), ("html", "html")])}}


def test_the_results_page_and_readme_show_the_per_format_table():
    lines = results.formats_markdown(FIGURES)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| ") and "---" not in line]
    assert rows[0] == ["Format (read as)", "Recall@5 default", "Recall@5 baseline", "MRR@10 default", "MRR@10 baseline",
                       "Questions"]
    assert rows[1] == [".md (markdown)", "0.449", "0.372", "0.338", "0.336", "13"]
    assert rows[4] == [".html (html)", "0.419", "0.372", "0.338", "0.366", "13"]
    assert "commit `0123456789ab`, 2099-01-02 03:04 UTC" in lines[-1] and "--formats" in lines[-1]
    page = results.render_results({results.FORMATS_KEY: FIGURES}, {})
    assert "## Retrieval per document format" in page and "| .txt (text) | 0.429 |" in page
    assert f"[{results.FORMATS_FILE}](benchmarks/{results.FORMATS_FILE})" in page
    assert "| .rst (rst) | 0.439 |" in results.readme_block({results.FORMATS_KEY: FIGURES}, {})
    assert "commit `0123456789ab` (uncommitted changes), 2099" in results.formats_markdown({**FIGURES, "dirty": True})[-1]
    assert "per document format" not in results.render_results({}, {}) and "(read as)" not in results.readme_block({}, {})
    partial = {"formats": {"md": {"format": "markdown", "splits": {}}}}
    assert results.formats_markdown(partial)[2] == "| .md (markdown) | not recorded | not recorded | not recorded | " \
                                                    "not recorded | not recorded |"


def test_read_published_reads_the_per_format_figures_beside_the_figures(tmp_path):
    (tmp_path / "figures").mkdir()
    assert results.read_published(tmp_path / "figures") == ({}, {})
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / results.FORMATS_FILE).write_text('{"formats": {}}')
    assert results.read_published(tmp_path / "figures")[0] == {results.FORMATS_KEY: {"formats": {}}}
