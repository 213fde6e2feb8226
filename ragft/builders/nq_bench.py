"""A natural-question benchmark for retrieval over prose documentation: the reST sources that Django (`.txt`, BSD
license) and SQLAlchemy (`.rst`, MIT license) ship in their source distributions on PyPI, asked with the questions
people wrote in their FAQ pages (`PROJECTS`).

Each FAQ section whose title ends in "?" ("How do I use image and file fields?"), or states a problem in five words or
more ("Some objects aren't appearing in the admin."), is one question; its gold documents are the pages its answer
links to: `:doc:` targets, and `:ref:` labels and object roles (`:setting:`, `:class:`, ...) resolved to the one page
that defines them (`.. _label:`, `.. setting::`, `.. class::` or autodoc's `.. autoclass::`, whose `:members:` puts a
class's members on its page). A statement title nested under a question ("Step one - turn on SQL logging") is part of
that answer, not a question. The FAQ pages are kept out of the searched corpus (their answers would be found verbatim),
and so are the release notes (hundreds of short "X now supports Y" pages that no FAQ answer links to). A hash of the
question id puts it in "dev" (for choosing settings) or the held-out "test" split (`docs_bench.split_of`).
This module downloads and derives; it does not build retrievers or score them (benchmarks/natural_questions.py).
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import subprocess
import sys
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from ..core.paths import cache_dir
from ..data.corpus import Document, load_folder
from ..retrieval.headings import rst_headings
from .docs_bench import clean_inline, split_of

DJANGO_SPEC = "django==5.2.*"  # a source distribution whose docs/ holds the reST sources
DEV_SHARE = 0.5  # a few dozen questions in all: half of them may be used to choose settings
EXCLUDED = ("faq/", "releases/", "_ext/", "_theme/")  # the question pages, release notes, Sphinx machinery
SIMPLE_INDEX = "https://pypi.org/simple/"  # PEP 503: one page of file links per project, each with its sha256

_ROLE = re.compile(r":([a-z]+):`([^`]*)`")
_LABEL = re.compile(r"^\.\. _([^:`][^:]*?):[ \t]*$", re.M)  # `.. _label:` alone (not `.. _name: https://...`)
_DIRECTIVE = re.compile(r"^([ \t]*)\.\. ([a-z-]+)::[ \t]*([^\s(]+)", re.M)
# directive that defines an object -> the role that links to it (Python's domain and Django's own directives)
ROLE_OF = {"class": "class", "method": "meth", "classmethod": "meth", "attribute": "attr", "function": "func",
           "exception": "exc", "data": "data", "decorator": "func", "module": "mod", "setting": "setting",
           "django-admin": "djadmin", "templatetag": "ttag", "templatefilter": "tfilter", "fieldlookup": "lookup",
           "envvar": "envvar"}
_PYTHON_ROLES = ("class", "meth", "attr", "func", "exc", "data")
_AUTODOC = ("autoclass", "autofunction", "automethod", "autoattribute", "autoexception", "automodule", "autodata")
_TARGET = re.compile(r"<([^<>]+)>\s*$")
_OPTIONS = re.compile(r"[^\n]*\n?((?:[ \t]+:[a-z-]+:[^\n]*\n)*)")  # the rest of a directive's line, then its options


@dataclass(frozen=True)
class Project:
    """Where a project's docs come from and which of its pages are searched: `spec` is fetched with pip, or `sdist`
    (a file name) from PyPI's simple index, faster where pip would build the package's metadata to download it."""

    name: str  # its name on PyPI
    title: str  # as it is written in prose
    docs: str  # the docs folder inside the unpacked source distribution
    suffix: str  # the reST sources' file suffix
    exclude: tuple[str, ...]  # the question pages, release notes, Sphinx machinery: kept out of the searched pages
    spec: str = ""
    sdist: str = ""
    qid_prefix: str = ""  # keeps question ids unique across projects; Django's are unprefixed so its split stays put


PROJECTS = {
    "django": Project("django", "Django", "docs", ".txt", EXCLUDED, spec=DJANGO_SPEC),
    "sqlalchemy": Project("sqlalchemy", "SQLAlchemy", "doc/build", ".rst",
                          ("faq/", "changelog/", "_static/", "_templates/"),  # changelog/: 3 MB of release notes
                          sdist="sqlalchemy-2.0.36.tar.gz", qid_prefix="sqlalchemy:"),
}


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
    """A `:doc:` target as a doc_id with `page`'s suffix: absolute ("/topics/cache") from the docs root, else relative
    to `page`'s folder.

    >>> doc_target("/topics/cache", "faq/general.txt"), doc_target("admin", "faq/usage.rst")
    ('topics/cache.txt', 'faq/admin.rst')
    """
    path = target.lstrip("/") if target.startswith("/") else f"{PurePosixPath(page).parent}/{target}"
    return posixpath.normpath(path) + PurePosixPath(page).suffix


def link_targets(docs: Sequence[Document]) -> dict[tuple[str, str], set[str]]:
    """(role, name) -> the pages that define it: ("ref", label) for `.. _label:` (lowercased, as Sphinx stores it),
    ("setting", "DEBUG") for `.. setting:: DEBUG` and so on (`ROLE_OF`), and ("py", dotted suffix) for every dotted
    suffix of a Python object's full name ("django.db.models.Model.save", "models.Model.save", ..., "save"), and
    ("members", dotted suffix) for a class or module that autodoc documents with its members (`:members:`)."""
    out: dict[tuple[str, str], set[str]] = {}
    for d in docs:
        for m in _LABEL.finditer(d.text):
            out.setdefault(("ref", m.group(1).strip().lower()), set()).add(d.doc_id)
        module, classes = "", []  # classes: (indent, name) of the class directives enclosing the current one
        for m in _DIRECTIVE.finditer(d.text):
            indent, kind, name = len(m.group(1).expandtabs()), m.group(2), m.group(3)
            kind = kind.removeprefix("auto") if kind in _AUTODOC else kind  # autodoc defines what its plain form does
            members = kind != m.group(2) and documents_members(d.text, m.end())
            if kind in ("module", "currentmodule"):
                module, classes = name, []
                out.setdefault(("mod", name), set()).add(d.doc_id)
                if members:
                    add_suffixes(out, "members", name, d.doc_id)
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
            add_suffixes(out, "py", full, d.doc_id)
            if members:
                add_suffixes(out, "members", full, d.doc_id)
    return out


def add_suffixes(out: dict[tuple[str, str], set[str]], kind: str, full: str, page: str) -> None:
    """Record `page` under (kind, s) for every dotted suffix s of `full` ("a.b.C" -> "a.b.C", "b.C", "C")."""
    pieces = full.split(".")
    for i in range(len(pieces)):
        out.setdefault((kind, ".".join(pieces[i:])), set()).add(page)


def documents_members(text: str, end: int) -> bool:
    """Whether the autodoc directive whose name ends at `end` has a `:members:` (or `:inherited-members:`) option."""
    return re.search(r":(inherited-)?members:", _OPTIONS.match(text, end).group(1)) is not None


def python_names(target: str) -> list[str]:
    """The names a Python role's target is looked up by, in order: without Sphinx's leading "." (its suffix search),
    then without the leading private module aliases a project may import under ("_orm.Session" -> "Session").

    >>> python_names("._orm.Session.commit"), python_names("Model.save")
    (['_orm.Session.commit', 'Session.commit'], ['Model.save'])
    """
    parts = target.lstrip(".").split(".")
    public = next((i for i, p in enumerate(parts[:-1]) if not p.startswith("_")), len(parts) - 1)
    return list(dict.fromkeys([".".join(parts), ".".join(parts[public:])]))


def resolve(role: str, target: str, page: str, targets: dict[tuple[str, str], set[str]]) -> str | None:
    """The page a role's target points to, or None when unknown or ambiguous (defined on several pages). A Python
    object that no directive defines is found on the page where autodoc lists its class's or module's members."""
    if role == "doc":
        return doc_target(target, page)
    if role not in _PYTHON_ROLES:
        pages = targets.get((role, target.lower() if role == "ref" else target), set())
        return next(iter(pages)) if len(pages) == 1 else None
    names = python_names(target)
    keys = [("py", n) for n in names] + [("members", n.rpartition(".")[0]) for n in names if "." in n]
    for key in keys:
        pages = targets.get(key, set())
        if pages:  # the first name that is known decides: an ambiguous one is not retried
            return next(iter(pages)) if len(pages) == 1 else None
    return None


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


def under_question(heads: Sequence[tuple[int, int, str]], i: int) -> bool:
    """Whether heading `i` (of `rst_headings`) lies inside a section whose title is a question."""
    level = heads[i][1]
    for _, lv, title in reversed(heads[:i]):
        if lv < level:
            if title.endswith("?"):
                return True
            level = lv
    return False


def faq_questions(text: str, page: str, targets: dict[tuple[str, str], set[str]], exclude: Sequence[str] = EXCLUDED,
                  dev_share: float = DEV_SHARE, statements: bool = True, qid_prefix: str = "") -> list[NaturalQuestion]:
    """One question per section title ending in "?" of a FAQ page (and, with `statements`, per title stating a problem
    that no question title encloses); gold = the pages its answer (the text up to the next title of the same or a
    higher level) links to, outside `exclude`. A question without such a link is dropped.

    >>> faq = "FAQ\\n===\\n\\nHow do I cache?\\n---------------\\n\\nSee :doc:`/topics/cache`.\\n"
    >>> [(q.question, q.gold) for q in faq_questions(faq, "faq/usage.txt", {})]
    [('How do I cache?', ['topics/cache.txt'])]
    """
    heads = rst_headings(text)
    out = []
    for i, (at, level, title) in enumerate(heads):
        statement = statements and level > 1 and len(title.split()) >= 5 and not under_question(heads, i)
        if not (title.endswith("?") or statement):
            continue
        end = next((a for a, lv, _ in heads[i + 1:] if lv <= level), len(text))
        gold = [p for p in linked_pages(text[at:end], page, targets) if p != page and not p.startswith(tuple(exclude))]
        question = clean_inline(title)
        qid = f"{qid_prefix}{page}::{question}"
        if gold:
            out.append(NaturalQuestion(qid, question, gold, split_of(qid, dev_share)))
    return out


def django_docs(spec: str = DJANGO_SPEC) -> Path:
    """The docs/ folder of Django's source distribution, downloaded once with pip into the user cache."""
    return project_docs(replace(PROJECTS["django"], spec=spec))


