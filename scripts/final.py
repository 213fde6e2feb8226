"""The locked final test, run once per release: `make final` (= `python scripts/final.py`; docs/protocol.md).

Refuses unless the claims file (claims/final.json) is committed and unchanged; records its sha256 and the commit; runs
the notebook it names (05_hybrid) in its profile ("full") on its split (the locked test) with papermill; decides every
claim of the file from the per-question results the notebook recorded, as ONE Holm-Bonferroni family; writes
reports/final/claims.json and claims.md; and appends each run to claims/final.runs.jsonl (commit it with the results).
A second run for the same claims file (same sha256) is refused unless `--again "reason"`: the locked test is looked at
once, and a failed run counts, because it has looked. `--check` only checks and says what would run.

`--train` (`make final-train`) is the stage before: it trains every adapter the run needs (the fine-tuned arm, the RAFT
draws and their pick on dev, the fair retrain on the update's facts) into the adapter cache, from dev and the documents
only, never the locked split; it may be stopped and run again (training resumes from its checkpoints). The locked run
then finds them in the cache, and reports/final/training.json says what the training cost.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from ragft.core.io import atomic_path
from ragft.evaluation import ClaimsFile, decide_claims_file, load_claims_file

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLAIMS = ROOT / "claims" / "final.json"
DEFAULT_OUT = ROOT / "reports" / "final"


class Refused(RuntimeError):
    """The protocol forbids this run (the claims are not locked, or were already tested)."""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout.strip()


def locked_state(path: Path) -> dict:
    """Where the claims file stands in git: refused unless it is tracked, in the history and unchanged since."""
    path = path.resolve()
    try:
        top = Path(git(path.parent, "rev-parse", "--show-toplevel")).resolve()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        raise Refused(f"{path} is not inside a git repository: the claims must be committed before the run") from e
    rel = path.relative_to(top).as_posix()
    changes = git(top, "status", "--porcelain", "--", rel)
    if changes:
        raise Refused(f"{rel} has uncommitted changes ({changes.split()[0]}): commit the claims before the run")
    last = git(top, "log", "-1", "--format=%H %cI", "--", rel)
    if not last:
        raise Refused(f"{rel} is not in git history: commit it before the run")
    claims_commit, claims_date = last.split(" ", 1)
    return {"claims_path": rel, "claims_commit": claims_commit, "claims_committed": claims_date,
            "commit": git(top, "rev-parse", "HEAD"),
            "worktree_clean": not git(top, "status", "--porcelain", "--untracked-files=no")}


def ledger_path(claims_path: Path) -> Path:
    """claims/final.json -> claims/final.runs.jsonl: every run of the locked test, committed with the claims."""
    return claims_path.with_name(f"{claims_path.stem}.runs.jsonl")


def read_ledger(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def append_ledger(path: Path, entry: dict) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(entry, sort_keys=True) + "\n")


def earlier_runs(cf: ClaimsFile, ledger: Path, out: Path) -> list[dict]:
    """Runs already made for this claims file: in the ledger, or a result in `out` carrying the same sha256."""
    runs = [e for e in read_ledger(ledger) if e.get("claims_sha256") == cf.sha256 and e.get("status") == "started"]
    result = out / "claims.json"
    if not runs and result.exists() and json.loads(result.read_text()).get("claims_sha256") == cf.sha256:
        runs.append({"date": json.loads(result.read_text()).get("date"), "source": str(result)})
    return runs


def run_notebook(cf: ClaimsFile, out: Path) -> Path:
    """Execute the claims file's notebook into `out` (profile, split, seed and parameters from the file); its figures."""
    from ragft import report

    figures = out / "figures"
    report.execute_notebook(cf.notebook, out, profile=cf.profile, results_dir=figures, progress=True, SPLIT=cf.split,
                            SEED=cf.seed, **cf.parameters)
    return figures / f"{cf.notebook}.json"


def notebook_settings(cf: ClaimsFile):
    """Notebook 05's arm settings in the claims file's profile and seed, with the threshold it calibrates on dev:
    its parameters' defaults are `ArmSettings`' (tests/test_final.py checks), so its adapters are found in the cache."""
    from ragft import systems
    from ragft.core import profiles

    p = profiles.resolve(cf.profile)
    settings = systems.ArmSettings(answer=systems.AnswerSettings(max_new_tokens=p.max_new_tokens),
                                   training=systems.TrainingSettings(train_steps=p.train_steps, seed=cf.seed),
                                   draws=systems.DrawSettings.of(p))
    return settings.with_threshold(systems.dev_threshold(settings)[0].suggested)


