"""The one answering path: `answer` / `compare` plan each (system, question) (retrieval, the abstention `gate`, the
prompt, the cache key), generate what the answer cache lacks, grouped by model and adapter, and score each row; the
dashboard's `configure` / `ask` are its knobs.

It trains nothing (`ragft.training`), loads no model itself (`ragft.generation.pool`) and defines no metric: it calls
`evaluation.scoring.score_answer` on each answer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..core import house
from ..core.cache import content_key
from ..core.paths import CURRENT_VERSION
from ..evaluation.code_runs import add_code_runs
from ..evaluation.ranking import gold_found
from ..evaluation.scoring import score_answer
from ..generation.answers import AnswerCache, as_cache, generate_unique
from ..generation.pool import ModelPool
from ..retrieval.retrievers import undocumented_names
from .system import System, contrast_messages, retriever_kind, system_messages


def _as_item(question):
    """(question text, QA item or None): compare accepts QA items and typed strings alike."""
    if isinstance(question, str):
        if not question.strip():
            raise ValueError("empty question: type a question to answer")
        return question.strip(), None
    return question.question, question


def _relevance(hit) -> float:
    """The score to show: the dense cosine (hybrid hits carry it in metadata), else the hit's own score."""
    return float(hit.metadata.get("cosine", hit.score)) if hit.metadata else float(hit.score)


@dataclass
class _Plan:
    """One (system, question) before generation: retrieval done, prompt built, cache consulted."""

    system: System
    text: str
    item: Any
    hits: list | None
    retrieval_s: float
    gated: str  # "" (generated), "threshold" or "name": why the system abstained without the model
    messages: list | None = None
    contrast: list | None = None  # the messages without passages, for context-aware decoding (System.contrast)
    key: str | None = None
    gen: dict | None = None
    cached: bool = False


def _plan(system: System, question, cache: AnswerCache | None, engine: str = "transformers") -> _Plan:
    text, item = _as_item(question)
    hits, retrieval_s = None, 0.0
    if system.retriever is not None:
        t0 = time.perf_counter()
        hits = list(system.retriever.search(text, top_k=system.top_k, threshold=system.threshold))
        retrieval_s = time.perf_counter() - t0
    plan = _Plan(system, text, item, hits, retrieval_s, gated=gate(text, hits, system.threshold is not None, system.name_check))
    if plan.gated:  # nothing above the threshold, or no passage on the named API: the system abstains, no model
        plan.gen = {"text": house.ABSTAIN_ANSWER, "n_new_tokens": 0, "ttft_s": 0.0, "total_s": 0.0, "batch_size": 0}
        return plan
    plan.messages = system_messages(system, text, hits)
    if system.contrast and hits:
        plan.contrast = contrast_messages(system, text)
    engine = "transformers" if system.contrast else engine  # a fast engine cannot contrast (ModelPool.generate_batch)
    plan.key = AnswerCache.key(system, plan.messages, engine) if cache is not None else content_key(plan.messages)
    return plan


def gate(question: str, hits: list | None, threshold_on: bool = True, name_check: bool = False) -> str:
    """THE abstention without the model, for every answering path: "threshold" (retrieval ran with a threshold and
    left no passage), "name" (`name_check` and the question names APIs in backticks that no passage documents:
    `retrievers.undocumented_names`), or "" (the model answers). hits None: no retrieval, never gated."""
    if hits is None:
        return ""
    if threshold_on and not hits:
        return "threshold"
    if name_check and undocumented_names(question, hits):
        return "name"
    return ""


def _generate(plans: list[_Plan], pool, cache: AnswerCache | None, batch_size: int, bar=None) -> None:
    """Generate every plan still without an answer, grouped by model, adapter and length (`generate_unique`)."""
    groups: dict[tuple, list[_Plan]] = {}
    for p in plans:
        if p.gen is None:
            groups.setdefault((p.system.model, p.system.adapter, p.system.max_new_tokens, p.system.contrast,
                               p.contrast is not None), []).append(p)
    for group in groups.values():
        system = group[0].system

        def gen(batch, s=system):  # batch: (messages, passage-free messages or None) per answer
            chats = [m for m, _ in batch]
            if batch[0][1] is None:
                return pool.generate_batch(s, chats, batch_size)
            return pool.generate_batch(s, chats, batch_size, contrast=[c for _, c in batch])

        done = generate_unique([(p.key, (p.messages, p.contrast)) for p in group], gen, cache, batch_size, bar)
        for p, (record, _, from_cache) in zip(group, done, strict=True):
            p.gen, p.cached = record, from_cache


