"""The locked-test protocol without running a notebook: the committed claims file, a family of claims decided with
Holm-Bonferroni from recorded per-question results, and scripts/final.py's refusals, in a temporary git repository."""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from ragft import evaluation

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = ROOT / "claims" / "final.json"
KINDS = ["removed", "added", "changed_param", "unchanged", "unanswerable"]


def _final():
    spec = importlib.util.spec_from_file_location("final", ROOT / "scripts" / "final.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def per_question(n: int = 60) -> list[dict]:
    """Fake results of notebook 05's arms: rag right on most changed questions, base on none, raft a little ahead of
    hybrid, the tuned arms in the house format and abstaining on unanswerable names."""
    rows = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        changed = kind in ("removed", "added", "changed_param")
        flags = {"base": (False, False, False), "rag": (changed and i % 7 != 0, False, False),
                 "fine-tuned": (kind == "unanswerable", True, kind == "unanswerable"),
                 "fine-tuned, retrained": (changed and i % 3 == 0, True, False),
                 "hybrid": (changed and i % 7 != 0, True, kind == "unanswerable"),
                 "raft": ((changed and i % 7 != 0) or i % 4 == 0, True, kind == "unanswerable")}
        for arm, (correct, compliant, abstained) in flags.items():
            if arm == "fine-tuned, retrained" and not changed:
                continue  # the retrained arm answers the changed questions only, as in notebook 05
            rows.append({"arm": arm, "id": f"{kind}:q{i}", "kind": kind, "correct": correct, "compliant": compliant,
                         "abstained": abstained, "phrasing_seen": i % 2 == 0, "answer": "not recorded"})
    return rows


def test_the_committed_claims_file_is_valid_and_names_the_locked_run():
    cf = evaluation.load_claims_file(CLAIMS)
    assert (cf.notebook, cf.profile, cf.split, cf.alpha) == ("05_hybrid", "full", "test", 0.05)
    assert len(cf.claims) >= 7 and len({c.id for c in cf.claims}) == len(cf.claims)
    assert cf.sha256 == evaluation.claims_sha256(CLAIMS) and len(cf.sha256) == 64
    assert any(c.b == "fine-tuned, retrained" for c in cf.claims)  # the update is decided against the retrained arm
    assert all((c.margin is None) == (c.direction == "greater") for c in cf.claims)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(alpha=1.5), "alpha"),
    (lambda d: d["claims"][0].update(direction="better"), "direction"),
    (lambda d: d["claims"][0].update(questions="everything"), "questions"),
    (lambda d: d["claims"][1].update(id=d["claims"][0]["id"]), "unique"),
    (lambda d: d["claims"][0].update(margin=0.05), "margin"),
    (lambda d: d["claims"][0].update(alpha=0.01), "alpha"),
    (lambda d: d["claims"][0].pop("hypothesis"), "hypothesis"),
    (lambda d: d.update(parameters={"SPLIT": "dev"}), "parameters"),
    (lambda d: d.update(claims=[]), "claims"),
])
def test_a_claims_file_with_a_problem_is_refused(tmp_path, change, message):
    data = json.loads(CLAIMS.read_text())
    change(data)
    path = tmp_path / "claims.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=message):
        evaluation.load_claims_file(path)


def test_a_claims_file_is_decided_as_one_holm_family():
    cf = evaluation.load_claims_file(CLAIMS)
    rows = evaluation.decide_claims_file(cf, per_question())
    by_id = {r["id"]: r for r in rows}
    assert [r["id"] for r in rows] == [c.id for c in cf.claims]
    tested = [r for r in rows if r["verdict"] != "not tested"]
    assert len(tested) == len(rows) and all(r["family"] == len(tested) for r in tested)
    assert all(r["p_raw"] <= r["p_adjusted"] <= 1 for r in tested)
    assert by_id["rag-over-base-current"]["verdict"] == "supported"
    assert by_id["rag-over-base-current"]["n"] == 36  # the changed questions, paired
    assert by_id["update-rag-over-retrained"]["b"] == "fine-tuned, retrained"
    assert by_id["hybrid-keeps-rag-current"]["p_test"] == "bootstrap"
    assert by_id["raft-over-rag-unseen-phrasing"]["n"] == 24  # answerable (48 of 60), asked in an unseen phrasing (half)
    # an arm the results lack: "not tested", and out of the family
    rows = evaluation.decide_claims_file(cf, [r for r in per_question() if r["arm"] != "raft"])
    assert {r["verdict"] for r in rows if r["a"] == "raft"} == {"not tested"}
    assert {r["family"] for r in rows if r["a"] != "raft"} == {len(cf.claims) - 3}
    # results that do not record the phrasing leave the phrasing claim untested, never decided on other questions
    rows = evaluation.decide_claims_file(cf, [{k: v for k, v in r.items() if k != "phrasing_seen"} for r in per_question()])
    assert {r["verdict"] for r in rows if r["questions"] == "answerable_unseen_phrasing"} == {"not tested"}


