"""The answer cache and the one generation loop: every generated answer in ragft is kept in an `AnswerCache` keyed by
exactly what decides its text, and made by `generate_unique` (identical prompts once, cached ones not at all).

It does not load models (`pool.ModelPool`), build prompts or decide who answers (`ragft.systems`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from ..core.cache import KeyValueCache, content_key
from ..core.paths import cache_dir
from . import decoding as generation
from . import engines
from .decoding import DECODING, Generation
from .models import device, spec
from .pool import SystemLike, adapter_hash

# Bump when anything that shapes a generated answer changes outside the cache key (the prompt layout of
# `ragft.systems.system_messages`, how `generation` decodes beyond `DECODING`): every cached answer is then regenerated.
CACHE_VERSION = 2


class AnswerCache:
    """Generated answers keyed by everything that decides their text: on disk (`cache.KeyValueCache`, safe to interrupt
    and to share), or in memory for a model that has no name to key it by (`folder="memory"`).

    The key (`key`) holds the model's sha256, the adapter's hash, the exact chat messages (so the question, the
    retrieved passages and the system prompt), max_new_tokens and the decoding settings. Retrieval is not cached: it
    runs every time (milliseconds) and decides the key.
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        self.memory = folder == "memory"
        self._store: dict | KeyValueCache = {} if self.memory else KeyValueCache(folder or cache_dir("answers"))
        self.hits = self.misses = 0

    @staticmethod
    def key(system: SystemLike, messages: list[dict], engine: str = "transformers") -> str:
        parts = {"v": CACHE_VERSION, "model": system.model, "model_sha256": spec(system.model).sha256,
                 "adapter": adapter_hash(system.adapter), "messages": messages,
                 "max_new_tokens": system.max_new_tokens, "decoding": DECODING, "device": device()}
        if system.contrast:  # context-aware decoding: the passage-free chat follows from the messages and the system
            parts["contrast"] = {**generation.contrast_decoding(system.contrast), "system_prompt": system.prompt}
        if engine != "transformers":  # another runtime (int8 weights) writes other text: never mixed with these
            parts["engine"] = {"name": engine, "quantization": engines.CT2_QUANTIZATION if engine == "ct2"
                               else engines.ORTGENAI_POOL_PRECISION}
        return content_key(parts)

    def get(self, key: str) -> dict | None:
        value = self._store.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        if self.memory:
            self._store[key] = value
        else:
            self._store.put(key, value)

    def __len__(self) -> int:
        return len(self._store)


def as_cache(cache) -> AnswerCache | None:
    """True -> the user's answer cache; False/None -> no cache; an AnswerCache as it is."""
    return AnswerCache() if cache is True else (None if cache is False or cache is None else cache)


def generation_record(g: Generation) -> dict:
    """What the cache keeps of a Generation; a batched answer's total_s is its share of the batch's time."""
    n = max(g.batch_size, 1)
    return {"text": g.text, "n_new_tokens": g.n_new_tokens, "n_prompt_tokens": g.n_prompt_tokens, "ttft_s": g.ttft_s,
            "total_s": g.total_s / n, "batch_size": n, "mean_logprob": g.mean_logprob}


def generate_unique(prompts: Sequence[tuple[str, list[dict]]], generate: Callable[[list[list[dict]]], list[Generation]],
                    cache: AnswerCache | None = None, batch_size: int = 8, bar=None) -> list[tuple[dict, Generation | None, bool]]:
    """THE generation loop: (key, messages) pairs in; per pair out: (record, Generation or None, from_cache).

    Keys found in `cache` are not generated (from_cache True, Generation None); identical keys are generated once (the
    first carries the Generation, repeats get None); the rest go to `generate` in batches of `batch_size`, in order of
    first appearance, and into the cache.
    """
    records: dict[str, tuple[dict, Generation | None, bool]] = {}
    for key, _ in prompts:
        if key not in records and cache is not None and (hit := cache.get(key)) is not None:
            records[key] = (hit, None, True)
    if bar is not None and records:
        bar.update(sum(1 for k, _ in prompts if k in records))
    todo = list(dict.fromkeys(k for k, _ in prompts if k not in records))
    messages = dict(prompts)
    for start in range(0, len(todo), batch_size):
        keys = todo[start:start + batch_size]
        for k, g in zip(keys, generate([messages[k] for k in keys]), strict=True):
            records[k] = (generation_record(g), g, False)
            if cache is not None:
                cache.put(k, records[k][0])
        if bar is not None:
            bar.update(sum(1 for k, _ in prompts if k in set(keys)))
    seen, out = set(), []
    for key, _ in prompts:
        record, gen, from_cache = records[key]
        out.append((record, gen if key not in seen else None, from_cache))
        seen.add(key)
    return out