def train_adapters(cf: ClaimsFile, out: Path) -> Path:
    """Every adapter the locked run trains, trained (or found) in the cache from dev and the documents alone."""
    from ragft import systems
    from ragft.core.paths import CURRENT_VERSION, OLD_VERSION
    from ragft.data import corpus
    from ragft.training import retrain_on_update

    if cf.notebook != "05_hybrid" or any(k not in ("SKIP_ABLATIONS",) for k in cf.parameters):
        raise ValueError(f"the training stage knows notebook 05's default settings only, not {cf.notebook} with "
                         f"{sorted(cf.parameters)}: run `make final` alone (it trains what it needs)")
    t0 = time.perf_counter()
    settings = notebook_settings(cf)
    tuned = systems.tuned_adapters(settings)
    update = retrain_on_update(settings, corpus.load_corpus(OLD_VERSION), corpus.load_corpus(CURRENT_VERSION))
    logs = {"fine-tuned": tuned.sft_log, "fine-tuned, retrained": update.log,
            **({f"raft seed {s}": log for s, log in tuned.draws.logs.items()} if tuned.draws else {"raft": tuned.raft_log})}
    record = {"claims_sha256": cf.sha256, "profile": cf.profile, "seed": cf.seed, "commit": git(ROOT, "rev-parse", "HEAD"),
              "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
              "threshold": settings.retrieval.threshold, "raft_chosen": tuned.draws.chosen if tuned.draws else cf.seed,
              "stage_s": round(time.perf_counter() - t0, 1),
              "adapters": {name: {"steps": log.get("steps"), "train_s": log.get("total_train_s"),
                                  "median_step_s": log.get("seconds_per_step"), "tokens_per_s": log.get("tokens_per_s")}
                           for name, log in logs.items()}}
    adapters = record["adapters"].values()
    record["train_s"] = round(sum(a["train_s"] or 0 for a in adapters), 1)
    # steps x median step: what the training costs on a machine to itself (a shared CPU's slow steps inflate the sum)
    record["train_s_at_median"] = round(sum((a["steps"] or 0) * (a["median_step_s"] or 0) for a in adapters), 1)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "training.json") as tmp:
        tmp.write_text(json.dumps(_jsonable(record), indent=2, sort_keys=True))
    return out / "training.json"


def training_record(out: Path, cf: ClaimsFile) -> dict | None:
    """What the training stage recorded for this claims file (reports/final/training.json), if it ran."""
    path = out / "training.json"
    record = json.loads(path.read_text()) if path.exists() else None
    return record if record and record.get("claims_sha256") == cf.sha256 else None


def decide(cf: ClaimsFile, figures_path: Path) -> tuple[list[dict], dict]:
    """The file's claims decided from the notebook's recorded "per_question" results; (rows, the figures read)."""
    figures = json.loads(figures_path.read_text())
    if figures.get("split") not in (None, cf.split):
        raise ValueError(f"{figures_path} was recorded on split {figures['split']!r}, not the locked {cf.split!r}")
    if not figures.get("per_question"):
        raise ValueError(f"{figures_path} holds no 'per_question' results: the notebook must record them "
                         "(evaluation.per_question_records; docs/protocol.md)")
    return decide_claims_file(cf, figures["per_question"]), figures


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _p(v) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def _minutes(seconds) -> str:
    return "—" if seconds is None else f"{seconds / 60:.0f} min"


def markdown(result: dict) -> str:
    """The result as a short Markdown page: what was locked, when, and each claim's numbers and verdict."""
    lines = [f"# The locked test: {result['family']}", "",
             f"- claims file `{result['claims_path']}`, sha256 `{result['claims_sha256']}`, committed in "
             f"`{result['claims_commit'][:12]}` ({result['claims_committed']})",
             f"- run at commit `{result['commit'][:12]}`{'' if result['worktree_clean'] else ' (uncommitted changes)'}"
             f" on {result['date']}: notebook {result['notebook']}, profile {result['profile']}, split "
             f"{result['split']}, {result.get('n_questions') or '?'} questions",
             f"- time on {result.get('cpus') or '?'} CPUs: the run {_minutes(result.get('run_s'))}, its adapters' "
             f"training {_minutes((result.get('training') or {}).get('train_s'))}, "
             f"{_minutes((result.get('training') or {}).get('train_s_at_median'))} at its median step (`--train`: "
             f"{'recorded' if result.get('training') else 'not recorded: trained inside the run'})",
             f"- {result['family_size']} claims tested, Holm-Bonferroni at alpha {result['alpha']}"
             + (f"; run again: {result['again']}" if result.get("again") else ""), "",
             "| claim | a vs b | difference [95% CI] | p raw | p Holm | verdict |", "|---|---|---|---|---|---|"]
    for c in result["claims"]:
        diff = (f"{c['diff']:+.2f} [{c['diff_ci'][0]:+.2f}, {c['diff_ci'][1]:+.2f}]"
                if c.get("diff") is not None and c.get("diff_ci") else "—")
        lines.append(f"| {c['id']}: {c['claim']} | {c['a']} vs {c['b']} ({c['metric']}, {c['questions']}, n {c['n']}) "
                     f"| {diff} | {_p(c.get('p_raw'))} | {_p(c.get('p_adjusted'))} | {c['verdict']} |")
    return "\n".join(lines) + "\n"