def test_correct_demotes_what_passes_only_alone_and_conclusions_say_so():
    rows = []
    for i in range(20):  # 10 vs 2 discordant questions: McNemar p 0.039 alone
        a, b = (i < 10 or i >= 12), (i >= 10)
        rows += [{"arm": "x", "id": f"q{i}", "kind": "removed", "correct": a},
                 {"arm": "y", "id": f"q{i}", "kind": "removed", "correct": b}]
    claim = ("x beats y", "x", "y", "correct", "all", None)
    one = evaluation.story(pd.DataFrame(rows), claims=[claim] * 3)
    assert {c["verdict"] for c in one} == {"supported"}  # each alone
    fam = evaluation.correct(one)
    assert {c["verdict"] for c in fam} == {"not separable at this n"} and {c["unadjusted_verdict"] for c in fam} == {"supported"}
    assert fam[0]["p_raw"] == one[0]["p_mcnemar"] and fam[0]["p_adjusted"] == pytest.approx(min(1, 3 * one[0]["p_mcnemar"]))
    metrics = pd.DataFrame({"changed_accuracy": [0.5], "format_compliance": [0.5], "abstention_recall": [0.5]}, index=["x"])
    text = evaluation.conclusions(metrics, fam, header="h")
    assert "Holm-adjusted" in text and "3 claims are corrected together" in text
    assert evaluation.correct(evaluation.story(pd.DataFrame(rows), claims=[claim]))[0]["verdict"] == "supported"
    # old rows without p_raw: McNemar's p stands in for a claim without margin
    old = [{k: v for k, v in one[0].items() if k not in ("p_raw", "p_test")}]
    assert evaluation.correct(old)[0]["p_raw"] == one[0]["p_mcnemar"]


def test_per_question_records_keep_the_columns_claims_need_once_per_arm_and_question():
    df = pd.DataFrame(per_question(10))
    recs = evaluation.per_question_records(pd.concat([df, df]))
    assert len(recs) == len(df) and set(recs[0]) == {"arm", "id", "kind", "correct", "compliant", "abstained",
                                                      "phrasing_seen"}  # the columns it has of PER_QUESTION_COLUMNS
    json.dumps(recs)  # it goes into the figures JSON as it is


# --- scripts/final.py in a temporary git repository -------------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "claims").mkdir(parents=True)
    _git(root, "init", "-q")
    shutil.copy(CLAIMS, root / "claims" / "final.json")
    (root / "README").write_text("x\n")
    _git(root, "add", "README")
    _git(root, "commit", "-q", "-m", "start")
    return root


def fake_run(per_q=None, split="test"):
    calls = []

    def run(cf, out):
        calls.append(cf)
        path = out / "figures" / f"{cf.notebook}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"split": split, "n_questions": 60,
                                    "per_question": per_question() if per_q is None else per_q}))
        return path
    run.calls = calls
    return run


def test_final_refuses_claims_that_are_not_committed(repo, tmp_path, capsys):
    final, run = _final(), fake_run()
    args = ["--claims", str(repo / "claims" / "final.json"), "--out", str(tmp_path / "out")]
    assert final.main(args, run=run) == 2  # untracked
    assert "uncommitted" in capsys.readouterr().err
    _git(repo, "add", "claims/final.json")
    assert final.main(args, run=run) == 2  # staged, not committed
    _git(repo, "commit", "-q", "-m", "claims")
    (repo / "claims" / "final.json").write_text((repo / "claims" / "final.json").read_text().replace("0.05", "0.1", 1))
    assert final.main(args, run=run) == 2  # changed after the commit
    assert run.calls == [] and not (tmp_path / "out").exists()
    assert not (repo / "claims" / "final.runs.jsonl").exists()


def test_final_runs_once_records_the_hash_and_commit_and_refuses_a_second_run(repo, tmp_path, capsys):
    final, run = _final(), fake_run()
    _git(repo, "add", "claims/final.json")
    _git(repo, "commit", "-q", "-m", "the claims, before the run")
    claims, out = repo / "claims" / "final.json", tmp_path / "out"
    args = ["--claims", str(claims), "--out", str(out)]
    assert final.main([*args, "--check"], run=run) == 0 and run.calls == []  # a check runs nothing
    assert final.main(args, run=run) == 0
    cf = run.calls[0]
    assert (cf.profile, cf.split) == ("full", "test")
    result = json.loads((out / "claims.json").read_text())
    assert result["claims_sha256"] == evaluation.claims_sha256(claims)
    assert result["commit"] == _git(repo, "rev-parse", "HEAD") == result["claims_commit"]
    assert result["worktree_clean"] and result["date"] and result["again"] is None
    assert result["family_size"] == len(cf.claims) and result["alpha"] == 0.05
    assert all({"id", "claim", "p_raw", "p_adjusted", "verdict", "unadjusted_verdict"} <= set(c) for c in result["claims"])
    assert "| p raw | p Holm |" in (out / "claims.md").read_text()
    ledger = [json.loads(x) for x in (repo / "claims" / "final.runs.jsonl").read_text().splitlines()]
    assert [e["status"] for e in ledger] == ["started", "done"]
    # once per claims file: refused again, even with the result folder gone (the ledger remembers)
    shutil.rmtree(out)
    assert final.main(args, run=run) == 2 and len(run.calls) == 1
    assert "already ran" in capsys.readouterr().err
    assert final.main([*args, "--again", "the GPU run died in cell 40"], run=run) == 0 and len(run.calls) == 2
    assert json.loads((out / "claims.json").read_text())["again"] == "the GPU run died in cell 40"
    with pytest.raises(SystemExit):
        final.main([*args, "--again", " "], run=run)


