"""The arms of notebooks 05 and 06: `make_arms` builds base, rag, fine-tuned, hybrid and raft `System`s by one rule
(an untuned model is told the house format, a tuned one is not), `ArmSettings` holds what the two notebooks share
(small settings by concern) and `arms_for` makes the arms from it. It trains nothing (`ragft.training.draws`) and answers nothing (`answering`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from ..core.profiles import ANSWER_MAX_NEW_TOKENS, DEFAULT_TOP_K, Profile
from ..generation.models import DEFAULT_LLM
from ..training import finetune
from ..training.draws import TRAINING_SETS, TunedAdapters
from ..training.pairs import RaftSettings
from .system import System

# a quote line (house.render_quote: a doc id and at most ~125 characters of a passage; 96 on average in the task
# pairs' RAFT targets) is up to ~65 SmolLM2 tokens when it quotes a signature (about 3 characters a token)
QUOTE_NEW_TOKENS = 64


def make_arms(retriever=None, sft_adapter: str | os.PathLike | None = None, raft_adapter: str | os.PathLike | None = None,
              model: str = DEFAULT_LLM, top_k: int = DEFAULT_TOP_K, threshold: float | None = None, passage_chars: int | None = 600,
              max_new_tokens: int = ANSWER_MAX_NEW_TOKENS, retriever_label: str = "",
              raft_max_new_tokens: int | None = None, raft_contrast: float = 0.0,
              name_check: bool = False) -> list[System]:
    """The arms: base, rag, fine-tuned, hybrid (fine-tuned + rag) and raft (tuned on retrieved passages + rag; with
    raft_max_new_tokens when its answers start with a quote line, `RaftRecipe.quote`).

    The rule that fixes the prompts: an untuned model is TOLD the house format (system prompt "house"); a tuned model is
    not (prompt "none"), because it was trained without one. Arms whose part is missing (no retriever, no adapter) are
    left out. raft_contrast: the RAFT arm's context-aware decoding (`System.contrast`); name_check: every retrieving
    arm's `System.name_check`.
    """
    common = dict(model=model, top_k=top_k, passage_chars=passage_chars, max_new_tokens=max_new_tokens)
    rag = dict(retriever=retriever, retriever_label=retriever_label, threshold=threshold, name_check=name_check)
    sft = str(sft_adapter) if sft_adapter else None
    raft = str(raft_adapter) if raft_adapter else None
    arms = [System("base", prompt="house", **common)]
    if retriever is not None:
        arms.append(System("rag", prompt="house", **rag, **common))
    if sft:
        arms.append(System("fine-tuned", adapter=sft, prompt="none", **common))
    if sft and retriever is not None:
        arms.append(System("hybrid", adapter=sft, prompt="none", **rag, **common))
    if raft and retriever is not None:
        arms.append(System("raft", adapter=raft, prompt="none", **rag, contrast=raft_contrast,
                           **{**common, "max_new_tokens": raft_max_new_tokens or max_new_tokens}))
    return arms


# --- what notebooks 05 and 06 share, by concern (why each value: docs/decisions.md) ------------------------------------
@dataclass(frozen=True)
class RetrievalSettings:
    """How a retrieving arm reads the index."""

    top_k: int = DEFAULT_TOP_K  # passages each retrieving arm answers from (docs/decisions.md, top_k)
    threshold: float | None = 0.5  # cosine below which a retrieving arm abstains without generating; None: off
    passage_chars: int | None = 300  # each passage cut to this length, in RAFT training pairs and prompts alike
    change_notes: bool = True  # the index carries what changed in each signature since 1.26.4 (decisions: change_notes)
    name_check: bool = True  # abstain unread when no passage documents the API the question names (decisions: name_check)


@dataclass(frozen=True)
class AnswerSettings:
    """How every arm answers."""

    llm: str = DEFAULT_LLM  # the model every arm shares
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS  # a cap only: generation stops at the answer's Source line
    raft_contrast: float = 0.5  # the RAFT arm's context-aware decoding alpha, 0 = off (decisions: raft_contrast)


@dataclass(frozen=True)
class TrainingSettings:
    """The LoRA adapters both tuned arms train, and on which pairs."""

    lora_r: int = 16  # LoRA rank of both adapters
    lora_alpha: int = 32  # LoRA scale numerator: the scale is lora_alpha / lora_r
    train_steps: int = 60  # optimizer steps of each adapter (a profile's train_steps in the notebooks)
    seed: int = 0  # training order, RAFT mix; the RAFT draws use seed, seed + 1, ...
    pairs: str = "task"  # a built-in training set of TRAINING_SETS (decisions: pairs)

    def __post_init__(self):
        if self.pairs not in TRAINING_SETS:
            raise ValueError(f"pairs must be one of {tuple(TRAINING_SETS)}, not {self.pairs!r}")


@dataclass(frozen=True)
class RaftRecipe:
    """How the RAFT arm's training pairs are made and trained (`pairs.RaftSettings`)."""

    passages: int = 3  # passages in each RAFT training pair, apart from answering's top_k (decisions: raft_passages)
    p_oracle: float = 0.8  # share of answerable pairs whose passages hold the answer (the paper's P)
    no_oracle_target: str = "answer"  # what the rest are trained to say (decisions: raft_no_oracle_target)
    lr: float = 1e-3  # the RAFT adapter's learning rate (decisions: raft_lr)
    batch_size: int = 2  # RAFT prompts are ~4x longer than plain ones: a smaller batch keeps a step affordable on CPU
    quote: bool = False  # oracle targets start with a quote line of the gold passage (decisions: raft_quote)
    entry_gold: bool = True  # a changed-parameter pair's oracle is its parameter's noted entry (decisions: raft_entry_gold)


