"""The task pairs: no QA item leaks into any training set, every pair has the QA's question shapes and the house format,
and the committed file is what the builder writes."""

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from ragft.builders import leaks
from ragft.builders import pairs as pair_builder
from ragft.core import house
from ragft.core.paths import DATA_DIR
from ragft.data import datasets
from ragft.evaluation.scoring import fact_present

TRAIN_DIR = DATA_DIR / "train"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def qa():
    return leaks.load_qa_rows()


@pytest.fixture(scope="module")
def pairs():
    return _rows(pair_builder.default_path())


def _train_files():
    return [pytest.param(f, id=f.name) for f in sorted(TRAIN_DIR.glob("*.jsonl"))]


def test_the_leak_check_sees_what_a_qa_item_asks_about(qa):
    banned = leaks.qa_asked_names(qa)
    removed = next(it for it in qa if it["id"] == "removed:float_")
    unanswerable = next(it for it in qa if it["kind"] == "unanswerable")
    fake = re.search(r"`np\.(\w+)`", unanswerable["question"]).group(1)
    assert {"np.float_", f"np.{fake}"} <= banned
    assert all(leaks.doc_name(i) in banned for it in qa for ids in it["gold_doc_ids"].values() for i in ids)
    leaky = {"prompt": "What does `np.float_` do?", "completion": house.ABSTAIN_ANSWER, "doc_id": None}
    assert leaks.pair_names(leaky) & banned == {"np.float_"}
    in_code = {"prompt": "Which NumPy function sums?", "completion": house.render("`np.foo`: x.", "np.float_(1)", ["numpy.foo"])}
    assert "np.float_" in leaks.pair_names(in_code)
    assert removed["required_facts"] == ["np.float64"]


@pytest.mark.parametrize("path", _train_files())
def test_no_qa_item_leaks_into_a_training_set(path, qa):
    banned = leaks.qa_asked_names(qa)
    qa_ids, questions = {it["id"] for it in qa}, {it["question"] for it in qa}
    rows = _rows(path)
    assert rows, f"{path} is empty"
    leaked = [(r["prompt"], sorted(leaks.pair_names(r) & banned)) for r in rows if leaks.pair_names(r) & banned]
    assert not leaked, f"{len(leaked)} of {len(rows)} pairs name a QA API, e.g. {leaked[:3]}"
    assert not [r for r in rows if r["prompt"] in questions], "a training prompt is a QA question"
    ids = {str(r.get("id", "")).removeprefix("pair:") for r in rows}
    assert not ids & qa_ids


def test_every_kind_is_present_with_a_modest_abstention_share(pairs):
    kinds = Counter(p["kind"] for p in pairs)
    assert set(kinds) == set(pair_builder.KINDS)
    assert 0.05 <= kinds["unanswerable"] / len(pairs) <= 0.15
    # NumPy's parameter changes a caller can see are few (79; the QA set asks about 40 of them, 20 for the locked test):
    # 20+ are left to train on
    assert len(pairs) >= 180 and kinds["changed_param"] >= 20 and kinds["removed"] >= 24
    assert kinds["unchanged"] <= 0.5 * len(pairs), "reverse lookups flood the set again"


def test_each_removal_is_asked_in_every_qa_phrasing(pairs):
    """Removals outside the QA set are few, so each is asked in all three of the removed kind's train phrasings."""
    removed = [p for p in pairs if p["kind"] == "removed" and "#" in p["id"]]
    by_fact = {}
    for p in removed:
        by_fact.setdefault(p["id"].rsplit("#", 1)[0], set()).add(p["prompt"])
    assert len(by_fact) >= 8
    assert all(len(prompts) == len(pair_builder.REMOVED_TEMPLATES) for prompts in by_fact.values()), by_fact


