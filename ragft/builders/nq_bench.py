"""A natural-question benchmark for retrieval over prose documentation: Django's docs (reST `.txt` files shipped in its
source distribution on PyPI, BSD license), asked with the questions people wrote in its FAQ pages.

Each FAQ section whose title ends in "?" ("How do I use image and file fields?"), or states a problem in five words or
more ("Some objects aren't appearing in the admin."), is one question; its gold documents are the pages its answer
links to: `:doc:` targets, and `:ref:` labels and object roles (`:setting:`, `:class:`, ...) resolved to the one page
that defines them (`.. _label:`, `.. setting::`, `.. class::`). The FAQ pages are kept out of the searched corpus (their answers would be found verbatim), and so are
the release notes (hundreds of short "X now supports Y" pages that no FAQ answer links to). A hash of the question id
puts it in "dev" (for choosing settings) or the held-out "test" split (`docs_bench.split_of`).
This module downloads and derives; it does not build retrievers or score them (benchmarks/natural_questions.py).
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..core.paths import cache_dir
from ..data.corpus import Document, load_folder
from ..retrieval.headings import rst_headings
from .docs_bench import clean_inline, split_of

DJANGO_SPEC = "django==5.2.*"  # a source distribution whose docs/ holds the reST sources
DEV_SHARE = 0.5  # a few dozen questions in all: half of them may be used to choose settings
EXCLUDED = ("faq/", "releases/", "_ext/", "_theme/")  # the question pages, release notes, Sphinx machinery

_ROLE = re.compile(r":([a-z]+):`([^`]*)`")
_LABEL = re.compile(r"^\.\. _([^:`][^:]*?):[ \t]*$", re.M)  # `.. _label:` alone (not `.. _name: https://...`)
_DIRECTIVE = re.compile(r"^([ \t]*)\.\. ([a-z-]+)::[ \t]*([^\s(]+)", re.M)
# directive that defines an object -> the role that links to it (Python's domain and Django's own directives)
ROLE_OF = {"class": "class", "method": "meth", "classmethod": "meth", "attribute": "attr", "function": "func",
           "exception": "exc", "data": "data", "decorator": "func", "module": "mod", "setting": "setting",
           "django-admin": "djadmin", "templatetag": "ttag", "templatefilter": "tfilter", "fieldlookup": "lookup",
           "envvar": "envvar"}
_PYTHON_ROLES = ("class", "meth", "attr", "func", "exc", "data")
_TARGET = re.compile(r"<([^<>]+)>\s*$")


@dataclass
class NaturalQuestion:
    """One FAQ question: id ("faq/<page>::<title>"), text, the pages its answer links to (gold) and split."""

    qid: str
    question: str
    gold: list[str] = field(default_factory=list)
    split: str = "test"


def role_target(body: str) -> str:
    """The target of a role's body: `title <target>` -> target, `~target` or `!target` -> target."""
    m = _TARGET.search(body)
    return (m.group(1) if m else body).strip().lstrip("~!").removesuffix("()")


def doc_target(target: str, page: str) -> str:
    """A `:doc:` target as a doc_id: absolute ("/topics/cache") from the docs root, else relative to `page`'s folder.

    >>> doc_target("/topics/cache", "faq/general.txt"), doc_target("admin", "faq/usage.txt")
    ('topics/cache.txt', 'faq/admin.txt')
    """
    path = target.lstrip("/") if target.startswith("/") else f"{PurePosixPath(page).parent}/{target}"
    return posixpath.normpath(path) + ".txt"


def link_targets(docs: Sequence[Document]) -> dict[tuple[str, str], set[str]]:
    """(role, name) -> the pages that define it: ("ref", label) for `.. _label:` (lowercased, as Sphinx stores it),
    ("setting", "DEBUG") for `.. setting:: DEBUG` and so on (`ROLE_OF`), and ("py", dotted suffix) for every dotted
    suffix of a Python object's full name ("django.db.models.Model.save", "models.Model.save", ..., "save")."""
    out: dict[tuple[str, str], set[str]] = {}
    for d in docs:
        for m in _LABEL.finditer(d.text):
            out.setdefault(("ref", m.group(1).strip().lower()), set()).add(d.doc_id)
        module, classes = "", []  # classes: (indent, name) of the class directives enclosing the current one
        for m in _DIRECTIVE.finditer(d.text):
            indent, kind, name = len(m.group(1).expandtabs()), m.group(2), m.group(3)
            if kind in ("module", "currentmodule"):
                module, classes = name, []
                out.setdefault(("mod", name), set()).add(d.doc_id)
                continue
            role = ROLE_OF.get(kind)
            if role is None:
                continue
            if role not in _PYTHON_ROLES:
                out.setdefault((role, name), set()).add(d.doc_id)
                continue
            classes = [(ci, cn) for ci, cn in classes if ci < indent]
            parts = [module] if module else []
            full = ".".join(parts + [cn for _, cn in classes if "." not in name] + [name])
            if kind == "class":
                classes.append((indent, name))
            pieces = full.split(".")
            for i in range(len(pieces)):
                out.setdefault(("py", ".".join(pieces[i:])), set()).add(d.doc_id)
    return out


