"""The committed data: corpora, QA set and training set are present, consistent, and their truth is re-checkable."""

import dataclasses
import json
import re
from collections import Counter

import pytest

from ragft.builders import qa as qa_builder
from ragft.core import house
from ragft.core.paths import CURRENT_VERSION, NUMPY_VERSIONS, OLD_VERSION, qa_path
from ragft.data import corpus, datasets


def test_corpora_cover_the_three_versions_with_stable_ids():
    docs = {v: corpus.load_corpus(v) for v in NUMPY_VERSIONS}
    assert all(len(d) > 900 for d in docs.values())
    ids = {v: {d.doc_id for d in ds} for v, ds in docs.items()}
    assert "numpy.float_" in ids["1.26.4"] and "numpy.float_" not in ids["2.4.6"]
    assert "removed:numpy.float_" in ids["2.4.6"]
    assert "numpy.trapz" in ids["2.0.2"] and "numpy.trapz" not in ids["2.4.6"]
    argsort = {v: next(d for d in ds if d.doc_id == "numpy.argsort") for v, ds in docs.items()}
    assert "stable" not in argsort["1.26.4"].metadata["signature"] and "stable" in argsort["2.4.6"].metadata["signature"]


def test_qa_set_kinds_splits_and_gold_ids_exist():
    items = datasets.load_qa(split=None)
    kinds = Counter(i.kind for i in items)
    assert set(kinds) == set(datasets.KINDS) and len(items) >= 300  # the thesis issue: at least 300 verified items
    assert {i.split for i in items} == set(datasets.SPLITS)
    ids = {v: {d.doc_id for d in corpus.load_corpus(v)} for v in NUMPY_VERSIONS}
    for it in items:
        for v in NUMPY_VERSIONS:
            assert set(it.gold_doc_ids[v]) <= ids[v], (it.id, v)
        if it.accepted_facts:  # one of several right answers: each of them verified by its own sibling item
            assert set(it.required_facts) <= set(it.accepted_facts) and len(it.accepted_facts) > 1, it.id
            siblings = {f for o in items if o.question == it.question for f in o.required_facts}
            assert siblings <= set(it.accepted_facts), it.id
        if it.answerable:
            assert it.required_facts and it.gold_doc_ids[NUMPY_VERSIONS[-1]], it.id
        else:
            assert not any(it.gold_doc_ids.values())


def test_split_is_fixed_by_what_earlier_runs_used():
    """dev stays dev; what an earlier test sample drew (notebook 05's 80 questions) is validation; the locked test is
    what no earlier run drew: earlier test items no sample reached, and items new to the QA set."""
    earlier = qa_builder.load_earlier_runs()
    items = datasets.load_qa(split=None)
    for it in items:
        assert qa_builder.split_of(it.id, earlier) == it.split
    test = [it for it in items if it.split == "test"]
    assert not {it.id for it in test} & (earlier["dev"] | earlier["drawn"])
    assert {it.id for it in items if it.split == "validation"} <= earlier["drawn"]
    # the workshop sample of today's file: every item still in the QA set is in validation
    last = datasets.load_qa("validation") + [it for it in items if it.id in earlier["drawn"]]
    assert {it.split for it in last} == {"validation"}
    assert len(test) >= 150 and {k for k in datasets.KINDS if any(it.kind == k for it in test)} >= {
        "removed", "changed_param", "unchanged", "unanswerable"}
    with pytest.raises(ValueError, match="unknown split 'tset'"):
        datasets.load_qa("tset")


def test_sample_is_stratified_and_deterministic():
    dev = datasets.load_qa("dev")
    a, b = datasets.sample(dev, 10, seed=1), datasets.sample(dev, 10, seed=1)
    assert [i.id for i in a] == [i.id for i in b] and len(a) == 10
    assert len({i.kind for i in a}) == len(datasets.KINDS)


def test_no_two_questions_ask_the_same_thing():
    """No duplicated question text (normalized) and no two items asking the same fact: a question that accepts any
    of several gained parameters is asked once per function, not once per parameter (the old nanstd / var twins)."""
    items = datasets.load_qa(split=None)
    texts = Counter(datasets.normalized_question(it.question) for it in items)
    facts = Counter(datasets.asked_fact(it) for it in items)
    assert not [t for t, n in texts.items() if n > 1] and not [f for f, n in facts.items() if n > 1]
    twin = datasets.QAItem("changed_param:var+mean", "changed_param", "Q", ["mean"], [], {}, "test",
                           accepted_facts=["correction", "mean"])
    assert datasets.asked_fact(twin) == "changed_param:var+" == datasets.asked_fact(
        dataclasses.replace(twin, id="changed_param:var+correction"))
    kept, dropped = qa_builder.dedupe([{"id": "changed_param:var+correction", "kind": "changed_param",
                                        "required_facts": ["correction"], "stale_facts": [], "gold_doc_ids": {},
                                        "accepted_facts": ["correction", "mean"]},
                                       {"id": "changed_param:var+mean", "kind": "changed_param", "required_facts": ["mean"],
                                        "stale_facts": [], "gold_doc_ids": {}, "accepted_facts": ["correction", "mean"]}])
    assert [k["id"] for k in kept] == ["changed_param:var+correction"] and dropped == ["changed_param:var+mean"]