def _row(p: _Plan, version: str) -> dict:
    item, hits, gen = p.item, p.hits, p.gen
    passages = [h.text for h in hits] if hits is not None else None
    quote, text = house.split_quote(gen["text"])  # a quote line is the model's working, not its answer
    row = {"arm": p.system.name, "id": item.id if item else "", "kind": item.kind if item else "typed",
           "question": p.text, "answer": text, "quote": quote, "doc_ids": [h.doc_id for h in hits] if hits is not None else [],
           "scores": [round(_relevance(h), 4) for h in hits] if hits is not None else [],
           "passages": passages or [], "gated": bool(p.gated), "gate": p.gated,
           "gold_retrieved": (bool(gold_found(item.gold(version), hits, version))
                              if item is not None and item.answerable and hits is not None else None),
           "retrieval_s": p.retrieval_s, "generation_s": gen["total_s"], "latency_s": p.retrieval_s + gen["total_s"],
           "new_tokens": gen["n_new_tokens"], "batch_size": gen.get("batch_size", 1),
           "prompt_tokens": gen.get("n_prompt_tokens", 0), "ttft_s": gen.get("ttft_s", 0.0),
           "tokens_per_s": gen["n_new_tokens"] / gen["total_s"] if gen["total_s"] > 0 else float("nan"),
           "cached": p.cached}
    if item is not None:
        row.update({"phrasing": item.phrasing, "phrasing_seen": item.phrasing_seen})
        score = score_answer(item, text, passages)
        row.update({k: v for k, v in score.items() if k not in ("id", "kind")})
    else:
        parsed = house.parse(text)
        row.update({"correct": None, "lenient_correct": None, "source_ok": None, "fact_ok": None, "stale": None,
                    "abstained": parsed.abstained, "compliant": parsed.compliant, "grounded": None})
    return row


def _engine(pool, systems: Sequence[System]) -> str:
    """The engine that will answer: a fast engine is set up (converted) first, because falling back decides the keys."""
    engine = getattr(pool, "engine", "transformers")
    if engine != "transformers":
        for s in systems:
            if not s.contrast:  # a contrasting system always answers with transformers
                pool.fast(s.model, s.adapter)
    return getattr(pool, "engine", "transformers")


def answer(system: System, question, pool: ModelPool | None = None, cache: AnswerCache | None = None,
           version: str = CURRENT_VERSION) -> dict:
    """One system answers one question (a QA item or a string): a row with the answer, its passages, timings and,
    for QA items, every metric of `evaluation.score_answer`."""
    cache, pool = as_cache(cache), pool or ModelPool()
    plan = _plan(system, question, cache, _engine(pool, [system]))
    _generate([plan], pool, cache, batch_size=1)
    return _row(plan, version)


def compare(questions: Sequence, systems: Sequence[System], *, pool: ModelPool | None = None,
            cache: AnswerCache | bool = True, version: str = CURRENT_VERSION, batch_size: int = 8,
            show_progress: bool = True, run_code: bool = True):
    """Every system answers every question: one row per (system, question) with answer, sources, metrics and timings.

    questions: QA items (scored) or strings (answered, format-checked only). cache: True = the user cache
    (`cache_dir("compare")`), an AnswerCache, or False. Answers not in the cache are generated `batch_size` at a time
    per (model, adapter); a batched answer's generation_s is its share of the batch's time (throughput, not the
    latency one user would see: ask one question, as the dashboard does, for that). run_code: run each answer's code
    block under NumPy 2.4.6 in a sandbox (`code_runs`, `code_error`; results cached by the code's hash).
    >>> df = compare(load_qa("test")[:3], make_arms(index, adapter)); arm_metrics(df)  # doctest: +SKIP
    """
    import pandas as pd
    from tqdm.auto import tqdm

    if not systems:
        raise ValueError("no systems to compare")
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique (they label the rows): {names}")
    pool = pool or ModelPool()
    cache = as_cache(cache)
    plans = [_plan(s, q, cache, _engine(pool, systems)) for s in systems for q in questions]
    todo = sum(p.gen is None for p in plans)
    with tqdm(total=todo, desc=f"answering ({sum(bool(p.gated) for p in plans)} of {len(plans)} abstained without the model)",
              disable=not show_progress or not todo) as bar:
        _generate(plans, pool, cache, batch_size, bar)
    df = pd.DataFrame([_row(p, version) for p in plans])
    return add_code_runs(df, cache=cache is not None) if run_code else df


# --- the dashboard's pure functions (wired to controls in ragft/ui/widgets.py) -----------------------------------------
def configure(systems: Sequence[System], *, top_k: int | None = None, threshold: float | None = None,
              retriever=None, retriever_label: str | None = None, adapter: bool = True,
              name_check: bool | None = None) -> list[System]:
    """The dashboard's knobs applied to a list of systems: retrieval knobs (name_check among them; None leaves each
    system's own) reach only systems that retrieve; adapter=False takes every adapter off (each tuned arm then runs its
    prompt on the base model)."""
    out = []
    for s in systems:
        changes: dict = {}
        if s.retriever is not None:
            if top_k is not None:
                changes["top_k"] = top_k
            changes["threshold"] = threshold
            if name_check is not None:
                changes["name_check"] = name_check
            if retriever is not None:
                changes["retriever"] = retriever
                changes["retriever_label"] = retriever_label if retriever_label is not None else retriever_kind(retriever)
        if not adapter and s.adapter is not None:
            changes["adapter"] = None
        out.append(s.replace(**changes) if changes else s)
    return out


def ask(question, systems: Sequence[System], arms: Sequence[str] | None = None, *, top_k: int | None = None,
        threshold: float | None = None, retriever=None, retriever_label: str | None = None, adapter: bool = True,
        name_check: bool | None = None, pool: ModelPool | None = None, cache: AnswerCache | bool = True):
    """One question (a QA item or typed text) through the chosen arms with the dashboard's knobs: `compare`'s rows."""
    chosen = [s for s in systems if arms is None or s.name in arms]
    if not chosen:
        raise ValueError("choose at least one arm")
    chosen = configure(chosen, top_k=top_k, threshold=threshold, retriever=retriever, retriever_label=retriever_label,
                       adapter=adapter, name_check=name_check)
    return compare([question], chosen, pool=pool, cache=cache, show_progress=False)