def test_pairs_have_the_fields_the_house_format_and_their_facts(pairs):
    for p in pairs:
        assert {"prompt", "completion", "kind", "doc_id", "version", "passage"} <= set(p), p["id"]
        parsed = house.parse(p["completion"])
        assert parsed.compliant, (p["id"], parsed.problems)
        if p["kind"] == "unanswerable":
            assert p["completion"] == house.ABSTAIN_ANSWER and p["doc_id"] is None and p["passage"] is None
            continue
        assert not parsed.abstained
        assert parsed.sources == [p["doc_id"]]
        assert p["passage"] and p["version"] in ("1.26.4", "2.0.2", "2.4.6")
        for fact in p["facts"]:
            assert fact_present(p["completion"], fact), (p["id"], fact)


def test_the_gold_passage_holds_the_answer(pairs):
    """What a RAFT prompt would show is enough to answer: the passage names the function (reverse lookups, aliases),
    the newer signature shows a gained parameter, the older one a lost parameter."""
    for p in pairs:
        if p["kind"] in ("added", "unchanged"):
            leaf = p["facts"][0].rsplit(".", 1)[-1]
            assert re.search(rf"\b{re.escape(leaf)}\b", p["passage"]), p["id"]
        if p["kind"] == "changed_param":
            sign = "+" if "+" in p["id"].rsplit(":", 1)[1] else "-"
            shown, other = (p["passage"], p["old_passage"]) if sign == "+" else (p["old_passage"], p["passage"])
            first = lambda text: text.split("\n", 1)[0]  # noqa: E731  the signature line
            assert re.search(rf"\b{p['facts'][0]}\b", first(shown)), p["id"]
            assert not re.search(rf"\b{p['facts'][0]}=", first(other)), p["id"]


def test_pairs_are_asked_only_in_train_phrasings(pairs, qa):
    """Every pair asked in one of the QA set's phrasings is asked in a TRAIN one, in every training file; each train
    phrasing of a kind has pairs of that kind; the QA set's unseen phrasings are asked by no pair at all."""
    unseen = [(ph, lost) for ph in datasets.PHRASINGS if not ph.seen for lost in (False, True) if not lost or ph.lost]
    for path in sorted(TRAIN_DIR.glob("*.jsonl")):
        hits = [r["prompt"] for r in _rows(path) for ph, lost in unseen if ph.pattern(lost).match(r["prompt"])]
        assert not hits, f"{path.name}: {len(hits)} prompts in an unseen phrasing, e.g. {hits[:3]}"
    for p in pairs:
        ph = datasets.phrasing_of(p["prompt"])
        assert p["phrasing"] == (ph.id if ph else None), p["id"]
        assert ph is None or (ph.seen and p["kind"] in ph.kinds), (p["id"], ph)
    asked = {(p["kind"], p["phrasing"]) for p in pairs}
    for kind in pair_builder.KINDS:
        assert {(kind, ph.id) for ph in datasets.phrasings_of(kind, seen=True)} <= asked, kind
    # and the other way round: what the QA set asks in a phrasing no pair uses is exactly its unseen half
    qa_phrasings = {it["phrasing"] for it in qa}
    assert qa_phrasings - {p["phrasing"] for p in pairs} == {ph.id for ph in datasets.PHRASINGS if not ph.seen}
    # the pairs of 2.0 -> 2.4 changes and of aliases are asked in training-only shapes, a few
    assert sum(p["phrasing"] is None for p in pairs) <= sum(p["source"] in ("alias", "deprecation", "signature") for p in pairs)


def test_name_a_parameter_share_is_a_setting(qa):
    """Gained-parameter pairs are asked "Name a parameter ..." at the share set (0 by default: it is an unseen
    phrasing), the rest in the changed_param kind's train phrasings."""
    def asked(share):
        pairs = pair_builder.build_pairs(pair_builder.PairSettings(name_a_parameter_share=share), qa=qa)
        gained = [p for p in pairs if p["kind"] == "changed_param" and "+" in p["id"].rsplit(":", 1)[1]]
        return sum(p["prompt"].startswith("Name a parameter") for p in gained), len(gained)

    (default, n), (some, _), (every, _) = asked(pair_builder.PairSettings.name_a_parameter_share), asked(0.4), asked(1.0)
    assert default == 0 < some < every == n >= 15
    with pytest.raises(ValueError, match="name_a_parameter_share"):
        pair_builder.PairSettings(name_a_parameter_share=1.5)


