"""A public benchmark for retrieval over your own documents: Python's library reference (reST sources from Debian's
`python3.11-doc` package), with questions derived mechanically from it.

Each `.. function::`, `.. class::` and `.. method::` directive gives one question: the first sentence of its description,
markup removed (a reverse lookup: "Serialize obj to a JSON formatted str ..." -> json.rst.txt). The gold document is the
file that holds it; a sentence found in more than one file is dropped. A hash of the question id puts it in the "dev"
split (for choosing settings) or the held-out "test" split (for reporting).
This module derives questions and scores file rankings; it does not ship the documents (install the Debian package) and
does not build retrievers (see `ragft.retrieval.retrievers`). Run by benchmarks/own_docs.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.corpus import Document, load_folder
from ..evaluation.ranking import mrr, recall_at_k
from ..retrieval.chunking import Chunk

PYTHON_DOCS = Path("/usr/share/doc/python3.11/html/_sources")  # `apt-get install python3.11-doc` (PSF license)
DEV_SHARE = 0.3  # share of questions, by hash of their id, that may be used to choose settings

_DIRECTIVE = re.compile(r"^([ \t]*)\.\. (function|class|method)::[ \t]*(.*)$")
_MODULE = re.compile(r"^\.\. (?:module|currentmodule)::[ \t]*(\S+)")
_ROLE = re.compile(r":[\w:+-]+:`([^`]*)`")
_TARGET = re.compile(r"^(.*?)\s*<[^<>]*>$", re.S)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(`*\"'])")


@dataclass
class Question:
    """One derived question: its id ("<doc_id>::<name>"), text, gold document and split."""

    qid: str
    question: str
    doc_id: str
    split: str
    target: str = ""  # "module:qualname" of the documented object, when the file names its module


def clean_inline(text: str) -> str:
    """reST inline markup to plain text: roles keep their text (`~a.b` -> b, `title <target>` -> title), literals,
    emphasis and escapes lose their marks. `":func:`~json.dump` writes **obj**" -> "dump writes obj"`."""
    def role(m: re.Match) -> str:
        body = m.group(1)
        target = _TARGET.match(body)
        if target and target.group(1):
            return target.group(1)
        body = body.lstrip("!")
        return body.rsplit(".", 1)[-1] if body.startswith("~") else body

    text = _ROLE.sub(role, text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    text = re.sub(r"`([^`<]*?)(?:\s*<[^>]*>)?`_{0,2}", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*|\*([^*]+)\*", lambda m: m.group(1) or m.group(2), text)
    text = text.replace("\\ ", "").replace("\\", "")
    return " ".join(text.split())


def split_of(qid: str, dev_share: float = DEV_SHARE) -> str:
    """"dev" or "test", fixed by the sha256 of the question id (so adding files never moves a question)."""
    h = int.from_bytes(hashlib.sha256(qid.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    return "dev" if h < dev_share else "test"


def description_questions(text: str, doc_id: str, min_words: int = 6) -> list[Question]:
    """One question per function/class/method directive of a reST file: the first sentence of its description.

    >>> rst = ".. function:: dumps(obj)\\n\\n   Serialize *obj* to a JSON formatted :class:`str` using the table.\\n"
    >>> [q.question for q in description_questions(rst, "json.rst.txt")]
    ['Serialize obj to a JSON formatted str using the table.']
    """
    lines = text.splitlines()
    out, seen = [], set()
    module, classes = "", []  # classes: (indent, name) of the class directives enclosing the current line
    i = 0
    while i < len(lines):
        mod = _MODULE.match(lines[i])
        if mod:
            module = mod.group(1)
        m = _DIRECTIVE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, name = len(m.group(1).expandtabs()), m.group(3).split("(")[0].strip()
        classes = [(ci, cn) for ci, cn in classes if ci < indent]
        qualname = ".".join([cn for _, cn in classes] + [name]) if m.group(2) == "method" and "." not in name else name
        if m.group(2) == "class":
            classes.append((indent, name))
        j = i
        while j < len(lines) and lines[j].rstrip().endswith("\\"):  # a signature continued on the next line
            j += 1
        j += 1
        body: list[str] = []
        while j < len(lines):
            line = lines[j]
            stripped = line.strip()
            deeper = len(line.expandtabs()) - len(line.expandtabs().lstrip()) > indent
            if not stripped:
                if body:
                    break
            elif not deeper:
                break  # the directive ended without a description (or another signature follows)
            elif not body and (stripped.startswith(":") or stripped.startswith("..")):
                pass  # an option such as :noindex: or a nested directive before the text
            else:
                body.append(stripped)
            j += 1
        sentence = first_sentence(clean_inline(" ".join(body))) if body else ""
        qid = f"{doc_id}::{qualname}"
        if len(sentence.split()) >= min_words and qid not in seen:
            seen.add(qid)
            out.append(Question(qid, sentence, doc_id, split_of(qid), f"{module}:{qualname}" if module else ""))
        i += 1
    return out


def first_sentence(text: str) -> str:
    """The first sentence of a paragraph; a trailing reST "::" becomes ":"."""
    sentence = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    return sentence[:-1] if sentence.endswith("::") else sentence


# Runs in a child Python: imports each documented module and prints the first paragraph of each object's docstring.
_DOCSTRING_SCRIPT = r"""
import importlib, inspect, json, sys, warnings
warnings.simplefilter("ignore")
targets, out_path = json.loads(sys.stdin.read()), sys.argv[1]
skip = {"antigravity", "this", "__main__", "idlelib", "turtledemo"}
found = {}
for target in targets:
    module, qualname = target.split(":", 1)
    if module.split(".")[0] in skip:
        continue
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        doc = inspect.getdoc(obj) or ""
    except BaseException:
        continue
    if doc and doc != inspect.getdoc(type(obj)):
        found[target] = doc
