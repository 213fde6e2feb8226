"""What the report's index says about each notebook: a one-sentence takeaway and 3-6 headline numbers, from its figures.

Each sentence is a template over the keys the notebook records; a key that is missing (an older or failed run, a
renamed figure, an arm that does not exist) drops that sentence or number, never the page. A notebook without an entry
here gets no takeaway and its first few numbers as headlines.
Not an analysis: nothing here computes a result the notebook did not record (picking the best row is the most it does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .labels import SHARE, describe


@dataclass(frozen=True)
class Headline:
    """One number on a card: `key` is the recorded key it comes from (so the detail tables skip it)."""

    key: str
    label: str
    value: object
    unit: str = ""


def takeaway(notebook: str, f: dict) -> str | None:
    """The notebook's one-sentence takeaway, or None when its numbers are missing."""
    write = TAKEAWAYS.get(notebook)
    if write is None:
        return None
    try:
        return write(f)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, ZeroDivisionError):
        return None


def headlines(notebook: str, f: dict, most: int = 6) -> list[Headline]:
    """3-6 headline numbers of a notebook; the first numbers it recorded when it has no list here."""
    pick = HEADLINES.get(notebook)
    out: list[Headline] = []
    if pick is not None:
        for key, label, unit, get in pick:
            try:
                value = get(f)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError):
                continue
            if value is not None:
                d = describe(key)
                out.append(Headline(key, label or d.text, value, unit or d.unit))
    else:
        for key, value in f.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                d = describe(key)
                out.append(Headline(key, d.text, value, d.unit))
    return out[:most]


def context_line(f: dict) -> str | None:
    """'12 test questions · smollm2-135m · hybrid retrieval, top_k 3' from whichever of those keys exist."""
    bits = []
    if isinstance(f.get("n_questions"), int):
        bits.append(f"{f['n_questions']} {f.get('split', '')} questions".replace("  ", " "))
    if f.get("llm"):
        bits.append(f"model {f['llm']}")
    if f.get("retrieval"):
        bits.append(f"{f['retrieval']} retrieval" + (f", top_k {f['top_k']}" if "top_k" in f else ""))
    return " · ".join(bits) or None


def _row(records, col: str, value) -> dict:
    return next(r for r in records if r.get(col) == value)


def _best(records, metric: str) -> dict:
    return max((r for r in records if isinstance(r.get(metric), (int, float))), key=lambda r: r[metric])


def _name(r: dict) -> str:
    return str(next(r[k] for k in ("arm", "system", "strategy", "retriever", "name") if k in r))


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _t00(f):
    return (f"NumPy 2.0 removed {f['removed_1_26_to_2_0']} public names and added {f['added_1_26_to_2_0']}; "
            f"{f['qa_items']} questions test that knowledge ({f['qa_test']} held out for the final comparison), and the "
            f"plain model {'answered' if f['baseline_plain_correct'] else 'missed'} the demo question.")


def _t01(f):
    k = f["top_k"]
    best = _row(f["strategies"], "strategy", f["best_strategy"])
    worst = min(f["strategies"], key=lambda r: r[f"recall@{k}"])
    tail = (f", against {_pct(worst[f'recall@{k}'])} for the {worst['strategy']} chunker"
            if worst["strategy"] != best["strategy"] else "")
    return (f"On {f['n_questions']} questions over {f['n_docs']} documents, the {best['strategy']} chunker put the gold "
            f"document in the top {k} for {_pct(best[f'recall@{k}'])} of them (MRR {best['mrr']:.2f}){tail}.")


def _t02(f):
    u = f["update"]
    return (f"HNSW answered {f['synthetic_speedup_at_095']:.1f}× more queries per second than the fastest exact search "
            f"at recall@10 0.95 on {f['n_synthetic']:,} synthetic vectors; after the NumPy update an index sync "
            f"({u['sync_s']:.1f} s) instead of a rebuild ({u['rebuild_s']:.1f} s) raised recall@5 on changed APIs from "
            f"{_pct(u['recall5_before'])} to {_pct(u['recall5_after'])}.")


def _t03(f):
    return (f"Retrieval took fact accuracy from {_pct(f['base_fact_accuracy'])} (model alone) to "
            f"{_pct(f['rag_fact_accuracy'])} (RAG) on {f['n_questions']} questions; syncing the index to the new docs took "
            f"{f['update_seconds']:.1f} s and moved changed-API accuracy from {_pct(f['update_accuracy_before'])} to "
            f"{_pct(f['update_accuracy_after'])} without touching the model's weights.")


def _t04(f):
    return (f"{f['train_steps']} LoRA steps ({f['train_s']:.0f} s, {f['seconds_per_step']:.1f} s per step) took the "
            f"house format from {_pct(f['compliance_base'])} to {_pct(f['compliance_tuned'])} of answers; the 4-bit "
            f"model takes {f['nf4_ratio_to_fp32']:.2f}× the memory of fp32 and the adapter is {f['adapter_mb']:.1f} MB.")


