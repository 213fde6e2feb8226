"""The tuned arms' adapters: the fine-tuned arm's LoRA adapter on a training set, the RAFT arm's on RAFT pairs made
from it (`raft_data`), and one RAFT adapter per training draw (seed) when more than one is asked for.

It trains (or loads from the adapter cache) and nothing more: judging the draws on dev questions needs answering, so a
caller passes that in (`judge`; `ragft.systems.raft_draws`). Settings are read duck-typed (`ragft.systems.ArmSettings`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.paths import CURRENT_VERSION, OLD_VERSION, task_pairs_path, train_path
from ..data.datasets import load_train_pairs
from . import finetune
from .pairs import fact_update_pairs, qa_documents, raft_training_set, refresh_pairs, steps_for

# a built-in training set: its file, and the release its RAFT distractors come from (the one its pairs were written from)
TRAINING_SETS = {"task": (task_pairs_path, CURRENT_VERSION), "house": (train_path, OLD_VERSION)}


@dataclass
class TunedAdapters:
    """The two adapters of the tuned arms and how they were made (training logs, the RAFT pairs)."""

    sft: Path
    raft: Path
    sft_log: dict
    raft_log: dict
    raft_data: list[dict]
    raft_build_s: float
    # with DrawSettings.count > 1: every draw and how it did on dev (`ragft.systems.RaftDraws`); the RAFT fields
    # above are the chosen draw's
    draws: Any = None


def raft_data(pairs: Sequence[dict], settings: Any, training_set: str | None,
              show_progress: bool = False) -> list[dict]:
    """The RAFT arm's training pairs made from `pairs`, one per training example (`settings.raft_examples`): BM25
    passages from the release a built-in `training_set` was written from (for the task pairs never a document the QA
    set asks about), or from 1.26.4 for your own pairs (training_set None)."""
    version = TRAINING_SETS[training_set][1] if training_set else OLD_VERSION
    return raft_training_set(pairs, settings.raft_examples, settings.raft(), version=version,
                             show_progress=show_progress, exclude_docs=qa_documents() if training_set == "task" else ())


def train_draws(settings: Any, pairs: Sequence[dict], show_progress: bool = True,
                first: list[dict] | None = None) -> tuple[dict[int, Path], dict[int, dict], dict[int, list[dict]]]:
    """Train (or load from the adapter cache) one RAFT adapter per seed of `settings.draw_seeds`: (adapters, training
    logs, RAFT pairs), each by seed. Only the seed changes between draws: the RAFT mix and the training order.
    first: the first seed's RAFT pairs, if already built."""
    adapters_, logs, data = {}, {}, {}
    for i, seed in enumerate(settings.draw_seeds):
        draw = settings.with_seed(seed)
        data[seed] = first if (i == 0 and first is not None) else raft_data(pairs, draw, settings.training.pairs)
        adapters_[seed] = finetune.train_or_load_adapter(data[seed], draw.lora(), draw.raft_train(),
                                                         model_name=settings.answer.llm, show_progress=show_progress)
        logs[seed] = finetune.read_training_log(adapters_[seed])
    return adapters_, logs, data


def tuned_adapters(settings: Any, show_progress: bool = True, pairs: Sequence[dict] | None = None,
                   judge: Callable[..., Any] | None = None) -> TunedAdapters:
    """Train (or load from the adapter cache) the fine-tuned arm's adapter on `settings.training.pairs` and the RAFT arm's on
    RAFT pairs made from them (`raft_data`). pairs: other pairs of that training set's kind (a variant built by
    `pair_builder.build_pairs` for a dev measurement), instead of its file. With `settings.draws.count` > 1,
    `judge(settings, pairs, show_progress=, first=)` trains the draws and picks one (`ragft.systems.raft_draws`)."""
    if settings.draws.count > 1 and judge is None:
        raise ValueError("more than one RAFT draw needs a judge: use ragft.systems.tuned_adapters")
    if pairs is None:
        pairs, _ = load_train_pairs(TRAINING_SETS[settings.training.pairs][0]())
    sft = finetune.train_or_load_adapter(pairs, settings.lora(), settings.sft_train(), model_name=settings.answer.llm,
                                         show_progress=show_progress)
    t0 = time.perf_counter()
    raft_pairs = raft_data(pairs, settings, settings.training.pairs)
    raft_build_s = time.perf_counter() - t0
    if settings.draws.count > 1:
        draws = judge(settings, pairs, show_progress=show_progress, first=raft_pairs)
        return TunedAdapters(sft, draws.adapters[draws.chosen], finetune.read_training_log(sft),
                             draws.logs[draws.chosen], draws.data[draws.chosen], raft_build_s, draws)
    raft = finetune.train_or_load_adapter(raft_pairs, settings.lora(), settings.raft_train(), model_name=settings.answer.llm,
                                          show_progress=show_progress)
    return TunedAdapters(sft, raft, finetune.read_training_log(sft), finetune.read_training_log(raft), raft_pairs,
                         raft_build_s)


@dataclass
class UpdateRetrain:
    """The fine-tuned arm retrained on a knowledge update (`retrain_on_update`): its adapter, log and what it saw."""

    adapter: Path
    log: dict
    own_pairs: list[dict]  # the arm's own training pairs, refreshed to the new release where they were written from the old
    refresh_counts: dict
    new_pairs: list[dict]  # every fact the update brings, each in up to `phrasings` train phrasings
    steps: int


def retrain_on_update(settings: Any, docs_old: Sequence, docs_new: Sequence, repeats: int = 3, phrasings: int = 3,
                      max_steps: int | None = None, show_progress: bool = True) -> UpdateRetrain:
    """The fair fine-tuned arm of a knowledge update (notebook 05, `make final`'s training stage): its own pairs plus every
    fact that changed from `docs_old` to `docs_new` (`pairs.fact_update_pairs`), trained until each pair was seen
    `repeats` times and never for fewer steps than the arm itself (Ovadia et al. 2023: paraphrased repetitions).
    max_steps: a cap (the smoke profile's)."""
    own, _ = load_train_pairs(TRAINING_SETS[settings.training.pairs][0]())
    if settings.training.pairs == "house":  # written from 1.26.4: rewritten from 2.4.6
        own, counts = refresh_pairs(own, CURRENT_VERSION)
    else:  # the task pairs were written from 2.4.6 already
        counts = {"unchanged": len(own)}
    new = fact_update_pairs(docs_old, docs_new, phrasings=phrasings, seed=settings.training.seed)
    base = settings.sft_train()
    steps = max(base.steps, steps_for(len(own) + len(new), base.batch_size, repeats, base.grad_accumulation, base.held_out))
    steps = min(steps, max_steps) if max_steps else steps
    adapter = finetune.train_or_load_adapter(own + new, settings.lora(), replace(base, steps=steps),
                                             model_name=settings.answer.llm, show_progress=show_progress)
    return UpdateRetrain(adapter, finetune.read_training_log(adapter), own, counts, new, steps)