def pip_sdist(project: Project, root: Path) -> Path:
    """`project.spec`'s source distribution in `root`, downloaded with pip unless one is there."""
    pattern = f"[{project.name[0]}{project.name[0].upper()}]{project.name[1:]}-*.tar.gz"
    sdists = sorted(root.glob(pattern))
    if not sdists:
        cmd = [sys.executable, "-m", "pip", "download", project.spec, "--no-binary", ":all:", "--no-deps", "--quiet",
               "-d", str(root)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        sdists = sorted(root.glob(pattern))
        if done.returncode != 0 or not sdists:
            raise FileNotFoundError(offline_message(project, root, done.stderr))
    return sdists[-1]


def index_sdist(project: Project, root: Path, index: str = SIMPLE_INDEX) -> Path:
    """`project.sdist` in `root`, downloaded from PyPI's simple index (PEP 503) and checked against its sha256."""
    path = root / project.sdist
    if path.is_file():
        return path
    listing_url = f"{index}{project.name}/"
    try:
        with urllib.request.urlopen(listing_url, timeout=60) as page:
            listing = page.read().decode("utf-8")
        link = re.search(rf'href="([^"#]*{re.escape(project.sdist)})#sha256=([0-9a-f]{{64}})"', listing)
        if link is not None:
            with urllib.request.urlopen(urllib.parse.urljoin(listing_url, link.group(1)), timeout=300) as r:
                data = r.read()
    except OSError as err:  # offline, refused, timed out (urllib's URLError is an OSError)
        raise FileNotFoundError(offline_message(project, root, str(err))) from err
    if link is None:
        raise FileNotFoundError(f"{project.sdist} is not listed on {listing_url}")
    if hashlib.sha256(data).hexdigest() != link.group(2):
        raise FileNotFoundError(f"{project.sdist} from {index} does not match its sha256; nothing was saved")
    path.write_bytes(data)
    return path


def offline_message(project: Project, root: Path, detail: str) -> str:
    wanted = project.sdist or project.spec
    return (f"could not download {project.title}'s source distribution ({wanted}) from PyPI, and none is cached in "
            f"{root}: connect to PyPI once, or put the .tar.gz there.\n{detail.strip()[-500:]}")


def project_docs(project: Project) -> Path:
    """The docs folder of `project`'s source distribution, downloaded once into the user cache and unpacked there."""
    root = cache_dir(f"{project.name}-docs")
    sdist = index_sdist(project, root) if project.sdist else pip_sdist(project, root)
    out = root / sdist.name.removesuffix(".tar.gz")
    if not (out / project.docs).is_dir():
        with tarfile.open(sdist) as tar:
            members = [m for m in tar.getmembers() if m.isfile() and f"/{project.docs}/" in m.name
                       and m.name.endswith(project.suffix)]
            tar.extractall(root, members=members, filter="data")
    return out / project.docs


def load_project(name: str, docs_root: str | Path | None = None, exclude: Sequence[str] | None = None
                 ) -> tuple[list[Document], list[NaturalQuestion]]:
    """A project's searched pages (every docs page outside its excluded folders) and the FAQ questions whose gold
    is among them; a question asked twice in the FAQ is kept once."""
    project = PROJECTS[name]
    exclude = tuple(project.exclude if exclude is None else exclude)
    all_docs, _ = load_folder(docs_root or project_docs(project))
    all_docs = [d for d in all_docs if d.doc_id.endswith(project.suffix)]
    targets = link_targets(all_docs)
    corpus = [d for d in all_docs if not d.doc_id.startswith(exclude)]
    known = {d.doc_id for d in corpus}
    questions, seen = [], set()
    for d in all_docs:
        if d.doc_id.startswith("faq/"):
            for q in faq_questions(d.text, d.doc_id, targets, exclude, qid_prefix=project.qid_prefix):
                q.gold = [g for g in q.gold if g in known]
                if q.gold and q.question.lower() not in seen:
                    seen.add(q.question.lower())
                    questions.append(q)
    return corpus, questions


def load_django(docs_root: str | Path | None = None, exclude: Sequence[str] = EXCLUDED
                ) -> tuple[list[Document], list[NaturalQuestion]]:
    """Django's searched pages and FAQ questions (`load_project("django")`)."""
    return load_project("django", docs_root, exclude)