@dataclass(frozen=True)
class DrawSettings:
    """The RAFT adapter's training draws and the dev set they are judged on; sizes are a profile's (`core.profiles`)."""

    count: int = Profile.raft_draws  # RAFT adapters trained with seeds seed, seed + 1, ... (decisions: raft_draws)
    dev_questions: int = Profile.draw_dev_questions  # dev questions each draw answers when count > 1
    dev_docs: int | None = Profile.draw_dev_docs  # documents of the draws' dev index

    def __post_init__(self):
        if self.count < 1:
            raise ValueError(f"raft_draws (DrawSettings.count) must be at least 1, not {self.count}")
        if self.dev_questions < 1:
            raise ValueError(f"draw_dev_questions (DrawSettings.dev_questions) must be at least 1, not {self.dev_questions}")

    @classmethod
    def of(cls, profile: Profile) -> DrawSettings:
        """A profile's draw sizes (`profiles.resolve(...)`)."""
        return cls(profile.raft_draws, profile.draw_dev_questions, profile.draw_dev_docs)


@dataclass(frozen=True)
class ArmSettings:
    """What notebooks 05 and 06 share, so that 06 gets 05's adapters from the cache instead of training new ones.
    >>> ArmSettings(retrieval=RetrievalSettings(top_k=3), draws=DrawSettings.of(profiles.resolve("smoke")))  # doctest: +SKIP
    """

    retrieval: RetrievalSettings = field(default_factory=RetrievalSettings)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    recipe: RaftRecipe = field(default_factory=RaftRecipe)
    draws: DrawSettings = field(default_factory=DrawSettings)

    @property
    def draw_seeds(self) -> list[int]:
        """The seeds of the RAFT adapter's training draws: seed, seed + 1, ... (`draws.count` of them)."""
        return [self.training.seed + i for i in range(self.draws.count)]

    def with_seed(self, seed: int) -> ArmSettings:
        """The same settings trained with another seed (one training draw)."""
        return replace(self, training=replace(self.training, seed=seed))

    def with_threshold(self, threshold: float | None) -> ArmSettings:
        """The same settings with another abstention threshold (e.g. the one calibrated on dev); None: off."""
        return replace(self, retrieval=replace(self.retrieval, threshold=threshold))

    def raft(self) -> RaftSettings:
        r = self.recipe
        return RaftSettings(top_k=r.passages, p_oracle=r.p_oracle, passage_chars=self.retrieval.passage_chars,
                            seed=self.training.seed, no_oracle_target=r.no_oracle_target, quote=r.quote,
                            entry_gold=r.entry_gold)

    @property
    def raft_examples(self) -> int:
        """RAFT training pairs to make: one per training example (steps * RAFT batch size)."""
        return self.training.train_steps * self.recipe.batch_size

    @property
    def raft_max_new_tokens(self) -> int:
        return self.answer.max_new_tokens + (QUOTE_NEW_TOKENS if self.recipe.quote else 0)

    def lora(self) -> finetune.LoraSettings:
        return finetune.LoraSettings(lora_r=self.training.lora_r, lora_alpha=self.training.lora_alpha)

    def sft_train(self) -> finetune.TrainSettings:
        return finetune.TrainSettings(steps=self.training.train_steps, seed=self.training.seed)

    def raft_train(self) -> finetune.TrainSettings:
        # RAFT prompts are ~4x longer than plain ones: a smaller batch keeps a step affordable on CPU
        return finetune.TrainSettings(steps=self.training.train_steps, lr=self.recipe.lr,
                                      batch_size=self.recipe.batch_size, max_length=768, seed=self.training.seed)


def arms_for(retriever, adapters: TunedAdapters | None, settings: ArmSettings, retriever_label: str = "") -> list[System]:
    """`make_arms` with the shared settings: base, rag, fine-tuned, hybrid and raft."""
    r, a = settings.retrieval, settings.answer
    return make_arms(retriever, adapters.sft if adapters else None, adapters.raft if adapters else None,
                     model=a.llm, top_k=r.top_k, threshold=r.threshold, passage_chars=r.passage_chars,
                     max_new_tokens=a.max_new_tokens, retriever_label=retriever_label,
                     raft_max_new_tokens=settings.raft_max_new_tokens, raft_contrast=a.raft_contrast,
                     name_check=r.name_check)
