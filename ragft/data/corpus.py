"""Documents: NumPy's API reference extracted from the real wheels, and users' own folders of documents.

A `Document` is one API object (or one removal notice, or one user file) with a stable `doc_id`. This module reads
corpora and derives documents from them; it does not extract them from the wheels (see `ragft/builders/corpora.py`), chunk
(see `ragft/retrieval/chunking.py`) or embed them. The migration corpus ("numpy-migration") holds two NumPy versions in
one index, each document's id tagged with its version: "numpy.sort@1.26.4" (`split_doc_id`).
Introduced in notebooks/00_overview.ipynb.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.io import DataError, ReadReport, read_jsonl
from ..core.paths import CURRENT_VERSION, NUMPY_VERSIONS, OLD_VERSION, corpus_path

USER_SUFFIXES = (".txt", ".md", ".rst", ".html", ".htm")


@dataclass
class Document:
    """One retrievable document. `doc_id` is stable across versions so an index can be synced by id and content."""

    doc_id: str
    text: str
    title: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"doc_id": self.doc_id, "title": self.title, "text": self.text, **self.metadata}

    @classmethod
    def from_json(cls, row: dict) -> Document:
        meta = {k: v for k, v in row.items() if k not in ("doc_id", "title", "text")}
        return cls(doc_id=row["doc_id"], text=row["text"], title=row.get("title", ""), metadata=meta)


# --------------------------------------------------------------------------------------------------------- loading
def load_corpus(source: str | os.PathLike = NUMPY_VERSIONS[-1], on_error: str = "raise") -> list[Document]:
    """Load a corpus: a NumPy version ("1.26.4"), several in one index ("1.26.4,2.4.6", or MIGRATION_CORPUS for
    1.26.4 and 2.4.6: see `migration_corpus`), a corpus JSONL path, or a folder of your own documents.

    >>> docs = load_corpus("2.4.6"); docs[0].doc_id  # doctest: +SKIP
    'numpy.False_'
    """
    source_str = str(source)
    versions = corpus_versions(source_str)
    if versions is not None and len(versions) > 1:
        return migration_corpus(versions)
    if versions is not None:
        source_str = versions[0]
    if source_str in NUMPY_VERSIONS:
        path = corpus_path(source_str)
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: rebuild it with `python -m ragft.builders corpora`")
        source = path
    path = Path(source)
    if path.is_dir():
        docs, report = load_folder(path)
        if report.problems and on_error == "raise":
            raise DataError(str(report))
        return docs
    if not path.exists():
        raise FileNotFoundError(f"no corpus at {path}: pass a NumPy version {NUMPY_VERSIONS}, a .jsonl file or a folder")
    rows, _ = read_jsonl(path, required=("doc_id", "text"), on_error=on_error)
    docs = [Document.from_json(r) for r in rows]
    dupes = _duplicates(d.doc_id for d in docs)
    if dupes:
        raise DataError(f"{path}: duplicate doc_id(s): {', '.join(dupes[:10])}")
    return docs


# ------------------------------------------------------------------------------------------- two versions, one index
# A migration question ("which keyword did np.fft.ifft gain in 2.x?") needs the API as it was and as it is. The
# migration corpus holds both versions' documents: ids tagged "<doc_id>@<version>" so they stay unique in one index,
# metadata["version"] and ["plain_doc_id"] set, and the title "NumPy <version> · <name>", which the structure chunker
# puts in every chunk's header line, so each passage says which version it documents. The QA set's gold ids stay
# plain: `split_doc_id` maps a tagged id back, and the gold checks of `evaluation.ranking` (`gold_found`) use it.
MIGRATION_CORPUS = "numpy-migration"
MIGRATION_VERSIONS = (OLD_VERSION, CURRENT_VERSION)
VERSION_MARK = "@"
_VERSIONED = re.compile(r"(.+)@(\d+\.\d+(?:\.\d+)*)")


def corpus_versions(source: str) -> tuple[str, ...] | None:
    """The NumPy versions a built-in corpus name stands for, None for anything else (a path, a folder).

    >>> corpus_versions("2.4.6"), corpus_versions("numpy-migration"), corpus_versions("1.26.4, 2.4.6")
    (('2.4.6',), ('1.26.4', '2.4.6'), ('1.26.4', '2.4.6'))
    """
    if source == MIGRATION_CORPUS:
        return MIGRATION_VERSIONS
    parts = tuple(p.strip() for p in source.split(","))
    if all(p in NUMPY_VERSIONS for p in parts):
        if len(set(parts)) != len(parts):
            raise ValueError(f"{source!r} names a version twice")
        return parts
    if len(parts) > 1 and all(re.fullmatch(r"\d+(\.\d+)*", p) for p in parts):
        bad = [p for p in parts if p not in NUMPY_VERSIONS]
        raise ValueError(f"unknown NumPy version(s) {', '.join(map(repr, bad))} in {source!r}: choose from "
                         f"{', '.join(NUMPY_VERSIONS)}")
    return None


def versioned_doc_id(doc_id: str, version: str) -> str:
    """`versioned_doc_id("numpy.sort", "1.26.4") -> "numpy.sort@1.26.4"`, the id of one version's document."""
    return f"{doc_id}{VERSION_MARK}{version}"


