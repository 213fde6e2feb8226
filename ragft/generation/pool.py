"""The loaded models: `ModelPool` holds each base model once, puts every LoRA adapter on it under its own name and
switches per call (or hands a chat to a fast engine); `generate_chats` answers chats with a loaded model.

It does not cache answers (`answers.AnswerCache`), build prompts or know what a System is: a system is read duck-typed
(`SystemLike`: model, adapter, max_new_tokens, contrast).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
from pathlib import Path
from typing import Any, Protocol

from ..core.cache import files_state
from . import decoding as generation
from . import engines
from .decoding import Generation
from .models import load_llm


class SystemLike(Protocol):
    """What the pool and the answer cache read of a system (`ragft.systems.System`)."""

    model: str
    adapter: str | None
    max_new_tokens: int
    contrast: float
    prompt: str


@functools.lru_cache(maxsize=64)
def _adapter_hash(path: str, state: str) -> str:
    h = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"):
        p = Path(path) / name
        if p.exists():
            h.update(name.encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def adapter_hash(path: str | os.PathLike | None) -> str | None:
    """sha256 of an adapter's config and weights (memoised by file sizes and mtimes); None for no adapter."""
    if path is None:
        return None
    return _adapter_hash(str(Path(path).resolve()), files_state(path, "adapter_*"))


class ModelPool:
    """The models `compare` generates with: each base model loaded once (full precision), every adapter put on it under
    its own name and switched per call; a system without adapter runs with the adapters disabled (same weights).

    Generation on CPU happens on the full-precision base: 4-bit saves memory in training, not time in inference.
    engine="ct2" answers with CTranslate2 int8, engine="ortgenai" with ONNX Runtime GenAI fp32 (`engines.py`; each
    adapter merged and converted once) where it can; when it cannot, one message says why and every answer comes from
    transformers.
    """

    def __init__(self, dtype=None, engine: str = "transformers"):
        if engine not in engines.ENGINES:
            raise ValueError(f"engine must be one of {engines.ENGINES}, not {engine!r}")
        self.dtype = dtype
        self.engine = engine
        self._models: dict[str, list] = {}  # model name -> [model, tok, {adapter folder: adapter name}]
        self._fast: dict[tuple, Any] = {}  # (model name, adapter folder) -> Ct2Generator | OrtGenAIGenerator
        self.load_s = 0.0

    def get(self, model_name: str, adapter: str | None):
        """(model, tokenizer, context manager) with `adapter` active, or every adapter off when adapter is None."""
        if model_name not in self._models:
            t0 = time.perf_counter()
            model, tok = load_llm(model_name, dtype=self.dtype)
            model.eval()
            self._models[model_name] = [model, tok, {}]
            self.load_s += time.perf_counter() - t0
        entry = self._models[model_name]
        model, tok, names = entry
        if adapter is None:
            ctx = model.disable_adapter() if names else contextlib.nullcontext()
            return model, tok, ctx
        key = str(Path(adapter).resolve())
        if key not in names:
            from peft import PeftModel  # peft loads torch: imported when the first adapter is put on

            from ..training import adapters  # Training builds on Generation: imported where an adapter is put on

            t0 = time.perf_counter()
            adapters.check_adapter_base(model, adapter)
            name = f"a{len(names)}"
            if names:
                model.load_adapter(key, adapter_name=name)
            else:
                model = PeftModel.from_pretrained(model, key, adapter_name=name)
                model.eval()
                entry[0] = model
            names[key] = name
            self.load_s += time.perf_counter() - t0
        model.set_adapter(names[key])
        return model, tok, contextlib.nullcontext()

    def fast(self, model_name: str, adapter: str | None):
        """The fast engine's generator for a model and adapter (converted once), or None: transformers answers instead
        (engine "transformers", or the fast engine unavailable: said once, then the pool stays on transformers)."""
        if self.engine == "transformers":
            return None
        key = (model_name, adapter)
        if key not in self._fast:
            t0 = time.perf_counter()
            try:
                from ..training import adapters  # Training builds on Generation: imported where an adapter is merged

                engines.check_decoding(self.engine)  # before loading and converting anything
                if adapter is None:
                    model, tok = load_llm(model_name)
                else:
                    model, tok = adapters.merge_adapter(adapter), self.get(model_name, None)[1]
                if self.engine == "ct2":
                    self._fast[key] = engines.Ct2Generator(engines.converted(model, tok), tok)
                else:
                    self._fast[key] = engines.OrtGenAIGenerator(
                        engines.ortgenai_converted(model, tok, engines.ORTGENAI_POOL_PRECISION), tok)
            except engines.EngineUnavailable as e:
                print(f"[ragft] fast engine off: {e}. Answering with transformers.")
                self.engine = "transformers"
                return None
            finally:
                self.load_s += time.perf_counter() - t0
        return self._fast[key]

    def generate_batch(self, system: SystemLike, batch: list[list[dict]], batch_size: int = 8,
                       contrast: list[list[dict]] | None = None) -> list[Generation]:
        """Greedy answers to several chats with `system`'s model and adapter (`generate_chats`, or the fast engine).
        contrast: the chats without their passages, when `system.contrast` > 0 (always answered by transformers)."""
        if not system.contrast and (fast := self.fast(system.model, system.adapter)) is not None:
            return fast.generate_chats(batch, system.max_new_tokens)  # one by one: see Ct2Generator.generate_chats
        model, tok, ctx = self.get(system.model, system.adapter)
        with ctx:
            return generate_chats(model, tok, batch, system.max_new_tokens, batch_size,
                                  contrast=contrast if system.contrast else None, contrast_alpha=system.contrast)


def generate_chats(model, tok, batch: list[list[dict]], max_new_tokens: int, batch_size: int = 8,
                   repetition_penalty: float | None = generation.REPETITION_PENALTY,
                   stop_at_answer_end: bool = generation.STOP_AT_ANSWER_END,
                   contrast: list[list[dict]] | None = None, contrast_alpha: float = 0.0) -> list[Generation]:
    """Greedy replies to chats with a loaded model: one chat through `generation.generate`, several through
    `generation.generate_batch` (left-padded batches). Timings of a batched answer are its batch's.
    repetition_penalty other than `generation.REPETITION_PENALTY`, or stop_at_answer_end other than
    `generation.STOP_AT_ANSWER_END`, is for experiments (notebook 03's failure lab, benchmarks/generation.py).
    contrast: each chat without its passages, for context-aware decoding at contrast_alpha (0: off)."""
    if len(batch) == 1:
        return [generation.generate(model, tok, batch[0], max_new_tokens=max_new_tokens,
                                    repetition_penalty=repetition_penalty, stop_at_answer_end=stop_at_answer_end,
                                    contrast=contrast[0] if contrast else None, contrast_alpha=contrast_alpha)]
    return generation.generate_batch(model, tok, batch, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                     repetition_penalty=repetition_penalty, stop_at_answer_end=stop_at_answer_end,
                                     contrast=contrast, contrast_alpha=contrast_alpha)
