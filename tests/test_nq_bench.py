"""The natural-question benchmark: FAQ questions and their gold pages derived from reST links (no download), the
offline error, BM25's query stop words and the dense share for plain-English questions."""

import subprocess

import pytest

from ragft.builders import nq_bench
from ragft.builders.nq_bench import doc_target, faq_questions, link_targets, linked_pages, load_django
from ragft.data.corpus import Document
from ragft.retrieval.chunking import Chunk
from ragft.retrieval.retrievers import (
    DEFAULT_FUSION_WEIGHT,
    DEFAULT_PROSE_WEIGHT,
    BM25Retriever,
    HybridRetriever,
    build_retriever,
    is_prose_question,
    query_tokens,
)

FAQ = """\
=============
FAQ: Using it
=============

How do I cache a page?
======================

Use :doc:`the cache framework </topics/cache>` and read :ref:`per-view caching <per-view>`.

Why is it named so?
===================

Nobody remembers; see `the website <https://example.org>`_.

Some objects aren't appearing in the admin.
===========================================

Check :attr:`~django.db.models.Field.blank` and :setting:`DEBUG`, or :doc:`usage` here.

Sub-level
---------

See also :doc:`/releases/5.0`.

Is it fast?
===========

See :meth:`Model.save() <django.db.models.Model.save>` and :class:`Ambiguous`.
"""

PAGES = {
    "topics/cache.txt": "Cache\n=====\n\n.. _per-view:\n\nPer view\n--------\n\nCache one view.\n",
    "ref/settings.txt": "Settings\n========\n\n.. setting:: DEBUG\n\nDEBUG\n-----\n\nDebug mode.\n",
    "ref/models/fields.txt": (".. module:: django.db.models\n\nFields\n======\n\n.. class:: Field\n\n"
                              "    .. attribute:: blank\n\n        May be empty.\n\n.. class:: Ambiguous\n"),
    "ref/models/instances.txt": (".. currentmodule:: django.db.models\n\nInstances\n=========\n\n"
                                 ".. method:: Model.save()\n\n    Saves.\n\n.. class:: Ambiguous\n"),
}


def _docs(pages):
    return [Document(doc_id=k, text=v, title=k) for k, v in pages.items()]


def test_doc_targets_are_absolute_from_the_root_or_relative_to_the_page():
    assert doc_target("/topics/cache", "faq/usage.txt") == "topics/cache.txt"
    assert doc_target("admin", "faq/usage.txt") == "faq/admin.txt"
    assert doc_target("../intro/install", "faq/usage.txt") == "intro/install.txt"


def test_link_targets_resolve_labels_settings_and_python_objects_by_full_name_or_suffix():
    targets = link_targets(_docs(PAGES))
    assert targets[("ref", "per-view")] == {"topics/cache.txt"}
    assert targets[("setting", "DEBUG")] == {"ref/settings.txt"}
    assert targets[("py", "django.db.models.Field.blank")] == {"ref/models/fields.txt"}  # nested under its class
    assert targets[("py", "Field.blank")] == {"ref/models/fields.txt"}
    assert targets[("py", "django.db.models.Model.save")] == {"ref/models/instances.txt"}
    assert targets[("py", "Ambiguous")] == {"ref/models/fields.txt", "ref/models/instances.txt"}
    text = ":class:`Ambiguous` :meth:`~django.db.models.Model.save` :ref:`Per-View`"
    # the ambiguous target is dropped; labels ignore case
    assert linked_pages(text, "faq/x.txt", targets) == ["ref/models/instances.txt", "topics/cache.txt"]


def test_faq_questions_take_titles_and_the_pages_their_answers_link_to():
    targets = link_targets(_docs(PAGES))
    qs = faq_questions(FAQ, "faq/usage.txt", targets)
    by_text = {q.question: q for q in qs}
    assert list(by_text) == ["How do I cache a page?", "Some objects aren't appearing in the admin.", "Is it fast?"]
    assert by_text["How do I cache a page?"].gold == ["topics/cache.txt"]  # :doc: and :ref: to one page, counted once
    # the answer runs over its sub-sections; a link to the page itself and to release notes is no gold
    assert by_text["Some objects aren't appearing in the admin."].gold == ["ref/models/fields.txt", "ref/settings.txt"]
    assert by_text["Is it fast?"].gold == ["ref/models/instances.txt"]
    assert all(q.qid.startswith("faq/usage.txt::") and q.split in ("dev", "test") for q in qs)
    assert [q.question for q in faq_questions(FAQ, "faq/usage.txt", targets, statements=False)] == [
        "How do I cache a page?", "Is it fast?"]