def split_doc_id(doc_id: str) -> tuple[str, str | None]:
    """(plain doc_id, version) of a tagged id; (doc_id, None) for an untagged one. Only a version number after the
    last "@" counts, so a file called "notes@home.md" stays itself.

    >>> split_doc_id("removed:numpy.float_@2.4.6"), split_doc_id("numpy.sort"), split_doc_id("notes@home.md")
    (('removed:numpy.float_', '2.4.6'), ('numpy.sort', None), ('notes@home.md', None))
    """
    m = _VERSIONED.fullmatch(doc_id)
    return (m.group(1), m.group(2)) if m else (doc_id, None)


def plain_doc_id(doc_id: str) -> str:
    """The doc_id without its version tag: `plain_doc_id("numpy.sort@1.26.4") -> "numpy.sort"`."""
    return split_doc_id(doc_id)[0]


def version_title(version: str, doc: Document) -> str:
    """The header a migration document carries: "NumPy 1.26.4 · numpy.sort"."""
    return f"NumPy {version} · {doc.title or doc.doc_id}"


def versioned_document(doc: Document, version: str) -> Document:
    """One version's copy of a document for a multi-version index: tagged id, version title and metadata; same text."""
    if split_doc_id(doc.doc_id)[1] is not None:
        raise ValueError(f"{doc.doc_id!r} is already tagged with a version")
    return Document(doc_id=versioned_doc_id(doc.doc_id, version), text=doc.text, title=version_title(version, doc),
                    metadata={**doc.metadata, "version": version, "plain_doc_id": doc.doc_id})


def migration_documents(docs_by_version: dict[str, list[Document]]) -> list[Document]:
    """Several versions' documents in one corpus (in the dict's order): `versioned_document` of each.

    >>> docs = migration_documents({"1.26.4": old_docs, "2.4.6": new_docs})  # doctest: +SKIP
    """
    out = [versioned_document(d, v) for v, docs in docs_by_version.items() for d in docs]
    dupes = _duplicates(d.doc_id for d in out)
    if dupes:
        raise DataError(f"duplicate doc_id(s) within one version: {', '.join(dupes[:10])}")
    return out


def migration_corpus(versions: tuple[str, ...] = MIGRATION_VERSIONS) -> list[Document]:
    """The built-in corpora of `versions` (default 1.26.4 and 2.4.6) in one corpus, ids tagged with their version.

    >>> docs = migration_corpus(); docs[0].doc_id, docs[0].title  # doctest: +SKIP
    ('numpy.False_@1.26.4', 'NumPy 1.26.4 · numpy.False_')
    """
    return migration_documents({v: load_corpus(v) for v in versions})


def _duplicates(ids) -> list[str]:
    seen, dupes = set(), []
    for i in ids:
        if i in seen:
            dupes.append(i)
        seen.add(i)
    return dupes


_TAG = re.compile(r"<[^>]+>")
_SCRIPT = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
_HTML_HEADING = re.compile(r"<h([1-6])\b[^>]*>(.*?)</h\1\s*>", re.S | re.I)
_HTML_BLOCK = re.compile(r"</?(p|div|br|li|ul|ol|pre|table|tr|section|article|blockquote|dt|dd|hr)\b[^>]*>", re.I)
_HTML_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.S | re.I)
_HTML_PRE = re.compile(r"<pre\b[^>]*>(.*?)</pre\s*>", re.S | re.I)


