"""The project's expected story as claims between arms, each decided by a paired comparison on the same questions,
and a family of claims corrected together (Holm-Bonferroni), as notebook 05 makes them or as a locked claims file
(claims/final.json) states them before the final test.

`story` checks `CLAIMS` on the rows of `systems.compare`; `correct` decides a family; `conclusions` writes notebook 05's
Markdown; `load_claims_file` and `decide_claims_file` read a locked claims file and decide it from recorded per-question
results. The statistics live in `stats`; this module chooses what to compare, not how; it runs nothing (scripts/final.py
does).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.datasets import CHANGED_KINDS, ONE_RELEASE_KINDS
from .arms import frame_records, nan_to_none
from .stats import compare, decide_adjusted, holm

# Each claim compares two arms on the SAME questions (per-question 0/1 results, paired by question id) and is decided by
# the paired bootstrap interval of the difference (`stats.compare`): "supported" only when the interval excludes the
# claimed boundary. "keeps" claims allow a margin: the first arm may be at most MARGIN worse.
MARGIN = 0.05


def _seen(row: dict, seen: bool) -> bool:
    flag = row.get("phrasing_seen")
    return flag is not None and bool(flag) is seen


# A subset keeps a result row by its question's kind, or by its phrasing (rows carry `phrasing_seen` when the answering
# path records it: True for a phrasing training pairs use, False for an unseen one; rows without it match neither).
_SUBSETS = {"changed": lambda r: r["kind"] in CHANGED_KINDS, "all": lambda r: True,
            "unanswerable": lambda r: r["kind"] == "unanswerable", "answerable": lambda r: r["kind"] != "unanswerable",
            "one_release": lambda r: r["kind"] in ONE_RELEASE_KINDS,
            "seen_phrasing": lambda r: _seen(r, True), "unseen_phrasing": lambda r: _seen(r, False),
            "answerable_unseen_phrasing": lambda r: r["kind"] != "unanswerable" and _seen(r, False)}
CLAIMS = (  # (claim, arm a, arm b, per-question column, questions, margin or None)
    ("RAG beats the base model on current facts (questions whose truth moved in 2.x)", "rag", "base", "correct",
     "changed", None),
    ("after the index sync, RAG beats the fine-tuned arm retrained on the new facts, on current facts (the knowledge "
     "update)", "rag", "fine-tuned, retrained", "correct", "changed", None),
    ("fine-tuning beats RAG on the house format", "fine-tuned", "rag", "compliant", "all", None),
    ("fine-tuning beats the base model on abstaining when it should", "fine-tuned", "base", "abstained", "unanswerable",
     None),
    ("hybrid keeps RAG's current facts", "hybrid", "rag", "correct", "changed", MARGIN),
    ("hybrid keeps fine-tuning's format", "hybrid", "fine-tuned", "compliant", "all", MARGIN),
    ("RAFT (trained with passages) beats plain hybrid on accuracy", "raft", "hybrid", "correct", "all", None),
)


def paired_values(results, a: str, b: str, col: str = "correct", subset: str = "all") -> tuple[list[float], list[float]]:
    """Arm a's and arm b's `col` on the questions both answered (of `subset`: "all", "changed", ...), in one order:
    the inputs of `stats.compare`. A question one arm lacks is left out, never counted."""
    keep = _SUBSETS[subset]

    def values(arm):
        rows = frame_records(results[results["arm"] == arm]) if len(results) else []
        return {r["id"]: float(r[col]) for r in rows if keep(r) and r.get(col) is not None}

    va, vb = values(a), values(b)
    ids = [i for i in va if i in vb]
    return [va[i] for i in ids], [vb[i] for i in ids]


def story(results, seed: int = 0, claims: Sequence[tuple] = CLAIMS) -> list[dict]:
    """The project's expected story as claims (`CLAIMS`, or others of the same shape), each decided ALONE by a paired
    comparison on the same questions of `results` (the rows of `systems.compare`; the knowledge-update claim needs the
    retrained arm's rows too): claim, the two arms, n, each arm's share, the difference with its 95% interval, the exact
    paired test's p (`p_mcnemar`), the claim's own p (`p_raw`, `p_test`), and the verdict: "supported", "contradicted",
    "not separable at this n", or "not tested" when an arm is missing or no question is shared. Pass all of a
    notebook's rows to `correct`."""
    out = []
    for text, a, b, col, subset, margin in claims:
        x, y = paired_values(results, a, b, col, subset)
        row = {"claim": text, "a": a, "b": b, "metric": col, "questions": subset, "margin": margin, "n": len(x)}
        if not x:
            out.append({**row, "verdict": "not tested", "numbers": f"{a} or {b} not run on these questions"})
            continue
        c = compare(x, y, margin=margin, seed=seed)
        row.update({"a_share": c.mean_a, "b_share": c.mean_b, "diff": c.diff, "diff_ci": list(c.ci),
                    "p_mcnemar": c.p_mcnemar, "p_raw": c.p_raw, "p_test": c.p_test, "verdict": c.verdict})
        row["numbers"] = (f"{a} {c.mean_a:.0%} vs {b} {c.mean_b:.0%} on {c.n} questions; difference "
                          f"{c.diff:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]" + (f", margin {margin}" if margin else ""))
        out.append(row)
    return out


def _p_raw(row: dict) -> float:
    """A claim row's own p-value; rows of older runs carry only the exact paired test's (`p_mcnemar`), the test of a claim without margin."""
    p = row.get("p_raw", row.get("p_mcnemar") if row.get("margin") is None else None)
    return float("nan") if p is None else float(p)


def correct(claims: Sequence[dict], alpha: float = 0.05) -> list[dict]:
    """The rows of `story` (one call's or several calls' together) decided as ONE Holm-Bonferroni family: each row keeps
    its raw p-value (`p_raw`, and `p_mcnemar`), gains `p_adjusted`, `family` (how many claims were tested), `alpha` and
    `unadjusted_verdict` (its verdict alone), and its `verdict` comes from the adjusted p (`stats.decide_adjusted`).
    "not tested" rows stay as they are and do not count in the family."""
    rows = [dict(c) for c in claims]
    tested = [r for r in rows if r.get("verdict") != "not tested" and r.get("diff_ci")]
    adjusted = holm([_p_raw(r) for r in tested])
    family = sum(not math.isnan(p) for p in adjusted)
    for r, p in zip(tested, adjusted, strict=True):
        low, high = r["diff_ci"]
        boundary = 0.0 if r.get("margin") is None else -r["margin"]
        r.update({"unadjusted_verdict": r.get("unadjusted_verdict", r["verdict"]), "p_raw": _p_raw(r),
                  "p_adjusted": p, "family": family, "alpha": alpha,
                  "verdict": decide_adjusted(low, high, boundary, p, r["n"], alpha)})
    return rows


def _p_text(c: dict) -> str:
    if c.get("p_adjusted") is None or c.get("p_raw") is None:
        return ""
    raw, adj = float(c["p_raw"]), float(c["p_adjusted"])
    if math.isnan(raw) or math.isnan(adj):
        return ""
    return f"; p {raw:.3g}, Holm-adjusted {adj:.3g} over {c.get('family', '?')} claims"


def _leaders(m, col: str) -> str:
    top = m[col].max()
    best = list(m.index[m[col] == top])
    return f"no arm stands out (all {top:.0%})" if len(best) == len(m) else f"**{', '.join(best)}** ({top:.0%})"


def conclusions(metrics, claims: Sequence[dict], *, header: str, update: Sequence[str] = ()) -> str:
    """Notebook 05's conclusions as Markdown, written from the arms table and the checked claims: who leads on facts,
    format and abstention, then `update` (sentences the notebook writes from its own measurements), then each claim
    with its verdict from `story`. Where a claim is not supported it says so: the numbers win over the story."""
    m = metrics[[c for c in ("changed_accuracy", "format_compliance", "abstention_recall") if c in metrics]].astype(float)
    text = [header,
            f"- Best on current facts: {_leaders(m, 'changed_accuracy')}; best on the house format: "
            f"{_leaders(m, 'format_compliance')}; best at abstaining when it should: {_leaders(m, 'abstention_recall')}.",
            *[f"- {u}" for u in update], "", "The expected story, claim by claim:"]
    for c in claims:
        verdict = c["verdict"] if c["verdict"] == "supported" else f"**{c['verdict']}**"
        text.append(f"- {c['claim']}: {verdict} ({c['numbers']}{_p_text(c)}).")
    lost = [c for c in claims if c.get("unadjusted_verdict") == "supported" and c["verdict"] != "supported"]
    if lost:
        family = max(int(c.get("family") or 0) for c in claims)
        text.append(f"\n{len(lost)} claim(s) supported one at a time are not once the {family} claims are corrected "
                    "together (Holm-Bonferroni): with many claims, some pass by chance alone.")
    if any(c["verdict"] != "supported" for c in claims):
        text.append("\nWhere a claim is not supported, the numbers win: an interval that includes zero means this many "
                    "questions cannot tell the arms apart; read the answers above before trusting the story.")
    return "\n".join(text)


# --- the locked claims file (claims/final.json): written and committed BEFORE the locked test is run, decided after ---
CLAIMS_FILE_SCHEMA = 1
DIRECTIONS = ("greater", "not worse")  # "a beats b" | "a keeps b's level within `margin`"
SUBSETS = tuple(_SUBSETS)
RESERVED_PARAMETERS = ("PROFILE", "SPLIT", "SEED", "RESULTS_DIR")  # set by the file's own fields, not by `parameters`
PER_QUESTION_COLUMNS = ("arm", "id", "kind", "phrasing", "phrasing_seen", "correct", "lenient_correct", "compliant",
                        "abstained", "source_ok", "code_runs")  # those a results frame lacks are left out


@dataclass(frozen=True)
class LockedClaim:
    """One claim of a claims file: `hypothesis` in words, arm `a` against arm `b` (names as the notebook's arms are
    called) on the per-question `metric` over the `questions` subset, in a `direction` ("greater", or "not worse" by at
    most `margin`)."""

    id: str
    hypothesis: str
    metric: str
    questions: str
    a: str
    b: str
    direction: str
    margin: float | None = None

    def as_story(self) -> tuple:
        """The claim in `story`'s shape: (claim, arm a, arm b, column, questions, margin or None)."""
        return (self.hypothesis, self.a, self.b, self.metric, self.questions, self.margin)


@dataclass(frozen=True)
class ClaimsFile:
    """A claims file as read: the family (all its claims, corrected together at `alpha`), how the notebook runs
    (`notebook`, `profile`, `split`, `seed`, extra papermill `parameters`), and the file's sha256."""

    family: str
    alpha: float
    notebook: str
    profile: str
    split: str
    seed: int
    parameters: dict
    claims: tuple[LockedClaim, ...]
    sha256: str


def claims_sha256(path: str | os.PathLike) -> str:
    """The sha256 of the file's bytes, the identity a run of the locked test records."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check(ok: bool, path, message: str) -> None:
    if not ok:
        raise ValueError(f"{path}: {message}")


def load_claims_file(path: str | os.PathLike) -> ClaimsFile:
    """Read and check a claims file (schema: docs/protocol.md); ValueError names the first problem found."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    _check(data.get("schema") == CLAIMS_FILE_SCHEMA, path, f"schema must be {CLAIMS_FILE_SCHEMA}")
    _check(data.get("correction", "holm") == "holm", path, "the only correction is 'holm'")
    alpha, family = data.get("alpha"), data.get("family")
    _check(isinstance(alpha, float) and 0 < alpha < 1, path, f"alpha must be a number in (0, 1), not {alpha!r}")
    _check(isinstance(family, str) and bool(family), path, "family must name the family of claims")
    for key in ("notebook", "profile", "split"):
        _check(isinstance(data.get(key), str) and bool(data[key]), path, f"{key} must be a non-empty string")
    params = data.get("parameters", {})
    _check(isinstance(params, dict) and not set(params) & set(RESERVED_PARAMETERS), path,
           f"parameters must be a dict without {RESERVED_PARAMETERS} (the file's own fields set them)")
    raw = data.get("claims")
    _check(isinstance(raw, list) and bool(raw), path, "claims must be a non-empty list")
    claims = []
    for c in raw:
        where = f"claim {c.get('id', '?')!r}"
        missing = [k for k in ("id", "hypothesis", "metric", "questions", "a", "b", "direction") if not c.get(k)]
        _check(not missing, path, f"{where} lacks {missing}")
        _check(c["direction"] in DIRECTIONS, path, f"{where}: direction must be one of {DIRECTIONS}")
        _check(c["questions"] in SUBSETS, path, f"{where}: questions must be one of {SUBSETS}")
        _check(c["a"] != c["b"], path, f"{where} compares an arm with itself")
        margin = c.get("margin")
        _check((margin is None) == (c["direction"] == "greater"), path,
               f"{where}: 'not worse' needs a margin, 'greater' takes none")
        _check(margin is None or (isinstance(margin, (int, float)) and 0 < margin < 1), path,
               f"{where}: margin must be in (0, 1)")
        _check(c.get("alpha", alpha) == alpha and c.get("family", family) == family, path,
               f"{where}: every claim of a file shares the file's alpha and family")
        claims.append(LockedClaim(c["id"], c["hypothesis"], c["metric"], c["questions"], c["a"], c["b"],
                                  c["direction"], None if margin is None else float(margin)))
    ids = [c.id for c in claims]
    _check(len(set(ids)) == len(ids), path, f"claim ids must be unique: {ids}")
    return ClaimsFile(family, alpha, data["notebook"], data["profile"], data["split"], int(data.get("seed", 0)),
                      params, tuple(claims), claims_sha256(path))


def per_question_records(results, columns: Sequence[str] = PER_QUESTION_COLUMNS) -> list[dict]:
    """The rows of `systems.compare` (one frame or several concatenated) as the small records a claims file is decided
    from: `columns` that exist, one row per (arm, question id), the first kept. Notebook 05 records them as
    "per_question"."""
    keep = [c for c in columns if c in results.columns]
    out, seen = [], set()
    for r in frame_records(results[keep]):
        if (r["arm"], r["id"]) not in seen:
            seen.add((r["arm"], r["id"]))
            out.append({k: nan_to_none(v) for k, v in r.items()})
    return out


def decide_claims_file(claims_file: ClaimsFile, per_question: Sequence[dict]) -> list[dict]:
    """Every claim of the file decided from the recorded per-question results, as ONE Holm family at the file's alpha:
    `story`'s row plus the claim's `id`, `direction`, `p_raw`, `p_adjusted`, `family` and the verdict from the
    adjusted p. An arm the results lack leaves its claim "not tested" (and out of the family): say so, do not hide it."""
    import pandas as pd

    results = pd.DataFrame(list(per_question))
    rows = story(results, seed=claims_file.seed, claims=[c.as_story() for c in claims_file.claims])
    rows = correct(rows, alpha=claims_file.alpha)
    return [{"id": c.id, "direction": c.direction, **r} for c, r in zip(claims_file.claims, rows, strict=True)]