with open(out_path, "w") as f:
    json.dump(found, f)
"""
_SIGNATURE_LINE = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$")


def docstring_sentences(targets: Sequence[str], python: str | None = None, timeout: float = 300) -> dict[str, str]:
    """target ("module:qualname") -> first sentence of the object's docstring in this Python (the docs' version),
    resolved in a child process so that importing documented modules cannot touch this one."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "docstrings.json"
        subprocess.run([python or sys.executable, "-c", _DOCSTRING_SCRIPT, str(out)], input=json.dumps(list(targets)),
                       text=True, capture_output=True, timeout=timeout, cwd=tmp, check=False)
        docs = json.loads(out.read_text()) if out.exists() else {}
    result = {}
    for target, doc in docs.items():
        paras = [" ".join(p.split()) for p in doc.split("\n\n") if p.strip()]
        paras = [p for p in paras if not _SIGNATURE_LINE.match(p)]  # C functions often open with their signature
        if paras:
            result[target] = first_sentence(clean_inline(paras[0]))
    return result


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def docstring_questions(docs: Sequence[Document], min_words: int = 6, python: str | None = None) -> list[Question]:
    """Questions phrased by the code's own docstrings, not by the documentation being searched: for each documented
    object, the first sentence of its docstring, kept only when that sentence does not occur verbatim in the gold file
    (the docs and the docstrings are written separately, so most are real paraphrases). The objects are looked up in
    `python` (default: this interpreter); use a Python 3.11 so they match the python3.11-doc sources."""
    qs = build_questions(docs, min_words)
    text_of = {d.doc_id: _norm(clean_inline(d.text)) for d in docs}
    found = docstring_sentences([q.target for q in qs if q.target], python)
    out, seen = [], set()
    for q in qs:
        sentence = found.get(q.target, "")
        key = _norm(sentence)
        if len(sentence.split()) < min_words or not key or key in text_of[q.doc_id] or key in seen:
            continue
        seen.add(key)
        out.append(Question(q.qid, sentence, q.doc_id, q.split, q.target))
    return out


def load_python_docs(root: str | Path = PYTHON_DOCS, pattern: str = "library/*.rst.txt",
                     max_chars: int = 2_000_000) -> list[Document]:
    """The files matching `pattern` under the docs' _sources, a fixed subset chosen by the sha256 of each file name
    until `max_chars` characters of text, so one benchmark run stays within a few minutes on 2 cores."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is missing: install Debian's python3.11-doc package (apt-get install python3.11-doc)")
    docs, _ = load_folder(root / Path(pattern).parent)
    suffix = Path(pattern).name.lstrip("*")
    docs = sorted((d for d in docs if d.doc_id.endswith(suffix) and "/" not in d.doc_id),
                  key=lambda d: hashlib.sha256(d.doc_id.encode()).hexdigest())
    picked, total = [], 0
    for d in docs:
        if total + len(d.text) > max_chars:
            continue
        picked.append(d)
        total += len(d.text)
    return sorted(picked, key=lambda d: d.doc_id)


def build_questions(docs: Sequence[Document], min_words: int = 6) -> list[Question]:
    """Questions from every document; a sentence that occurs in more than one file (ambiguous gold) is dropped."""
    qs = [q for d in docs for q in description_questions(d.text, d.doc_id, min_words)]
    files_of: dict[str, set[str]] = {}
    for q in qs:
        files_of.setdefault(q.question.lower(), set()).add(q.doc_id)
    unique, seen = [], set()
    for q in qs:
        key = q.question.lower()
        if len(files_of[key]) == 1 and key not in seen:
            seen.add(key)
            unique.append(q)
    return unique


def char_chunks(docs: Sequence[Document], size: int = 1000, overlap: int = 200) -> list[Chunk]:
    """Plain windows of `size` characters moving by size - overlap: the baseline any chunker should beat."""
    out = []
    for d in docs:
        starts = range(0, max(len(d.text) - overlap, 1), size - overlap)
        out += [Chunk(d.doc_id, f"{d.doc_id}#{i}", d.text[a:a + size], a, min(a + size, len(d.text)))
                for i, a in enumerate(starts)]
    return out


def file_ranking(doc_ids: Sequence[str], scores: np.ndarray, depth: int = 10) -> list[str]:
    """Files ranked by their best chunk's score (the first `depth` distinct files)."""
    ranked: list[str] = []
    for i in np.argsort(-scores, kind="stable"):
        if doc_ids[i] not in ranked:
            ranked.append(doc_ids[i])
            if len(ranked) == depth:
                break
    return ranked


def hits_ranking(hits, depth: int = 10) -> list[str]:
    """Files in the order a retriever's chunk hits first name them."""
    return list(dict.fromkeys(h.doc_id for h in hits))[:depth]


def score_rankings(rankings: Sequence[Sequence[str]], golds: Sequence[str]) -> dict[str, float]:
    """Mean recall@5 and MRR@10 of file rankings against one gold file per question."""
    return {"recall@5": float(np.mean([recall_at_k(r, {g}, 5) for r, g in zip(rankings, golds, strict=True)])),
            "mrr@10": float(np.mean([mrr(r, {g}, 10) for r, g in zip(rankings, golds, strict=True)]))}
