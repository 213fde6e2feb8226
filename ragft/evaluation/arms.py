"""Tables of scored answers: the one per-arm summarizer, accuracy by question kind, and records the report renders.

Rows are `scoring.score_answer` dicts plus the answering path's columns (arm, gold_in_context, latency_s, ...). It does
not grade answers (see `scoring`) or decide claims between arms (see `claims`).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..data.datasets import CHANGED_KINDS, KINDS, ONE_RELEASE_KINDS
from .scoring import summarize
from .stats import proportion_ci


def nan_to_none(v):
    """None for a missing value (None or a float NaN, which pandas puts where None was), else the value itself."""
    return None if v is None or (isinstance(v, float) and v != v) else v


def frame_records(df) -> list[dict]:
    """A DataFrame's rows as dicts with NaN turned back into None (`summarize` skips only None, and NaN would also
    count as True where a row's flag is tested)."""
    return [{k: nan_to_none(v) for k, v in r.items()} for r in df.to_dict("records")]


def _share(rows: Sequence[dict], key: str, where=lambda r: True) -> float:
    xs = [r[key] for r in rows if r.get(key) is not None and where(r)]
    return sum(xs) / len(xs) if xs else float("nan")


# The columns of notebook 03's tables (one pipeline, several conditions) and of notebook 05's arms table.
# accuracy is the strict grade, lenient_accuracy the earlier one (a fact anywhere in the reply), shown side by side.
ARM_METRICS = ("n", "accuracy", "lenient_accuracy", "fact_accuracy", "stale_rate", "abstention_precision",
               "abstention_recall", "format_compliance", "source_accuracy", "code_runs", "groundedness",
               "context_recall", "confidence", "latency_s")
BEHAVIOUR_TABLE = ("n", "format_compliance", "answered_in_format", "abstained", "abstention_recall",
                   "abstention_precision", "stale_rate", "fact_accuracy", "latency_s")
ARMS_TABLE = ("n", "accuracy", "accuracy_low", "accuracy_high", "lenient_accuracy", "lenient_accuracy_low",
              "lenient_accuracy_high", "answerable_accuracy", "one_release_accuracy", "reading_rate", "changed_accuracy",
              "fact_accuracy", "stale_rate", "format_compliance", "source_accuracy", "code_runs",
              "abstention_precision", "abstention_recall", "groundedness", "gold_retrieved", "latency_s", "cached")


def summarize_arms(df, by: str = "arm", metrics: Sequence[str] = ARM_METRICS, order: Sequence[str] | None = None):
    """One row of headline metrics per arm (rows in `order`, else as they first appear): `summarize` of its rows plus
    context_recall (a gold doc was in the prompt), confidence (mean, generated answers only), changed_accuracy
    (accuracy on questions whose truth moved from 1.26 to 2.x), gold_retrieved (a gold doc among the passages),
    cached (share read from the answer cache), abstained (share of abstentions, asked for or not) and
    answered_in_format (compliant and not an abstention), answerable_accuracy, one_release_accuracy (accuracy on
    the answerable kinds one release's document answers: removed, added, unchanged), reading_rate (correct when a gold
    document was in the prompt) and accuracy_low / accuracy_high (its 95% Wilson interval), the same interval for
    lenient_accuracy (the earlier, lenient grade); code_runs and source_accuracy come from `summarize` (NaN when the
    rows lack them: add `code_runs.add_code_runs` first). The one summarizer of per-arm metrics; `metrics` picks the
    columns: ARM_METRICS (notebook 03), BEHAVIOUR_TABLE (04), ARMS_TABLE (05)."""
    import pandas as pd

    out = {}
    for arm in order or list(dict.fromkeys(df[by])):
        g = df[df[by] == arm]
        rows = frame_records(g)
        m = summarize(rows)
        m["context_recall"] = _share(rows, "gold_in_context")
        m["confidence"] = _share(rows, "confidence", lambda r: not r.get("abstained_no_context"))
        m["changed_accuracy"] = _share(rows, "correct", lambda r: r["kind"] in CHANGED_KINDS)
        m["gold_retrieved"] = _share(rows, "gold_retrieved")
        m["cached"] = float(g["cached"].mean()) if "cached" in g and len(g) else float("nan")
        m["abstained"] = _share(rows, "abstained")
        m["answerable_accuracy"] = _share(rows, "correct", lambda r: r["kind"] != "unanswerable")
        m["one_release_accuracy"] = _share(rows, "correct", lambda r: r["kind"] in ONE_RELEASE_KINDS)
        m["reading_rate"] = _share(rows, "correct", lambda r: r.get("gold_retrieved") or r.get("gold_in_context"))
        m["accuracy_low"], m["accuracy_high"] = proportion_ci([r["correct"] for r in rows])[1:]
        m["lenient_accuracy_low"], m["lenient_accuracy_high"] = proportion_ci([r.get("lenient_correct") for r in rows])[1:]
        m["answered_in_format"] = _share([{"x": bool(r["compliant"]) and not r["abstained"]} for r in rows], "x")
        out[arm] = {k: m[k] for k in metrics}
    return pd.DataFrame(out).T


def accuracy_by_kind(df, by: str = "arm", order: Sequence[str] | None = None):
    """Accuracy per arm (rows, in `order` or as they first appear) and question kind (columns, in `KINDS` order), with
    the number of questions of each kind in the column name ("removed (n=16)"): the table that shows which kind of
    question an arm fails, e.g. changed_param, which a single-version index cannot answer."""
    rows = order or list(dict.fromkeys(df[by]))
    kinds = [k for k in KINDS if k in set(df["kind"])] + sorted(set(df["kind"]) - set(KINDS))
    table = df.pivot_table(index=by, columns="kind", values="correct", aggfunc="mean").reindex(index=rows, columns=kinds)
    first = df[df[by] == rows[0]] if rows else df
    counts = first["kind"].value_counts()
    table.columns = [f"{k} (n={int(counts.get(k, 0))})" for k in kinds]
    table.index.name, table.columns.name = by, None
    return table.astype(float)


def records(table, digits: int = 3, index_name: str = "arm") -> list[dict]:
    """A metrics DataFrame as a list of dicts (NaN -> None, floats rounded), the shape the report renders as a table."""
    out = []
    for idx, row in table.iterrows():
        rec = {index_name: idx}
        for k, v in row.items():
            v = nan_to_none(v)
            rec[k] = round(v, digits) if isinstance(v, float) else v
        out.append(rec)
    return out
