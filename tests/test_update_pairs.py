"""The fair fine-tuned arm's update data: every fact that changed between two releases' documents, asked in several
TRAIN phrasings, answered in the house format, and enough steps to see each pair several times."""

from collections import Counter

import pytest

from ragft.core import house
from ragft.data import datasets
from ragft.data.corpus import Document, load_corpus
from ragft.evaluation.scoring import fact_present
from ragft.training import finetune
from ragft.training import pairs as pr


def _fn(name: str, signature: str, summary: str, version: str, example: str = "np.{leaf}([1, 2])") -> Document:
    leaf = name.rsplit(".", 1)[-1]
    text = f"{name}{signature}\n\n{summary}\n\nExamples\n--------\n>>> " + example.format(leaf=leaf)
    return Document(name, text, metadata={"kind": "function", "signature": signature, "version": version})


@pytest.fixture(scope="module")
def docs():
    old = [_fn("numpy.spin", "(a, axis=None)", "Spin the elements of an array around.", "1.26.4"),
           _fn("numpy.twirl", "(a, axis=None)", "Twirl the elements of an array in place.", "1.26.4"),
           _fn("numpy.legacy_sum", "(a)", "Add up an array the old way.", "1.26.4")]
    new = [_fn("numpy.spin", "(a, axis=None, *, stable=None)", "Spin the elements of an array around.", "2.4.6"),
           _fn("numpy.twirl", "(a, axis=None)", "Twirl the elements of an array in place.", "2.4.6"),
           _fn("numpy.widget_count", "(a)", "Count the widgets along an axis of an array.", "2.4.6"),
           Document("removed:numpy.legacy_sum", "numpy.legacy_sum was removed in NumPy 2.0.",
                    metadata={"name": "numpy.legacy_sum", "kind": "removal_notice", "version": "2.4.6",
                              "advice": "Use `np.sum` instead. It is faster."})]
    return old, new