def resolve(role: str, target: str, page: str, targets: dict[tuple[str, str], set[str]]) -> str | None:
    """The page a role's target points to, or None when unknown or ambiguous (defined on several pages)."""
    if role == "doc":
        return doc_target(target, page)
    key = ("py", target) if role in _PYTHON_ROLES else (role, target.lower() if role == "ref" else target)
    pages = targets.get(key, set())
    return next(iter(pages)) if len(pages) == 1 else None


def linked_pages(text: str, page: str, targets: dict[tuple[str, str], set[str]]) -> list[str]:
    """The pages a piece of reST links to (`:doc:`, `:ref:`, and the object roles of `ROLE_OF`), in order of first
    mention; a target that is unknown or defined on several pages is dropped.

    >>> text = "See :doc:`the cache </topics/cache>` and :ref:`sessions`."
    >>> linked_pages(text, "faq/a.txt", {("ref", "sessions"): {"s.txt"}})
    ['topics/cache.txt', 's.txt']
    """
    roles = {"doc", "ref", *ROLE_OF.values()}
    found = [resolve(m.group(1), role_target(m.group(2)), page, targets)
             for m in _ROLE.finditer(text) if m.group(1) in roles]
    return [p for p in dict.fromkeys(found) if p]


def faq_questions(text: str, page: str, targets: dict[tuple[str, str], set[str]], exclude: Sequence[str] = EXCLUDED,
                  dev_share: float = DEV_SHARE, statements: bool = True) -> list[NaturalQuestion]:
    """One question per section title ending in "?" of a FAQ page; gold = the pages its answer (the text up to the next
    title of the same or a higher level) links to, outside `exclude`. A question without such a link is dropped.

    >>> faq = "FAQ\\n===\\n\\nHow do I cache?\\n---------------\\n\\nSee :doc:`/topics/cache`.\\n"
    >>> [(q.question, q.gold) for q in faq_questions(faq, "faq/usage.txt", {})]
    [('How do I cache?', ['topics/cache.txt'])]
    """
    heads = rst_headings(text)
    out = []
    for i, (at, level, title) in enumerate(heads):
        if not (title.endswith("?") or (statements and level > 1 and len(title.split()) >= 5)):
            continue
        end = next((a for a, lv, _ in heads[i + 1:] if lv <= level), len(text))
        gold = [p for p in linked_pages(text[at:end], page, targets) if p != page and not p.startswith(tuple(exclude))]
        question = clean_inline(title)
        qid = f"{page}::{question}"
        if gold:
            out.append(NaturalQuestion(qid, question, gold, split_of(qid, dev_share)))
    return out


def django_docs(spec: str = DJANGO_SPEC) -> Path:
    """The docs/ folder of Django's source distribution, downloaded once with pip into the user cache."""
    root = cache_dir("django-docs")
    sdists = sorted(root.glob("django-*.tar.gz")) or sorted(root.glob("Django-*.tar.gz"))
    if not sdists:
        cmd = [sys.executable, "-m", "pip", "download", spec, "--no-binary", ":all:", "--no-deps", "--quiet",
               "-d", str(root)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        sdists = sorted(root.glob("[dD]jango-*.tar.gz"))
        if done.returncode != 0 or not sdists:
            raise FileNotFoundError(f"could not download Django's source distribution ({spec}) with pip, and none is "
                                    f"cached in {root}: connect to PyPI once, or put a django-*.tar.gz there.\n"
                                    f"{done.stderr.strip()[-500:]}")
    sdist = sdists[-1]
    out = root / sdist.name.removesuffix(".tar.gz")
    if not (out / "docs").is_dir():
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and "/docs/" in m.name and m.name.endswith(".txt")]
            tar.extractall(root, members=members, filter="data")
    return out / "docs"


def load_django(docs_root: str | Path | None = None, exclude: Sequence[str] = EXCLUDED
                ) -> tuple[list[Document], list[NaturalQuestion]]:
    """The searched pages (every docs .txt outside `exclude`) and the FAQ questions whose gold is among them."""
    all_docs, _ = load_folder(docs_root or django_docs())
    all_docs = [d for d in all_docs if d.doc_id.endswith(".txt")]
    targets = link_targets(all_docs)
    corpus = [d for d in all_docs if not d.doc_id.startswith(tuple(exclude))]
    known = {d.doc_id for d in corpus}
    questions, seen = [], set()
    for d in all_docs:
        if d.doc_id.startswith("faq/"):
            for q in faq_questions(d.text, d.doc_id, targets, exclude):
                q.gold = [g for g in q.gold if g in known]
                if q.gold and q.question.lower() not in seen:
                    seen.add(q.question.lower())
                    questions.append(q)
    return corpus, questions