def html_to_text(raw: str) -> str:
    """Strip tags, scripts and styles; keep the visible text. `"<p>a&amp;b</p>" -> "a&b"`."""
    text = _TAG.sub(" ", _SCRIPT.sub(" ", raw))
    return re.sub(r"[ \t]+", " ", html.unescape(text)).strip()


def html_to_markdown(raw: str) -> str:
    """Visible text of an HTML page with its headings kept as Markdown `#` lines and block elements as line breaks,
    so the heading chunker sees the page's outline. `"<h2>Use</h2><p>a&amp;b</p>" -> "## Use\\n\\na&b"`."""
    text = _SCRIPT.sub(" ", _HTML_TITLE.sub(" ", raw))
    # a code block keeps its lines and indentation, fenced: its `# comment` lines are not headings
    blocks = [html.unescape(_TAG.sub("", m.group(1))).strip("\n") for m in _HTML_PRE.finditer(text)]
    n = iter(range(len(blocks)))
    text = _HTML_PRE.sub(lambda m: f"\n\n\x00{next(n)}\x00\n\n", text)
    text = _HTML_HEADING.sub(lambda m: f"\n\n{'#' * int(m.group(1))} {' '.join(_TAG.sub(' ', m.group(2)).split())}\n\n",
                             text)
    text = html.unescape(_TAG.sub(" ", _HTML_BLOCK.sub("\n", text)))
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in text.splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return re.sub(r"\x00(\d+)\x00", lambda m: f"```\n{blocks[int(m.group(1))]}\n```", text)


def html_title(raw: str) -> str:
    """The page's <title>, or "" when it has none."""
    m = _HTML_TITLE.search(raw)
    return " ".join(html.unescape(_TAG.sub(" ", m.group(1))).split()) if m else ""


def file_format(path: str | os.PathLike) -> str:
    """The markup a file is cut by: "markdown", "rst", "html" or "text" (Sphinx's `x.rst.txt` sources are reST)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    last = suffixes[-1] if suffixes else ""
    if last in (".md", ".markdown") or (last == ".txt" and ".md" in suffixes):
        return "markdown"
    if last in (".html", ".htm"):
        return "html"
    if last == ".rst" or (last == ".txt" and ".rst" in suffixes):
        return "rst"
    return "text"


MAX_FILE_BYTES = 10_000_000  # a bigger file is almost never prose someone wrote (logs, dumps); it is reported, not read


def decode_text(raw: bytes, fallback_encoding: str | None = None) -> tuple[str | None, str]:
    """(text, encoding) of a file's bytes, or (None, reason) when it is not text ragft should guess at.

    A byte-order mark decides (UTF-8/16/32); otherwise UTF-8, then `fallback_encoding` if given (e.g. "cp1252" for a
    folder where a few files were saved by old Windows editors). NUL bytes without a UTF-16/32 mark mean binary.
    >>> decode_text("café".encode("latin-1"), "cp1252")
    ('café', 'cp1252')
    """
    for bom, enc in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
                     (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(enc), enc
            except UnicodeDecodeError as e:
                return None, f"starts with a {enc} byte-order mark but is not {enc} ({e.reason} at byte {e.start})"
    if b"\x00" in raw[:1 << 16]:
        return None, "binary (holds NUL bytes)"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as e:
        if fallback_encoding:
            try:
                return raw.decode(fallback_encoding), fallback_encoding
            except UnicodeDecodeError:
                pass
        return None, f"not UTF-8 ({e.reason} at byte {e.start})"


def _walk_files(folder: Path, report: ReadReport):
    """Files below folder, sorted, without following links to folders (a link loop cannot recurse); hidden ones skipped."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        root_path = Path(root)
        for d in sorted(dirs):
            if (root_path / d).is_symlink() and not d.startswith("."):
                report.problems.append(((root_path / d).relative_to(folder).as_posix(),
                                        "skipped: link to a folder (not followed, so a link loop cannot recurse)"))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield root_path / name