def write_result(out: Path, result: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "claims.json") as tmp:
        tmp.write_text(json.dumps(_jsonable(result), indent=2, sort_keys=True, allow_nan=False))
    with atomic_path(out / "claims.md") as tmp:
        tmp.write_text(markdown(result), encoding="utf-8")
    return out / "claims.json"


def main(argv=None, run=run_notebook, train=train_adapters) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--claims", default=str(DEFAULT_CLAIMS), help="the committed claims file")
    ap.add_argument("--out", default=str(DEFAULT_OUT), help="where the executed notebook, figures and claims.json go")
    ap.add_argument("--again", metavar="REASON", help="run again for the same claims file, saying why (recorded)")
    ap.add_argument("--check", action="store_true", help="only check the protocol and say what would run")
    ap.add_argument("--train", action="store_true",
                    help="the stage before: train the run's adapters into the cache (dev and documents only)")
    args = ap.parse_args(argv)
    claims_path, out = Path(args.claims).resolve(), Path(args.out).resolve()
    if args.again is not None and not args.again.strip():
        ap.error("--again needs a reason")
    if args.train:
        try:
            path = train(load_claims_file(claims_path), out)
        except ValueError as e:
            print(f"[final] training stage refused: {e}", file=sys.stderr)
            return 2
        print(f"[final] adapters ready: {path}")
        return 0
    try:
        cf = load_claims_file(claims_path)
        state = locked_state(claims_path)
        ledger = ledger_path(claims_path)
        before = earlier_runs(cf, ledger, out)
        if before and not args.again:
            raise Refused(f"the locked test already ran for this claims file (sha256 {cf.sha256[:12]}, "
                          f"{before[-1].get('date')}): it runs once per release; new claims need a new committed "
                          "file, or say why with --again 'reason'")
    except (Refused, ValueError) as e:
        print(f"[final] refused: {e}", file=sys.stderr)
        return 2
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    entry = {"claims_sha256": cf.sha256, "date": date, **state, "profile": cf.profile, "split": cf.split,
             "again": args.again, "earlier_runs": len(before)}
    print(f"[final] {len(cf.claims)} claims ({cf.family}), sha256 {cf.sha256[:12]}, committed in "
          f"{state['claims_commit'][:12]}; commit {state['commit'][:12]}"
          + ("" if state["worktree_clean"] else " with uncommitted changes (recorded)")
          + f"; {cf.notebook} in profile {cf.profile} on split {cf.split}", flush=True)
    if args.check:
        return 0
    append_ledger(ledger, {**entry, "status": "started"})  # before the notebook looks at the locked split
    t0 = time.perf_counter()
    try:
        rows, figures = decide(cf, run(cf, out))
    except Exception as e:  # the run counts even when it fails: it has looked at the locked split
        append_ledger(ledger, {**entry, "status": "failed", "error": f"{type(e).__name__}: {e}"[:500]})
        print(f"[final] FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    result = {**entry, "notebook": cf.notebook, "family": cf.family, "alpha": cf.alpha, "correction": "holm",
              "family_size": max((r.get("family") or 0 for r in rows), default=0),
              "n_questions": figures.get("n_questions"), "claims": rows, "run_s": round(time.perf_counter() - t0, 1),
              "cpus": os.cpu_count(), "training": training_record(out, cf)}
    path = write_result(out, result)
    append_ledger(ledger, {**entry, "status": "done", "verdicts": {r["id"]: r["verdict"] for r in rows}})
    untested = [r["id"] for r in rows if r["verdict"] == "not tested"]
    for r in rows:
        print(f"[final] {r['id']}: {r['verdict']} (p {_p(r.get('p_raw'))}, Holm {_p(r.get('p_adjusted'))})")
    print(f"[final] -> {path} and {path.with_suffix('.md')}; commit {ledger.relative_to(ROOT) if ledger.is_relative_to(ROOT) else ledger}"
          " with them" + (f". NOT TESTED (an arm missing from the results): {untested}" if untested else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