def test_phrasings_give_nothing_away():
    """Each kind is asked in 4+ phrasings, train and unseen; every phrasing that names an API holds real and invented
    names alike (summary phrasings name none, so no invented name can be asked in them); each item's question is in
    its phrasing, and every split holds both train and unseen phrasings of every kind it has."""
    items = datasets.load_qa(split=None)
    for kind in datasets.KINDS:
        options = datasets.phrasings_of(kind)
        assert len(options) >= 4 and any(p.seen for p in options) and not all(p.seen for p in options), kind
    for it in items:
        ph = datasets.PHRASING[it.phrasing]
        assert it.kind in ph.kinds and it.phrasing_seen == ph.seen and it.phrasing_seen == (it.phrasing in datasets.TRAIN_PHRASINGS)
        assert datasets.phrasing_of(it.question) is ph, it.id
    held = {(it.phrasing, it.answerable) for it in items}
    for ph in datasets.PHRASINGS:
        if "unanswerable" in ph.kinds:
            assert {(ph.id, True), (ph.id, False)} <= held, ph.id
        else:
            assert (ph.id, False) not in held and {it.kind for it in items if it.phrasing == ph.id} == set(ph.kinds), ph.id
    for split in datasets.SPLITS:
        for kind in datasets.KINDS:
            seen = {it.phrasing_seen for it in items if it.split == split and it.kind == kind}
            assert seen in (set(), {True, False}), (split, kind)


def test_an_invented_name_can_still_be_asked_in_an_answerable_shape():
    qa = datasets.load_qa(split=None)
    fabricated = [it for it in qa if not it.answerable]
    asked = [datasets.in_answerable_shape(it) for it in fabricated]
    for it, new in zip(fabricated, asked, strict=True):
        name = re.search(r"`(np\.[^`]+)`", it.question).group(1)
        assert name in new.question and datasets.phrasing_of(new.question) is not None
        assert (new.id, new.kind, new.required_facts, new.gold_doc_ids) == (it.id, it.kind, [], it.gold_doc_ids)
    assert [q.question for q in asked] == [datasets.in_answerable_shape(it).question for it in fabricated]
    with pytest.raises(ValueError, match="only an unanswerable item"):
        datasets.in_answerable_shape(next(it for it in qa if it.answerable))


def test_subset_corpus_keeps_every_gold_document():
    items = datasets.sample(datasets.load_qa("dev"), 8)
    docs = corpus.load_corpus("2.4.6")
    sub = datasets.subset_corpus(docs, items, "2.4.6", n_docs=100)
    assert len(sub) == 100
    assert set().union(*(i.gold("2.4.6") for i in items)) <= {d.doc_id for d in sub}


def test_training_pairs_are_in_house_format_with_abstentions():
    pairs, report = datasets.load_train_pairs()
    assert report.ok and len(pairs) > 500
    assert all(house.parse(p["completion"]).compliant for p in pairs)
    share = sum(p["kind"] == "abstain" for p in pairs) / len(pairs)
    assert 0.1 < share < 0.2
    qa_fakes = {i.id.split(":", 1)[1] for i in datasets.load_qa(None, kinds=("unanswerable",))}
    assert not any(f"`np.{x}`" in p["prompt"] for p in pairs for x in qa_fakes), "QA abstention items leak into training"


@pytest.mark.slow
def test_truth_is_rechecked_under_real_numpy_and_false_items_dropped(tmp_path):
    """Downloads the three NumPy wheels (cached) and re-runs proofs; a deliberately false claim must be dropped."""
    rows = [json.loads(line) for line in qa_path().read_text().splitlines()]
    sample = [r for r in rows if r["id"] in ("removed:float_", "changed_param:sort+stable")]
    sample += [dict(r, id=r["id"] + "-unverified") for r in rows if r["kind"] == "unanswerable"][:1]
    assert len(sample) == 3
    false_claim = json.loads(json.dumps(next(r for r in sample if r["id"] == "removed:float_")))
    false_claim["id"] = "removed:float_-false"
    false_claim["verify"]["expect"]["2.4.6"] = [True, True]  # claims np.float_ still exists in 2.4.6
    # the old proof's mistake: 1.26's np.ma.prod is `(a, *args, **params)` and took keepdims= already
    wrapper = {"id": "changed_param:ma.prod+keepdims", "kind": "changed_param",
               "verify": {"code": "result = [_accepts('ma.prod', 'keepdims')]",
                          "expect": {"1.26.4": [False], "2.0.2": [None], "2.4.6": [True]}}}
    kept, dropped = qa_builder.verify_items(sample + [false_claim, wrapper], tmp_path)
    assert {k["id"] for k in kept} == {s["id"] for s in sample}
    assert dropped == Counter({"removed": 1, "changed_param": 1})
    observed = {k["id"]: k["verify"]["observed"] for k in kept}
    assert observed["removed:float_"]["2.4.6"] == [False, True]
    assert [observed["changed_param:sort+stable"][v] for v in NUMPY_VERSIONS] == [[False], [True], [True]]


