"""The project's expected story as claims between arms, each decided by a paired comparison on the same questions.

`story` checks `CLAIMS` on the rows of `systems.compare`; `conclusions` writes notebook 05's Markdown from them. The
statistics live in `stats`; this module chooses what to compare, not how.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.datasets import CHANGED_KINDS, ONE_RELEASE_KINDS
from .arms import frame_records
from .stats import compare

# Each claim compares two arms on the SAME questions (per-question 0/1 results, paired by question id) and is decided by
# the paired bootstrap interval of the difference (`stats.compare`): "supported" only when the interval excludes the
# claimed boundary. "keeps" claims allow a margin: the first arm may be at most MARGIN worse.
MARGIN = 0.05
_SUBSETS = {"changed": lambda kind: kind in CHANGED_KINDS, "all": lambda kind: True,
            "unanswerable": lambda kind: kind == "unanswerable", "answerable": lambda kind: kind != "unanswerable",
            "one_release": lambda kind: kind in ONE_RELEASE_KINDS}
CLAIMS = (  # (claim, arm a, arm b, per-question column, questions, margin or None)
    ("RAG beats the base model on current facts (questions whose truth moved in 2.x)", "rag", "base", "correct",
     "changed", None),
    ("after the index sync, RAG beats the fine-tuned arm on current facts (the knowledge update)", "rag", "fine-tuned",
     "correct", "changed", None),
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
        return {r["id"]: float(r[col]) for r in rows if keep(r["kind"]) and r.get(col) is not None}

    va, vb = values(a), values(b)
    ids = [i for i in va if i in vb]
    return [va[i] for i in ids], [vb[i] for i in ids]


def story(results, seed: int = 0, claims: Sequence[tuple] = CLAIMS) -> list[dict]:
    """The project's expected story as claims (`CLAIMS`, or others of the same shape), each decided by a paired
    comparison on the same questions of `results` (the rows of `systems.compare`): claim, the two arms, n, each arm's
    share, the difference with its 95% interval, McNemar's p, and the verdict: "supported", "contradicted", "not
    separable at this n", or "not tested" when an arm is missing or no question is shared."""
    out = []
    for text, a, b, col, subset, margin in claims:
        x, y = paired_values(results, a, b, col, subset)
        row = {"claim": text, "a": a, "b": b, "metric": col, "questions": subset, "margin": margin, "n": len(x)}
        if not x:
            out.append({**row, "verdict": "not tested", "numbers": f"{a} or {b} not run on these questions"})
            continue
        c = compare(x, y, margin=margin, seed=seed)
        row.update({"a_share": c.mean_a, "b_share": c.mean_b, "diff": c.diff, "diff_ci": list(c.ci),
                    "p_mcnemar": c.p_mcnemar, "verdict": c.verdict})
        row["numbers"] = (f"{a} {c.mean_a:.0%} vs {b} {c.mean_b:.0%} on {c.n} questions; difference "
                          f"{c.diff:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]" + (f", margin {margin}" if margin else ""))
        out.append(row)
    return out


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
        text.append(f"- {c['claim']}: {verdict} ({c['numbers']}).")
    if any(c["verdict"] != "supported" for c in claims):
        text.append("\nWhere a claim is not supported, the numbers win: an interval that includes zero means this many "
                    "questions cannot tell the arms apart; read the answers above before trusting the story.")
    return "\n".join(text)