def _t05(f):
    arms = f["arms"]
    best = _best(arms, "accuracy")
    claims = f.get("claims") or {}
    verdicts = list(claims.values()) if isinstance(claims, dict) else [c.get("verdict", c.get("holds")) for c in claims]
    tested = [v for v in verdicts if v not in (None, "not tested")]
    held = sum(v is True or v == "supported" for v in tested)
    tail = f"; {held} of {len(tested)} tested claims supported" if tested else ""
    family = max((c.get("family") or 0 for c in claims if isinstance(c, dict)), default=0) if isinstance(claims, list) else 0
    tail += " after Holm-Bonferroni" if tested and family else ""
    fresh = ""
    if any("changed_accuracy" in a for a in arms):
        top = _best(arms, "changed_accuracy")
        fresh = f", {_name(top)} the best on changed APIs ({_pct(top['changed_accuracy'])})"
    return (f"Of {len(arms)} arms on {f['n_questions']} {f.get('split', '')} questions, {_name(best)} answered the most "
            f"correctly ({_pct(best['accuracy'])}){fresh}{tail}.").replace("  ", " ")


def _t06(f):
    answers = f["answers"]
    correct = sum(bool(a.get("correct")) for a in answers)
    return (f"The dashboard was ready in {f['setup_s']:.0f} s and showed {len(f['arms'])} arms' answers to the first "
            f"question in {f['dashboard_first_s']:.1f} s; {correct} of {len(answers)} were correct.")


TAKEAWAYS: dict[str, Callable[[dict], str]] = {
    "00_overview": _t00, "01_chunking": _t01, "02_hnsw_retrieval": _t02, "03_rag": _t03, "04_qlora_finetuning": _t04,
    "05_hybrid": _t05, "06_compare": _t06,
}


def _get(key: str):
    return lambda f: f[key]


def _path(*keys):
    def get(f):
        for k in keys:
            f = f[k]
        return f
    return get


def _best_strategy_recall(f):
    return _row(f["strategies"], "strategy", f["best_strategy"])[f"recall@{f['top_k']}"]


# (recorded key, label or "" for the one in report_labels, unit or "" for the label's, how to read it)
HEADLINES: dict[str, list[tuple[str, str, str, Callable[[dict], object]]]] = {
    "00_overview": [
        ("removed_1_26_to_2_0", "", "", _get("removed_1_26_to_2_0")),
        ("added_1_26_to_2_0", "", "", _get("added_1_26_to_2_0")),
        ("qa_items", "", "", _get("qa_items")),
        ("train_pairs", "", "", _get("train_pairs")),
        ("tokens_per_s", "Generation speed (small model, CPU)", "", _get("tokens_per_s")),
        ("llm_load_s", "", "", _get("llm_load_s")),
    ],
    "01_chunking": [
        ("best_strategy", "", "", _get("best_strategy")),
        ("strategies", "Its recall@top_k", SHARE, _best_strategy_recall),
        ("n_docs", "", "", _get("n_docs")),
        ("n_questions", "", "", _get("n_questions")),
        ("chunk_size", "", "", _get("chunk_size")),
    ],
    "02_hnsw_retrieval": [
        ("synthetic_speedup_at_095", "", "", _get("synthetic_speedup_at_095")),
        ("real_recall_at_ef", "", "", _get("real_recall_at_ef")),
        ("real_exact_qps", "Fastest exact search, real chunks", "q/s", lambda f: max(f["real_exact_qps"].values())),
        ("build_s", "", "", _get("build_s")),
        ("update", "Index sync after the update", "s", _path("update", "sync_s")),
        ("suggested_threshold", "", "", _get("suggested_threshold")),
    ],
    "03_rag": [
        ("base_fact_accuracy", "", "", _get("base_fact_accuracy")),
        ("rag_fact_accuracy", "", "", _get("rag_fact_accuracy")),
        ("rag_context_recall", "", "", _get("rag_context_recall")),
        ("update_accuracy_after", "", "", _get("update_accuracy_after")),
        ("update_seconds", "", "", _get("update_seconds")),
        ("latency", "Time per RAG answer", "s", _path("latency", "total_s")),
    ],
    "04_qlora_finetuning": [
        ("compliance_base", "", "", _get("compliance_base")),
        ("compliance_tuned", "", "", _get("compliance_tuned")),
        ("seconds_per_step", "", "", _get("seconds_per_step")),
        ("peak_rss_mb", "", "", _get("peak_rss_mb")),
        ("footprint_mb", "4-bit model in memory", "MB", _path("footprint_mb", "nf4")),
        ("adapter_mb", "", "", _get("adapter_mb")),
    ],
    "05_hybrid": [
        ("n_questions", "Questions per arm", "", _get("n_questions")),
        ("sync_s", "Knowledge update by index sync", "", _get("sync_s")),
        ("retrain_s", "Knowledge update by retraining", "", _get("retrain_s")),
        ("compare_s", "", "", _get("compare_s")),
        ("raft_s_per_step", "", "", _get("raft_s_per_step")),
        ("sft_s_per_step", "", "", _get("sft_s_per_step")),
    ],
    "06_compare": [
        ("setup_s", "", "", _get("setup_s")),
        ("dashboard_first_s", "", "", _get("dashboard_first_s")),
        ("arms", "Arms compared", "count", lambda f: len(f["arms"])),
        ("n_questions_in_menu", "", "", _get("n_questions_in_menu")),
        ("n_docs", "", "", _get("n_docs")),
    ],
}