def test_changed_parameters_are_changes_a_caller_sees():
    """A parameter "gained" in 2.x was not taken by a `**kwargs` of 1.26 (the `np.ma` wrappers of 1.26 are
    `(a, *args, **params)` and forward every keyword), a "lost" one is not taken by one in 2.x, and `*args` is never one."""

    sigs = {v: {d.doc_id: d.metadata.get("signature", "") for d in corpus.load_corpus(v)} for v in (OLD_VERSION, CURRENT_VERSION)}
    items = datasets.load_qa(None, kinds=("changed_param",))
    assert len(items) >= 30
    for it in items:
        path, sign, p = re.fullmatch(r"changed_param:(.+)([+-])(\w+)", it.id).groups()
        old, new = sigs[OLD_VERSION]["numpy." + path], sigs[CURRENT_VERSION]["numpy." + path]
        assert qa_builder.accepts_keyword(old, p) is (sign == "-") and qa_builder.accepts_keyword(new, p) is (sign == "+"), it.id
    # the rule itself: what 1.26's np.ma.prod forwarded is not new, and a wrapper's *args is not a lost parameter
    assert corpus.changed_params("(a, *args, **params)", "(a, axis=None, dtype=None, keepdims=<no value>)") == ([], [])
    assert corpus.changed_params("(x, *args, **params)", "(ary, indices_or_sections)") == ([], ["x"])
    assert corpus.changed_params("(a, axis=-1)", "(a, axis=-1, *, stable=None)") == (["stable"], [])


def test_change_notes_say_what_a_signature_gained_or_lost_in_a_chunk_of_their_own():
    from ragft.retrieval.chunking import ChunkConfig, chunk_documents
    from ragft.retrieval.retrievers import BM25Retriever

    old = corpus.load_corpus(OLD_VERSION)
    new = {d.doc_id: d for d in corpus.load_corpus(CURRENT_VERSION)}
    picked = [new[n] for n in ("numpy.fft.ifft2", "numpy.corrcoef", "numpy.searchsorted", "removed:numpy.float_",
                               "numpy.linalg.cholesky")]
    texts = [d.text for d in picked]
    noted = corpus.with_change_notes(picked, old)
    assert [d.text for d in picked] == texts and "change_notes" not in picked[0].metadata  # inputs untouched
    ifft2, corrcoef, searchsorted, removal, cholesky = noted
    # cholesky's docstring never says that `upper` is new (no release note in its entry); its change note does
    assert ".. version" not in new["numpy.linalg.cholesky"].text.split("upper : ")[1].split("Returns")[0]
    assert cholesky.metadata["change_notes"]["gained"] == ["upper"]
    assert ifft2.metadata["change_notes"] == {"since": OLD_VERSION, "gained": ["out"], "lost": []}
    assert ifft2.text.endswith("\nGained in NumPy 2.4.6 (not in NumPy 1.26): `out`.")
    assert corrcoef.metadata["change_notes"]["lost"] == ["bias", "ddof"]
    assert corrcoef.text.endswith("\nLost in NumPy 2.4.6 (accepted in NumPy 1.26, no longer exists): `bias`, `ddof`.")
    assert searchsorted is picked[2] and removal is picked[3]  # unchanged signature / no signature: the same objects
    assert all(a is b for a, b in zip(corpus.with_change_notes(noted, old), noted, strict=True))  # noted once only
    # every noted fact is a real difference of the two wheels' signatures: the QA set's own check agrees
    sigs = {d.doc_id: d.metadata.get("signature", "") for d in old}
    for d in (ifft2, corrcoef, cholesky):
        for p in d.metadata["change_notes"]["gained"]:
            assert not qa_builder.accepts_keyword(sigs[d.doc_id], p) and qa_builder.accepts_keyword(d.metadata["signature"], p)
        for p in d.metadata["change_notes"]["lost"]:
            assert qa_builder.accepts_keyword(sigs[d.doc_id], p) and not qa_builder.accepts_keyword(d.metadata["signature"], p)
    # the structure chunker makes the notes a chunk of their own, and a changed-parameter question finds it first
    chunks = chunk_documents([ifft2], ChunkConfig("structure"))
    assert chunks[-1].text.startswith(corpus.CHANGE_NOTES_SECTION) and "`out`" in chunks[-1].text
    hits = BM25Retriever.from_docs(noted, ChunkConfig("structure")).search(
        "Which keyword argument did `np.fft.ifft2` gain in NumPy 2.x that it did not have in NumPy 1.26?", top_k=1)
    assert corpus.CHANGE_NOTES_SECTION in hits[0].text and hits[0].doc_id == "numpy.fft.ifft2"
