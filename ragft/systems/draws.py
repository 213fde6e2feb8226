"""The RAFT adapter's training draws judged: every draw (seed) answers the same dev questions through the one
answering path and the best on dev becomes the RAFT arm (`raft_draws`, `pick_draw`); `tuned_adapters` is
`ragft.training.draws.tuned_adapters` with this judge. Training itself is `ragft.training.draws`'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.paths import CURRENT_VERSION, OLD_VERSION
from ..generation.answers import AnswerCache
from ..generation.pool import ModelPool
from ..training import draws as training_draws
from ..training.draws import TunedAdapters, train_draws
from .answering import compare
from .arms import ArmSettings
from .system import System

# the dev measures of a training draw, in the order `pick_draw` ranks by
DRAW_RANKING = ("accuracy", "format_compliance")
DRAW_METRICS = ("accuracy", "accuracy_low", "accuracy_high", "format_compliance", "reading_rate", "abstention_recall")


@dataclass
class RaftDraws:
    """The RAFT adapter's training draws (`DrawSettings.count`): `table` has one row per seed (dev metrics,
    held-out loss, training seconds, the adapter's folder), `results` the dev answers, `chosen` the seed picked."""

    table: Any  # pandas.DataFrame indexed by seed
    results: Any  # pandas.DataFrame, one row per (draw, dev question), arms named "raft, seed N"
    chosen: int
    adapters: dict[int, Path]
    logs: dict[int, dict]
    data: dict[int, list[dict]]


def draw_arm_name(seed: int) -> str:
    return f"raft, seed {seed}"


def pick_draw(table) -> int:
    """The seed of the best draw on dev: highest accuracy, then highest format compliance, then the lowest seed (so a
    tie keeps the first draw). `table`: one row per seed (index) with the DRAW_RANKING columns."""
    if len(table) == 0:
        raise ValueError("no training draws to pick from")
    missing = [c for c in DRAW_RANKING if c not in table.columns]
    if missing:
        raise ValueError(f"the draw table lacks {missing}")
    ranked = sorted(table.index, key=lambda seed: tuple(-float(table.loc[seed, c]) for c in DRAW_RANKING) + (seed,))
    return int(ranked[0])


def draw_dev_set(settings: ArmSettings) -> tuple[list, list]:
    """The dev questions and documents every training draw is judged on: a kind-stratified sample of
    `draws.dev_questions` dev items and their 2.4.6 documents plus distractors (`draws.dev_docs`), as
    benchmarks/raft_recipe.py measures a recipe; with the change notes since 1.26.4 (`retrieval.change_notes`) that the arms'
    synced index carries."""
    from ..data.corpus import load_corpus, with_change_notes
    from ..data.datasets import load_qa, sample, subset_corpus

    items = sample(load_qa("dev"), settings.draws.dev_questions)
    docs = subset_corpus(load_corpus(CURRENT_VERSION), items, CURRENT_VERSION, settings.draws.dev_docs)
    return items, with_change_notes(docs, load_corpus(OLD_VERSION)) if settings.retrieval.change_notes else docs


def dev_threshold(settings: ArmSettings) -> tuple[Any, list]:
    """The similarity threshold calibrated on `draw_dev_set`'s questions over a dense index of its documents (notebook
    03's rule), as notebook 05 and `make final-train` set it: (the `ThresholdCalibration`, the dev questions)."""
    from ..evaluation.calibration import calibrate_threshold
    from ..retrieval.retrievers import build_retriever

    items, docs = draw_dev_set(settings)
    index = build_retriever(docs, mode="dense", embedder="minilm", show_progress=False)
    return calibrate_threshold(index, [q.question for q in items if q.answerable],
                               [q.question for q in items if not q.answerable]), items


def draw_system(settings: ArmSettings, seed: int, adapter, retriever) -> System:
    """How a training draw answers on dev: the RAFT arm's prompt, passages and decoding over a hybrid index, with no
    similarity threshold (every answer is the adapter's own), as benchmarks/raft_recipe.py answers."""
    return System(draw_arm_name(seed), adapter=adapter, retriever=retriever, retriever_label="hybrid",
                  top_k=settings.retrieval.top_k, threshold=None, passage_chars=settings.retrieval.passage_chars,
                  prompt="none", max_new_tokens=settings.raft_max_new_tokens, contrast=settings.answer.raft_contrast,
                  model=settings.answer.llm)


def raft_draws(settings: ArmSettings, pairs: Sequence[dict], show_progress: bool = True,
               first: list[dict] | None = None, pool: ModelPool | None = None,
               cache: AnswerCache | bool = True) -> RaftDraws:
    """Train (or load from the adapter cache) one RAFT adapter per seed of `settings.draw_seeds`, let each answer the
    dev questions of `draw_dev_set`, and pick the best on dev (`pick_draw`). Only the seed changes between draws: the
    RAFT mix (oracle or not, distractors) and the training order. first: the first seed's RAFT pairs, if already built.
    Answers come from the answer `cache` when the same adapter answered the same prompts before."""
    import pandas as pd

    from ..evaluation.arms import summarize_arms
    from ..retrieval.retrievers import build_retriever

    adapters_, logs, data = train_draws(settings, pairs, show_progress, first)
    items, docs = draw_dev_set(settings)
    retriever = build_retriever(docs, mode="hybrid", embedder="minilm", show_progress=False)
    systems_ = [draw_system(settings, seed, adapters_[seed], retriever) for seed in settings.draw_seeds]
    results = compare(items, systems_, pool=pool, cache=cache, show_progress=show_progress)
    table = summarize_arms(results, metrics=DRAW_METRICS, order=[s.name for s in systems_])
    table.index = pd.Index(settings.draw_seeds, name="seed")
    table["held_out_loss"] = [_last_eval_loss(logs[s]) for s in settings.draw_seeds]
    table["train_s"] = [logs[s].get("total_train_s", float("nan")) for s in settings.draw_seeds]
    table["adapter"] = [adapters_[s].name for s in settings.draw_seeds]
    chosen = pick_draw(table)
    table["chosen"] = [s == chosen for s in settings.draw_seeds]
    return RaftDraws(table, results, chosen, adapters_, logs, data)


def _last_eval_loss(log: dict) -> float:
    evals = log.get("eval_losses") or []
    return float(evals[-1][1]) if evals else float("nan")


def tuned_adapters(settings: ArmSettings, show_progress: bool = True, pairs: Sequence[dict] | None = None) -> TunedAdapters:
    """Train (or load from the adapter cache) the fine-tuned arm's adapter and the RAFT arm's
    (`ragft.training.draws.tuned_adapters`); with `settings.draws.count` > 1 the RAFT arm's is the best draw on dev
    (`raft_draws`)."""
    return training_draws.tuned_adapters(settings, show_progress, pairs, judge=raft_draws)