def _by_fact(pairs: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in pairs:
        out.setdefault(p["fact"], []).append(p)
    return out


def test_each_changed_fact_is_stated_in_its_answer_sentence(docs):
    pairs = pr.fact_update_pairs(*docs)
    by_fact = _by_fact(pairs)
    assert set(by_fact) == {"removed:np.legacy_sum", "added:np.widget_count", "changed_param:np.spin+stable"}
    expected = {"removed:np.legacy_sum": ["np.sum"], "added:np.widget_count": ["np.widget_count"],
                "changed_param:np.spin+stable": ["stable"]}
    for fact, ps in by_fact.items():
        for p in ps:
            sentence = house.parse(p["completion"]).sentence
            assert p["facts"] == expected[fact]
            assert all(fact_present(sentence, f) for f in p["facts"]), (fact, sentence)
    removed = by_fact["removed:np.legacy_sum"][0]
    assert house.parse(removed["completion"]).sentence == "`np.legacy_sum` was removed in NumPy 2.0: Use `np.sum` instead."
    assert "gained the `stable` parameter in NumPy 2.x" in by_fact["changed_param:np.spin+stable"][0]["completion"]
    assert "(new in NumPy 2.x): Count the widgets" in by_fact["added:np.widget_count"][0]["completion"]


def test_pairs_use_only_train_phrasings_several_per_fact_in_the_house_format(docs):
    pairs = pr.fact_update_pairs(*docs, phrasings=3)
    for fact, ps in _by_fact(pairs).items():
        kind = ps[0]["kind"]
        train = datasets.phrasings_of(kind, seen=True)
        assert len(ps) == min(3, len(train)) >= 2, fact  # several phrasings, never more than the train ones
        assert len({p["prompt"] for p in ps}) == len(ps) and len({p["completion"] for p in ps}) == 1
        for p in ps:
            ph = datasets.phrasing_of(p["prompt"])
            assert ph is not None and ph.id == p["phrasing"] and ph.id in datasets.TRAIN_PHRASINGS, p["prompt"]
            assert kind in ph.kinds
            parsed = house.parse(p["completion"])
            assert parsed.compliant and not parsed.abstained, parsed.problems
            assert parsed.sources == [p["doc_id"]]


def test_the_phrasing_count_and_seed_choose_among_train_phrasings_only(docs):
    one = pr.fact_update_pairs(*docs, phrasings=1)
    assert Counter(p["fact"] for p in one) == Counter({f: 1 for f in {p["fact"] for p in one}})
    assert pr.fact_update_pairs(*docs, seed=3) == pr.fact_update_pairs(*docs, seed=3)  # deterministic
    picked = {seed: {p["phrasing"] for p in pr.fact_update_pairs(*docs, phrasings=1, seed=seed)} for seed in range(8)}
    assert len({frozenset(v) for v in picked.values()}) > 1  # the seed picks which phrasing when there are more
    assert all(v <= datasets.TRAIN_PHRASINGS for v in picked.values())
    with pytest.raises(ValueError):
        pr.fact_update_pairs(*docs, phrasings=0)


def test_nothing_to_learn_when_nothing_changed(docs):
    old, new = docs
    assert pr.fact_update_pairs(new, new) == []
    assert pr.update_facts(old, old) == []


def test_releases_are_named_as_the_questions_name_them():
    assert pr.release_labels("1.26.4", "2.4.6") == ("1.26", "2.x")
    assert pr.release_labels("2.0.2", "2.4.6") == ("2.0", "2.4")


@pytest.mark.parametrize("n_pairs,batch_size,repeats,grad_accumulation,held_out", [
    (37, 4, 3, 1, 0), (50, 3, 2, 2, 0), (100, 8, 4, 1, 32), (10, 4, 1, 1, 32)])
def test_steps_for_shows_every_pair_at_least_repeats_times(n_pairs, batch_size, repeats, grad_accumulation, held_out):
    steps = pr.steps_for(n_pairs, batch_size, repeats, grad_accumulation, held_out)
    n_train = n_pairs - held_out if 2 * held_out <= n_pairs else n_pairs  # as finetune.split_pairs holds out
    seen = Counter(i for step in range(steps) for micro in range(grad_accumulation)
                   for i in finetune.batch_indices(n_train, step, micro, batch_size, grad_accumulation, seed=0))
    assert len(seen) == n_train and min(seen.values()) >= repeats
    assert (steps - 1) * batch_size * grad_accumulation < n_train * repeats  # and no step more than that takes


def test_steps_for_rejects_nonsense():
    with pytest.raises(ValueError):
        pr.steps_for(10, 0, 3)
    with pytest.raises(ValueError):
        pr.steps_for(10, 4, 0)


@pytest.fixture(scope="module")
def real():
    old, new = load_corpus("1.26.4"), load_corpus("2.4.6")
    return pr.update_facts(old, new), pr.fact_update_pairs(old, new)


def test_the_real_update_states_every_kind_of_change_in_several_phrasings(real):
    facts, pairs = real
    kinds, pair_kinds = Counter(f["kind"] for f in facts), Counter(p["kind"] for p in pairs)
    print(f"\n{len(facts)} facts {dict(kinds)}; {len(pairs)} pairs {dict(pair_kinds)}")
    assert set(kinds) == set(pr.FACT_KINDS) and kinds["removed"] >= 40 and kinds["changed_param"] >= 40
    per_fact = Counter(p["fact"] for p in pairs)
    assert set(per_fact) == {f["id"] for f in facts} and min(per_fact.values()) >= 2
    assert {p["phrasing"] for p in pairs} <= datasets.TRAIN_PHRASINGS
    assert all(house.parse(p["completion"]).compliant for p in pairs)
    assert len({p["id"] for p in pairs}) == len(pairs)


def test_retrain_on_update_trains_own_pairs_plus_every_fact_until_each_is_seen_repeats_times(docs, monkeypatch):
    from ragft import systems
    from ragft.training import draws

    old, new = docs
    calls = []

    def fake_train(pairs, lora, train, model_name, show_progress):
        calls.append((list(pairs), train))
        return f"adapter-{train.steps}"

    monkeypatch.setattr(draws.finetune, "train_or_load_adapter", fake_train)
    monkeypatch.setattr(draws.finetune, "read_training_log", lambda path: {"steps": int(path.split("-")[1])})
    settings = systems.ArmSettings(training=systems.TrainingSettings(train_steps=5))
    update = draws.retrain_on_update(settings, old, new, repeats=3)
    own, _ = datasets.load_train_pairs(draws.TRAINING_SETS["task"][0]())
    assert update.own_pairs == own and update.refresh_counts == {"unchanged": len(own)}
    assert {p["fact"] for p in update.new_pairs} == {f["id"] for f in pr.update_facts(old, new)}
    trained, train = calls[0]
    assert trained == own + update.new_pairs and train.lr == settings.sft_train().lr
    assert update.steps == train.steps == update.log["steps"] == pr.steps_for(
        len(trained), train.batch_size, 3, train.grad_accumulation, train.held_out)
    assert draws.retrain_on_update(settings, old, new, repeats=3, max_steps=7).steps == 7  # the smoke cap
    few = systems.ArmSettings(training=systems.TrainingSettings(train_steps=10_000))
    assert draws.retrain_on_update(few, old, new).steps == 10_000  # never fewer steps than the arm itself trained