def test_builder_is_deterministic_and_matches_the_committed_file(pairs):
    again = pair_builder.build_pairs()
    assert [p["id"] for p in again] == [p["id"] for p in pairs]
    assert again == pairs


def test_abstention_share_is_a_setting(qa):
    few = pair_builder.build_pairs(pair_builder.PairSettings(abstain_share=0.05), qa=qa)
    share = sum(p["kind"] == "unanswerable" for p in few) / len(few)
    assert 0.04 <= share <= 0.06
    with pytest.raises(ValueError):
        pair_builder.PairSettings(abstain_share=0.6)


def test_abstention_shapes_own_asks_every_fabricated_name_in_the_old_abstention_phrasing(pairs, qa):
    """The default "all" spreads abstentions over every train phrasing the QA set asks invented names in; "own" asks
    them all in "What does `np.X` return ...", the one train phrasing that used to mean "invented"; names unchanged."""
    default = {p["phrasing"] for p in pairs if p["kind"] == "unanswerable"}
    assert default == {ph.id for ph in datasets.phrasings_of("unanswerable", seen=True)}
    own = pair_builder.build_pairs(pair_builder.PairSettings(abstain_shapes="own"), qa=qa)
    assert [p["id"] for p in own] == [p["id"] for p in pairs]
    assert {p["phrasing"] for p in own if p["kind"] == "unanswerable"} == {"name:what-return"}
    assert all(p["id"].split(":")[-1] in p["prompt"] for p in own if p["kind"] == "unanswerable")
    with pytest.raises(ValueError, match="abstain_shapes"):
        pair_builder.PairSettings(abstain_shapes="some")


def test_house_style_builder_matches_the_committed_file(tmp_path, qa):
    """data/train/house_style.jsonl is what `python -m ragft.builders train` writes: no pair about a QA item's API,
    abstentions 15% of the pairs."""
    from ragft.builders.qa import build_train
    from ragft.core.paths import train_path

    rows = build_train(out=tmp_path / "house_style.jsonl")
    assert (tmp_path / "house_style.jsonl").read_text() == train_path().read_text()
    assert not [r for r in rows if leaks.pair_names(r) & leaks.qa_asked_names(qa)]
    assert 0.13 <= sum(r["kind"] == "abstain" for r in rows) / len(rows) <= 0.16


def test_task_pairs_and_the_fact_update_pairs_share_one_answer_shape(pairs):
    """The fair fine-tuned arm's update (`training.pairs.fact_update_pairs`) answers a removal notice and a 1.26 -> 2.x
    parameter change exactly as the task pairs do, and an added API with the same sentence: one copy of each shape."""
    from ragft.data.corpus import load_corpus
    from ragft.training.pairs import fact_update_pairs

    facts = fact_update_pairs(load_corpus("1.26.4"), load_corpus("2.4.6"))
    completions = {p["completion"] for p in facts}
    sentences = {house.parse(p["completion"]).sentence for p in facts}
    shared = [p for p in pairs if p["source"] == "removal_notice"
              or (p["kind"] == "changed_param" and p["id"].startswith("pair:changed_param:1.26.4:"))]
    assert len(shared) >= 20
    assert [p["id"] for p in shared if p["completion"] not in completions] == []
    added = [p for p in pairs if p["kind"] == "added" and p["source"] == "summary"]
    assert added and [p["id"] for p in added if house.parse(p["completion"]).sentence not in sentences] == []