def test_a_failed_run_counts_and_a_result_on_another_split_is_refused(repo, tmp_path):
    final = _final()
    _git(repo, "add", "claims/final.json")
    _git(repo, "commit", "-q", "-m", "claims")
    args = ["--claims", str(repo / "claims" / "final.json"), "--out", str(tmp_path / "out")]
    assert final.main(args, run=fake_run(split="dev")) == 1  # figures of another split decide nothing
    ledger = [json.loads(x) for x in (repo / "claims" / "final.runs.jsonl").read_text().splitlines()]
    assert [e["status"] for e in ledger] == ["started", "failed"] and "dev" in ledger[1]["error"]
    assert final.main(args, run=fake_run()) == 2  # it looked at the locked split: a second run needs --again
    assert final.main([*args, "--again", "fix"], run=fake_run(per_q=[])) == 1  # no per-question results: fails


def test_the_training_stage_trains_without_the_ledger_or_the_locked_split(repo, tmp_path, capsys):
    final, run, trained = _final(), fake_run(), []
    claims, out = repo / "claims" / "final.json", tmp_path / "out"

    def train(cf, out_dir):
        trained.append((cf.profile, cf.seed, out_dir))
        return out_dir / "training.json"

    assert final.main(["--claims", str(claims), "--out", str(out), "--train"], run=run, train=train) == 0
    assert trained == [("full", 0, out)] and run.calls == []  # uncommitted claims may train: nothing looked
    assert not (repo / "claims" / "final.runs.jsonl").exists()

    def refuse(cf, out_dir):
        raise ValueError("another notebook")

    assert final.main(["--claims", str(claims), "--out", str(out), "--train"], run=run, train=refuse) == 2
    assert "training stage refused: another notebook" in capsys.readouterr().err


def test_notebook_05_defaults_are_the_settings_the_training_stage_trains():
    """`make final-train` builds `ArmSettings` from its defaults; notebook 05 from its parameters: they must agree, or
    the locked run trains its adapters again (slow, not wrong)."""
    import inspect

    from ragft import systems, training

    nb = json.loads((ROOT / "notebooks" / "05_hybrid.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    p: dict = {}
    exec("".join(cell["source"]), {}, p)
    r, a, t, rec = systems.RetrievalSettings(), systems.AnswerSettings(), systems.TrainingSettings(), systems.RaftRecipe()
    assert (p["TOP_K"], p["PASSAGE_CHARS"], p["CHANGE_NOTES"], p["NAME_CHECK"]) == (r.top_k, r.passage_chars,
                                                                                    r.change_notes, r.name_check)
    assert p["THRESHOLD"] < 0  # calibrated on dev, as the stage does
    assert (p["LLM"], p["LORA_R"], p["LORA_ALPHA"], p["TRAIN_PAIRS"]) == (a.llm, t.lora_r, t.lora_alpha, t.pairs)
    assert (p["RAFT_P_ORACLE"], p["RAFT_NO_ORACLE_TARGET"], p["RAFT_BATCH_SIZE"]) == (rec.p_oracle, rec.no_oracle_target,
                                                                                      rec.batch_size)
    assert p["UPDATE_REPEATS"] == inspect.signature(training.retrain_on_update).parameters["repeats"].default
    assert p["RAFT_DRAWS"] == 0 and p["SEED"] == evaluation.load_claims_file(CLAIMS).seed


def test_the_locked_run_states_its_own_time_and_the_training_stage_s(repo, tmp_path):
    final, run = _final(), fake_run()
    _git(repo, "add", "claims/final.json")
    _git(repo, "commit", "-q", "-m", "claims")
    claims, out = repo / "claims" / "final.json", tmp_path / "out"
    out.mkdir()
    sha = evaluation.claims_sha256(claims)
    (out / "training.json").write_text(json.dumps({"claims_sha256": sha, "train_s": 7200.0, "train_s_at_median": 5400.0}))
    assert final.main(["--claims", str(claims), "--out", str(out)], run=run) == 0
    result = json.loads((out / "claims.json").read_text())
    assert result["training"]["train_s"] == 7200.0 and result["run_s"] >= 0 and result["cpus"] >= 1
    assert "training 120 min, 90 min at its median step" in (out / "claims.md").read_text()
    (out / "training.json").write_text(json.dumps({"claims_sha256": "another file", "train_s": 1.0}))
    assert final.training_record(out, evaluation.load_claims_file(claims)) is None  # another claims file's training
