"""A `System`: one way to answer (model, adapter or none, retriever or none, threshold, name check, prompt style), and
the chat messages it sends for a question (`system_messages`).

It does not retrieve (its retriever does), generate (`ragft.generation.pool`), cache (`ragft.generation.answers`) or
answer (`answering.answer` / `compare`). Introduced in notebooks/05_hybrid.ipynb.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import house
from ..core.profiles import ANSWER_MAX_NEW_TOKENS, DEFAULT_TOP_K
from ..generation import decoding as generation
from ..generation.decoding import PASSAGE_ORDER, chat_messages, context_message, prompt_order
from ..generation.models import DEFAULT_LLM, spec

PROMPTS = ("house", "none")  # the system prompt: "house" TELLS the format; "none" for tuned models, which LEARNED it
ARMS = ("base", "rag", "fine-tuned", "hybrid", "raft")


@dataclass(frozen=True)
class System:
    """One way to answer: model + adapter (or none) + retriever (or none) + threshold + prompt.

    threshold: passed to the retriever (cosine for dense and hybrid, raw score for BM25); a question left with no
    passage gets the fixed abstention reply without any generation (the retrieval system abstains, not the model).
    name_check: a question that names APIs in backticks (`np.X`) of which no retrieved passage documents any gets
    that reply too, without generation (`retrievers.undocumented_names`). prompt: "house" puts `house.SYSTEM_PROMPT` first;
    "none" gives no system prompt (the tuned arms were trained without one). passage_chars cuts each passage.
    >>> System("rag", retriever=my_index, top_k=2, threshold=0.5)  # doctest: +SKIP
    """

    name: str
    model: str = DEFAULT_LLM
    adapter: str | None = None  # a LoRA adapter folder (finetune.train_or_load_adapter); None = the base model
    retriever: Any = field(default=None, compare=False, repr=False)  # a ragft.retrieval.index Retriever; None = no retrieval
    retriever_label: str = ""  # how tables name the retriever, e.g. "hybrid, numpy 2.4.6"
    top_k: int = DEFAULT_TOP_K
    threshold: float | None = None
    name_check: bool = False  # abstain without generating when no passage documents the API the question names
    prompt: str = "house"
    passage_chars: int | None = 600
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS
    passage_order: str = PASSAGE_ORDER  # "best_last" (the best passage next to the question) | "best_first"
    # context-aware decoding (`generation.context_contrast`): alpha > 0 contrasts each step with the same prompt without
    # its passages; 0 = off. Only for a system that retrieves; transformers only (a fast engine cannot run it).
    contrast: float = 0.0
    # worked examples sent before the question (`pairs.Demonstrations`: in-context learning instead of training);
    # None = none. They are part of the messages, so the answer cache keys them.
    examples: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, not {self.prompt!r}")
        generation.check_passage_order(self.passage_order)  # an unknown order fails here
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, not {self.top_k}")
        if self.contrast < 0:
            raise ValueError(f"contrast must be >= 0 (0 = off), not {self.contrast}")
        if self.adapter is not None and not (Path(self.adapter) / "adapter_config.json").exists():
            raise FileNotFoundError(f"system {self.name!r}: no adapter at {self.adapter} (no adapter_config.json); "
                                    "train one with ragft.training.finetune.train_or_load_adapter")
        spec(self.model)  # unknown model names fail here, not in the middle of a comparison

    def replace(self, **changes) -> System:
        """A copy with some parts swapped: `rag.replace(name="rag top_k=1", top_k=1)`."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """The system as a table row (what the arms table prints next to its numbers)."""
        row = {"arm": self.name, "model": self.model, "adapter": adapter_label(self.adapter),
               "retrieval": (self.retriever_label or retriever_kind(self.retriever)) if self.retriever is not None else "none",
               "top_k": self.top_k if self.retriever is not None else None,
               "threshold": self.threshold if self.retriever is not None else None, "prompt": self.prompt,
               "contrast": self.contrast if self.retriever is not None else None}
        if self.name_check and self.retriever is not None:
            row["name_check"] = True
        return row if self.examples is None else {**row, "examples": self.examples.k}


def retriever_kind(retriever) -> str:
    """"dense" | "exact" | "bm25" | "hybrid" from a retriever's class (for labels only)."""
    name = type(retriever).__name__
    return {"DenseIndex": "dense", "ExactRetriever": "exact", "BM25Retriever": "bm25",
            "HybridRetriever": "hybrid"}.get(name, name)


def adapter_label(adapter: str | os.PathLike | None) -> str:
    """"none", or the adapter folder's name ("smollm2-135m-r16-s60-1a2b3c...")."""
    return "none" if adapter is None else Path(adapter).name


def system_messages(system: System, question: str, hits: Sequence | None) -> list[dict]:
    """The chat messages `system` sends for `question` given its retrieved hits (None when it has no retriever).

    prompt "house": `generation.RAG_SYSTEM_PROMPT` with passages (notebook 03's RAG pipeline), `house.SYSTEM_PROMPT` without.
    prompt "none": no system turn. The passages are shown in `system.passage_order` (the best last, by default).
    `system.examples` puts its worked examples (user / assistant turns) between the system turn and the question.
    """
    if hits is None:
        return _with_examples(system, question,
                              chat_messages(question, house.SYSTEM_PROMPT if system.prompt == "house" else None))
    return _with_examples(system, question, chat_messages(
        context_message(question, prompt_order(hits, system.passage_order), system.passage_chars),
        generation.RAG_SYSTEM_PROMPT if system.prompt == "house" else None))


def contrast_messages(system: System, question: str) -> list[dict]:
    """The chat `system` would send without its passages (same system turn and examples, the bare question): the
    other half of context-aware decoding (`System.contrast`)."""
    return _with_examples(system, question,
                          chat_messages(question, generation.RAG_SYSTEM_PROMPT if system.prompt == "house" else None))


def _with_examples(system: System, question: str, messages: list[dict]) -> list[dict]:
    if system.examples is None:
        return messages
    return messages[:-1] + system.examples.messages(question) + messages[-1:]