def test_load_django_keeps_faq_and_release_notes_out_of_the_corpus(tmp_path):
    for name, text in {**PAGES, "faq/usage.txt": FAQ, "releases/5.0.txt": "5.0\n===\n\nCache news.\n",
                       "index.txt": "Index\n=====\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    docs, qs = load_django(tmp_path)
    assert sorted(d.doc_id for d in docs) == sorted([*PAGES, "index.txt"])
    known = {d.doc_id for d in docs}
    assert qs and all(set(q.gold) <= known for q in qs)


def test_django_docs_says_what_to_do_when_offline_and_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGFT_CACHE", str(tmp_path))
    monkeypatch.setattr(nq_bench.subprocess, "run",
                        lambda cmd, **kw: subprocess.CompletedProcess(cmd, 1, "", "No matching distribution found"))
    with pytest.raises(FileNotFoundError, match="could not download Django"):
        nq_bench.django_docs()


def test_bm25_queries_drop_question_words():
    assert query_tokens("How do I cache a page?") == ["cache", "page"]
    assert query_tokens("how do I?") == ["how", "do", "i"]  # nothing left: keep the question as it is
    assert query_tokens("Which arrays are all nonzero, and where?") == ["arrays", "all", "nonzero", "where"]
    chatty = "How do I do it? What do I do? How can I do this, and why do you do that?"
    chunks = [Chunk("talk", "talk#0", chatty, 0, len(chatty)),
              Chunk("cache", "cache#0", "The cache stores a page.", 0, 24)]
    hits = BM25Retriever(chunks).search("How do I cache it?", top_k=2)
    assert [h.doc_id for h in hits] == ["cache"]  # the chatty chunk shares only question words: not a match


def test_a_plain_english_question_is_fused_with_the_prose_weight():
    docs = [Document(doc_id=f"d{i}", text=t, title=f"d{i}", metadata={"format": "text"}) for i, t in enumerate([
        "The cache framework stores rendered pages so they are not computed again.",
        "How do I do it? How do I start? How do I keep going from here? How do I ask?",
        "Use `np.sort` to sort an array; np.sort returns a sorted copy.",
        "Sessions keep data per visitor between requests.",
    ])]
    hybrid = build_retriever(docs, "hybrid", embedder="hashing", show_progress=False)
    assert hybrid.weight == DEFAULT_FUSION_WEIGHT and hybrid.prose_weight == DEFAULT_PROSE_WEIGHT
    for query, weight in [("How do I keep pages from being computed again?", DEFAULT_PROSE_WEIGHT),
                          ("How does `np.sort` sort an array?", DEFAULT_FUSION_WEIGHT)]:
        (cands,) = hybrid.candidate_scores([query], top_k=4)
        expected = [cid for cid, _ in hybrid.fuse(cands, weight)][:4]
        assert [h.chunk_id for h in hybrid.search(query, top_k=4)] == expected
    (cands,) = hybrid.candidate_scores(["How do I keep pages from being computed again?"], top_k=4)
    assert hybrid.fuse(cands, DEFAULT_PROSE_WEIGHT)[0][0] != hybrid.fuse(cands, DEFAULT_FUSION_WEIGHT)[0][0]  # it matters
    plain = HybridRetriever(hybrid.dense, hybrid.bm25, fusion="convex")  # no prose_weight: one weight for all
    assert plain.prose_weight is None
    with pytest.raises(ValueError, match="prose_weight"):
        HybridRetriever(hybrid.dense, hybrid.bm25, fusion="convex", prose_weight=1.5)


def test_prose_questions_are_questions_that_name_no_code():
    assert is_prose_question("Does Django scale?") and is_prose_question("Can I use it offline? ")
    for query in ["Does `np.sort` copy?", "What replaced np.float_?", "Why does save() fail?", "Why is getItem slow?",
                  "What is DJANGO_SETTINGS_MODULE?", "Sort an array in place.", "how to sort"]:
        assert not is_prose_question(query), query


# SQLAlchemy-style Sphinx sources: autodoc directives, private module aliases ("_orm."), Sphinx's leading-dot search
API = {
    "orm/session_api.rst": (".. currentmodule:: sqlalchemy.orm\n\nSession API\n===========\n\n"
                            ".. autoclass:: Session\n   :members:\n   :inherited-members:\n\n"
                            ".. autofunction:: close_all_sessions\n"),
    "orm/mapper.rst": (".. currentmodule:: sqlalchemy.orm\n\nMapper\n======\n\n.. autoclass:: Mapper\n\n"
                       ".. autoclass:: Bundle\n"),
    "core/bundle.rst": ".. module:: sqlalchemy.sql\n\nBundle\n======\n\n.. autoclass:: Bundle\n",
    "core/exc.rst": (".. automodule:: sqlalchemy.exc\n   :members:\n\nErrors\n======\n\n"
                     ".. autoexception:: NoResultFound\n"),
}


def test_autodoc_directives_define_objects_like_their_plain_forms():
    targets = link_targets(_docs(API))
    assert targets[("py", "sqlalchemy.orm.Session")] == {"orm/session_api.rst"}
    assert targets[("py", "close_all_sessions")] == {"orm/session_api.rst"}
    assert targets[("py", "sqlalchemy.exc.NoResultFound")] == {"core/exc.rst"}  # automodule sets the module
    assert targets[("mod", "sqlalchemy.exc")] == {"core/exc.rst"}
    assert ("members", "Session") in targets and ("members", "Mapper") not in targets  # only with :members:
    text = ":class:`.Session` :func:`~sqlalchemy.orm.close_all_sessions` :exc:`.NoResultFound`"
    assert linked_pages(text, "faq/s.rst", targets) == ["orm/session_api.rst", "core/exc.rst"]


def test_leading_dots_and_private_module_aliases_are_retried_and_ambiguity_still_drops():
    targets = link_targets(_docs(API))
    assert nq_bench.python_names("._orm.Session") == ["_orm.Session", "Session"]
    assert nq_bench.python_names("_a._b.c_.d") == ["_a._b.c_.d", "c_.d"]  # only leading private parts go
    assert nq_bench.python_names("._private") == ["_private"]  # the object's own name is never dropped
    for target in ["_orm.Session", ".Session", "~sqlalchemy.orm.Session", "_orm.Mapper"]:
        expected = "orm/mapper.rst" if "Mapper" in target else "orm/session_api.rst"
        assert linked_pages(f":class:`{target}`", "faq/s.rst", targets) == [expected], target
    # a member that no directive names lives on the page where autodoc lists its class's members
    assert linked_pages(":meth:`_orm.Session.commit` :meth:`.Session.flush`", "faq/s.rst", targets) == [
        "orm/session_api.rst"]
    assert linked_pages(":meth:`_orm.Mapper.columns`", "faq/s.rst", targets) == []  # no :members: on Mapper
    # Bundle is defined on two pages: the retry finds it ambiguous and drops it, as the full name would be
    assert linked_pages(":class:`_orm.Bundle` :class:`.Bundle`", "faq/s.rst", targets) == []
    assert linked_pages(":class:`_sql.Bundle`", "faq/s.rst", targets) == []
    assert linked_pages(":class:`sqlalchemy.sql.Bundle`", "faq/s.rst", targets) == ["core/bundle.rst"]
    assert linked_pages(":doc:`session_api`", "orm/x.rst", targets) == ["orm/session_api.rst"]  # the page's suffix


SQLA_FAQ = """\
Performance
===========

Why is my application slow after upgrading?
-------------------------------------------

Read on.

Step one - turn on SQL logging and confirm caching
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

Use :class:`_orm.Session`.

But why does the cache not apply here?
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

See :func:`.close_all_sessions`.

Commands out of sync with the database server
---------------------------------------------

See :meth:`.Session.close`.

Nested statement under a statement title
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

See :exc:`.NoResultFound`.
"""


def test_statement_titles_nested_under_a_question_belong_to_its_answer():
    qs = faq_questions(SQLA_FAQ, "faq/performance.rst", link_targets(_docs(API)))
    by_text = {q.question: q.gold for q in qs}
    assert list(by_text) == ["Why is my application slow after upgrading?", "But why does the cache not apply here?",
                             "Commands out of sync with the database server",
                             "Nested statement under a statement title"]
    assert by_text["Why is my application slow after upgrading?"] == ["orm/session_api.rst"]  # the step's link counts


def test_question_ids_are_unique_across_projects(tmp_path):
    roots = {}
    for name, pages, faq, suffix in [("django", PAGES, FAQ, ".txt"), ("sqlalchemy", API, SQLA_FAQ, ".rst")]:
        root = roots[name] = tmp_path / name
        for page, text in {**pages, f"faq/usage{suffix}": faq, f"faq/same{suffix}": "S\n=\n\nIs it fast?\n-----"
                           f"------\n\n:doc:`/{next(iter(pages)).removesuffix(suffix)}`\n"}.items():
            (root / page).parent.mkdir(parents=True, exist_ok=True)
            (root / page).write_text(text)
    (roots["sqlalchemy"] / "changelog").mkdir()
    (roots["sqlalchemy"] / "changelog/changelog_20.rst").write_text("2.0\n===\n\nSession news.\n")
    django = nq_bench.load_project("django", roots["django"])
    sqla = nq_bench.load_project("sqlalchemy", roots["sqlalchemy"])
    assert django[1] == load_django(roots["django"])[1]
    assert all(q.qid.startswith("faq/") for q in django[1])  # unprefixed: Django's dev/test split does not move
    assert all(q.qid.startswith("sqlalchemy:faq/") for q in sqla[1])
    ids = [q.qid for q in django[1] + sqla[1]]
    assert len(ids) == len(set(ids)) and len(sqla[1]) == 5
    # the same question in both FAQs is kept in each project, under two ids
    assert [q.qid for q in django[1] + sqla[1] if q.question == "Is it fast?"] == [
        "faq/same.txt::Is it fast?", "sqlalchemy:faq/same.rst::Is it fast?"]
    assert sorted(d.doc_id for d in sqla[0]) == sorted(API)  # no FAQ, no changelog


def test_sqlalchemy_docs_say_what_to_do_when_offline_and_nothing_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGFT_CACHE", str(tmp_path))

    def offline(url, **kw):
        raise nq_bench.urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(nq_bench.urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="could not download SQLAlchemy.*sqlalchemy-2.0.36.tar.gz"):
        nq_bench.project_docs(nq_bench.PROJECTS["sqlalchemy"])