def load_folder(folder: str | os.PathLike, max_bytes: int = MAX_FILE_BYTES,
                fallback_encoding: str | None = None) -> tuple[list[Document], ReadReport]:
    """Load every .txt/.md/.rst/.html file below `folder`; doc_id = path relative to it (POSIX slashes).

    Each document's metadata records its "format" (markdown, rst, html, text: the chunker cuts by its headings) and
    "encoding". HTML keeps its headings as Markdown lines. Files that cannot be used (binary, larger than max_bytes,
    not UTF-8 and not `fallback_encoding`, a name that is not UTF-8, empty, unreadable, a broken or looping link,
    another suffix) are listed in the report with the reason, never silently skipped and never raised one by one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    report = ReadReport(str(folder))
    docs = []
    for path in _walk_files(folder, report):
        rel = path.relative_to(folder).as_posix()
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 in the name: a doc_id no index, JSON or terminal can hold
            shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
            report.problems.append((shown, "skipped: the file name is not valid UTF-8 (rename the file)"))
            continue
        if path.suffix.lower() not in USER_SUFFIXES:
            report.problems.append((rel, f"skipped: suffix {path.suffix or '(none)'} is not one of {', '.join(USER_SUFFIXES)}"))
            continue
        try:
            size = path.stat().st_size
            if not path.is_file():
                report.problems.append((rel, "skipped: not a regular file"))
                continue
            if size > max_bytes:
                report.problems.append((rel, f"skipped: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit"))
                continue
            raw = path.read_bytes()
        except OSError as e:
            report.problems.append((rel, f"skipped: unreadable ({e.strerror or e})"))
            continue
        decoded, encoding = decode_text(raw, fallback_encoding)
        if decoded is None:
            report.problems.append((rel, f"skipped: {encoding}"))
            continue
        fmt = file_format(path)
        title = (html_title(decoded) if fmt == "html" else "") or path.name.split(".")[0] or path.stem
        text = html_to_markdown(decoded) if fmt == "html" else decoded.replace("\r\n", "\n").strip()
        if not text.strip():
            report.problems.append((rel, "skipped: empty"))
            continue
        # a folder above whose name is not UTF-8 is shown escaped (b"\xff" -> "\\xff"): JSON and indexes take only UTF-8
        source = os.fsencode(path).decode("utf-8", "backslashreplace")
        docs.append(Document(doc_id=rel, text=text, title=title,
                             metadata={"source": source, "format": fmt, "encoding": encoding}))
    report.loaded = len(docs)
    if not docs:
        raise DataError(f"no usable documents in {folder}" + (f"\n{report}" if report.problems else " (the folder is empty)"))
    return docs, report


# ------------------------------------------------------------------------------------------------ signature changes
# What a 2.4.6 index can tell about a parameter that changed since 1.26: a lost parameter is in no 2.4.6 document at
# all; a gained one is in its entry, with a release note for 44 of the 57 gains (`.. versionadded:: 2.0.0`, which the
# structure chunker puts in the chunk header) and none for 13 (`np.linalg.cholesky`'s `upper`, `np.reshape`'s `copy`);
# and a question about one ("which keyword did `np.fft.ifft2` gain?") retrieves whichever noted entries of the
# document rank first (ifft2's deprecated `axes` and changed `s`, not its new `out`). `with_change_notes` compares the
# two releases' signatures when the knowledge moves from one to the next (notebook 05's sync): each API whose keyword
# arguments changed gets a "Parameter changes" section naming every gained and lost one, which the structure chunker
# makes a chunk of its own ("numpy.fft.ifft2 | Parameter changes").
CHANGE_NOTES_SECTION = "Parameter changes"


def keyword_params(signature: str) -> tuple[list[str], bool] | None:
    """(names a caller can pass by keyword, takes any keyword) of a signature string; None if it cannot be parsed.
    The names leave out positional-only parameters and `*args` / `**kwargs`; "takes any keyword" = it has a
    `**kwargs`, so a keyword missing from its names may still be accepted (NumPy 1.26's `np.ma` wrappers are
    `(a, *args, **params)` and forward every keyword).

    >>> keyword_params("(a, *args, stable=None, **kw)"), keyword_params("(a, /, b)")
    ((['a', 'stable'], True), (['b'], False))
    """
    if not signature.startswith("("):
        return None
    try:
        fn = ast.parse(f"def f{re.sub(r'<[^<>]*>', 'None', signature)}: pass").body[0]
    except SyntaxError:
        return None
    return [x.arg for x in fn.args.args + fn.args.kwonlyargs], fn.args.kwarg is not None


def changed_params(old_signature: str, new_signature: str) -> tuple[list[str], list[str]] | None:
    """(gained, lost) parameters between two signatures, counting only changes a caller can see: a gained name only
    if the old signature had no `**kwargs` that took it already, a lost one only if the new signature has none, and
    never `*args` / `**kwargs` themselves. None if either signature cannot be parsed or has no parameter.

    >>> changed_params("(a, axis=None)", "(a, axis=None, *, stable=None)")
    (['stable'], [])
    >>> changed_params("(a, *args, **params)", "(a, axis=None, keepdims=False)")  # 1.26's np.ma.prod took both already
    ([], [])
    """
    old, new = keyword_params(old_signature), keyword_params(new_signature)
    if not old or not new or not old[0] or not new[0]:
        return None
    gained = [] if old[1] else [p for p in new[0] if p not in old[0]]
    lost = [] if new[1] else [p for p in old[0] if p not in new[0]]
    return gained, lost


def change_note_lines(gained: list[str], lost: list[str], old_version: str, new_version: str) -> list[str]:
    """The lines of a "Parameter changes" section: one for the gained keyword arguments, one for the lost ones, each in
    the words a migration question uses ("gain", "no longer exists"); chosen against one line per parameter on the
    changed-parameter task pairs (docs/decisions.md, change_note_lines).

    >>> change_note_lines(["device", "out"], ["ddof"], "1.26.4", "2.4.6")
    ['Gained in NumPy 2.4.6 (not in NumPy 1.26): `device`, `out`.', 'Lost in NumPy 2.4.6 (accepted in NumPy 1.26, no longer exists): `ddof`.']
    """
    old = old_version.rsplit(".", 1)[0] if old_version.count(".") > 1 else old_version

    def names(params: list[str]) -> str:
        return ", ".join(f"`{p}`" for p in params)

    return ([f"Gained in NumPy {new_version} (not in NumPy {old}): {names(gained)}."] if gained else []) + (
        [f"Lost in NumPy {new_version} (accepted in NumPy {old}, no longer exists): {names(lost)}."] if lost else [])


def with_change_notes(new_docs: list[Document], old_docs: list[Document], old_version: str = OLD_VERSION,
                      new_version: str = CURRENT_VERSION) -> list[Document]:
    """`new_docs`, each API whose signature gained or lost keyword arguments since its namesake in `old_docs`
    (`changed_params`) with a "Parameter changes" section at the end of its text; `metadata["change_notes"]` records
    {"since", "gained", "lost"}. Other documents, and documents noted already, are returned as they are (the same
    objects); inputs are not changed.

    >>> old = [Document("numpy.eye", "numpy.eye(N, M=None)", metadata={"signature": "(N, M=None)"})]
    >>> new = [Document("numpy.eye", "numpy.eye(N, M=None, *, device=None)", metadata={"signature": "(N, M=None, *, device=None)"})]
    >>> print(with_change_notes(new, old)[0].text)
    numpy.eye(N, M=None, *, device=None)
    <BLANKLINE>
    Parameter changes
    -----------------
    Gained in NumPy 2.4.6 (not in NumPy 1.26): `device`.
    """
    old_sigs = {d.doc_id: d.metadata.get("signature") or "" for d in old_docs}
    out = []
    for doc in new_docs:
        old_sig, new_sig = old_sigs.get(doc.doc_id, ""), doc.metadata.get("signature") or ""
        changed = changed_params(old_sig, new_sig) if old_sig and new_sig and "change_notes" not in doc.metadata else None
        if not changed or not (changed[0] or changed[1]):
            out.append(doc)
            continue
        gained, lost = changed
        lines = change_note_lines(gained, lost, old_version, new_version)
        text = (f"{doc.text.rstrip()}\n\n{CHANGE_NOTES_SECTION}\n{'-' * len(CHANGE_NOTES_SECTION)}\n"
                + "\n".join(lines))
        meta = {**doc.metadata, "change_notes": {"since": old_version, "gained": gained, "lost": lost}}
        out.append(Document(doc.doc_id, text, doc.title, meta))
    return out
