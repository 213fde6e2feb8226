"""The one answering path: a `System` (model, adapter or none, retriever or none, threshold, prompt style) answers
questions through `answer` / `compare`, with the models held by a `ModelPool` (one base per model, adapters switched
by name) and every generated answer kept in ONE `AnswerCache` keyed by exactly what decides its text.

Every generation in ragft goes through `generate_unique` here: identical prompts are generated once, cached ones not
at all, the rest in batches. `pipeline.RagPipeline` (notebook 03's budgeted prompts) and `evaluate_behaviour`
(notebook 04's base vs tuned) are thin callers of it. This module does not retrieve (a System's retriever does),
does not train (see `finetune.py`), builds no training data (see `pairs.py`) and defines no metric (see
`evaluation.py`): it calls `evaluation.score_answer` on each answer.
Introduced in notebooks/05_hybrid.ipynb.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import house
from ..core.cache import KeyValueCache, content_key, files_state
from ..core.paths import CURRENT_VERSION, OLD_VERSION, cache_dir, task_pairs_path, train_path
from ..core.profiles import ANSWER_MAX_NEW_TOKENS
from ..data.datasets import load_train_pairs
from ..evaluation.scoring import gold_found, score_answer
from ..generation import decoding as generation
from ..generation import engines
from ..generation.decoding import DECODING, PASSAGE_ORDER, Generation, chat_messages, context_message, prompt_order
from ..generation.models import DEFAULT_LLM, device, load_llm, spec
from ..retrieval.retrievers import undocumented_names
from ..training import adapters, finetune
from ..training.pairs import RaftSettings, qa_documents, raft_training_set

# Bump when anything that shapes a generated answer changes outside the cache key (the prompt layout below, how
# `generation` decodes beyond `DECODING`): every cached answer is then regenerated.
CACHE_VERSION = 2
PROMPTS = ("house", "none")  # the system prompt: "house" TELLS the format; "none" for tuned models, which LEARNED it
ARMS = ("base", "rag", "fine-tuned", "hybrid", "raft")


# --- systems ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class System:
    """One way to answer: model + adapter (or none) + retriever (or none) + threshold + prompt.

    threshold: passed to the retriever (cosine for dense and hybrid, raw score for BM25); a question left with no
    passage gets the fixed abstention reply without any generation (the retrieval system abstains, not the model).
    name_check: a question that names APIs in backticks (`np.X`) of which no retrieved passage documents any gets
    that reply too, without generation (`retrievers.undocumented_names`). prompt: "house" puts `house.SYSTEM_PROMPT` first;
    "none" gives no system prompt (the tuned arms were trained without one). passage_chars cuts each passage.
    >>> System("rag", retriever=my_index, top_k=3, threshold=0.5)  # doctest: +SKIP
    """

    name: str
    model: str = DEFAULT_LLM
    adapter: str | None = None  # a LoRA adapter folder (finetune.train_or_load_adapter); None = the base model
    retriever: Any = field(default=None, compare=False, repr=False)  # a ragft.retrieval.index Retriever; None = no retrieval
    retriever_label: str = ""  # how tables name the retriever, e.g. "hybrid, numpy 2.4.6"
    top_k: int = 3
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


def make_arms(retriever=None, sft_adapter: str | os.PathLike | None = None, raft_adapter: str | os.PathLike | None = None,
              model: str = DEFAULT_LLM, top_k: int = 3, threshold: float | None = None, passage_chars: int | None = 600,
              max_new_tokens: int = ANSWER_MAX_NEW_TOKENS, retriever_label: str = "",
              raft_max_new_tokens: int | None = None, raft_contrast: float = 0.0) -> list[System]:
    """The arms: base, rag, fine-tuned, hybrid (fine-tuned + rag) and raft (tuned on retrieved passages + rag; with
    raft_max_new_tokens when its answers start with a quote line, `ArmSettings.raft_quote`).

    The rule that fixes the prompts: an untuned model is TOLD the house format (system prompt "house"); a tuned model is
    not (prompt "none"), because it was trained without one. Arms whose part is missing (no retriever, no adapter) are
    left out. raft_contrast: the RAFT arm's context-aware decoding (`System.contrast`).
    """
    common = dict(model=model, top_k=top_k, passage_chars=passage_chars, max_new_tokens=max_new_tokens)
    rag = dict(retriever=retriever, retriever_label=retriever_label, threshold=threshold)
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


# --- loaded models ----------------------------------------------------------------------------------------------------
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

    def generate_batch(self, system: System, batch: list[list[dict]], batch_size: int = 8,
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


# --- the answer cache and the one generation loop ---------------------------------------------------------------------
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
    def key(system: System, messages: list[dict], engine: str = "transformers") -> str:
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


# --- answering and comparing ------------------------------------------------------------------------------------------
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
    plan = _Plan(system, text, item, hits, retrieval_s, gated=_gate(system, text, hits))
    if plan.gated:  # nothing above the threshold, or no passage on the named API: the system abstains, no model
        plan.gen = {"text": house.ABSTAIN_ANSWER, "n_new_tokens": 0, "ttft_s": 0.0, "total_s": 0.0, "batch_size": 0}
        return plan
    plan.messages = system_messages(system, text, hits)
    if system.contrast and hits:
        plan.contrast = contrast_messages(system, text)
    engine = "transformers" if system.contrast else engine  # a fast engine cannot contrast (ModelPool.generate_batch)
    plan.key = AnswerCache.key(system, plan.messages, engine) if cache is not None else content_key(plan.messages)
    return plan


def _gate(system: System, text: str, hits: list | None) -> str:
    """Why `system` abstains on `text` without generating: "threshold" (no passage above it), "name" (the question
    names APIs and no passage documents any of them: `System.name_check`), or "" (the model answers)."""
    if hits is None:
        return ""
    if system.threshold is not None and not hits:
        return "threshold"
    if system.name_check and undocumented_names(text, hits):
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
        score = score_answer(item, text, passages)
        row.update({k: v for k, v in score.items() if k not in ("id", "kind")})
    else:
        parsed = house.parse(text)
        row.update({"correct": None, "fact_ok": None, "stale": None, "abstained": parsed.abstained,
                    "compliant": parsed.compliant, "grounded": None})
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
            show_progress: bool = True):
    """Every system answers every question: one row per (system, question) with answer, sources, metrics and timings.

    questions: QA items (scored) or strings (answered, format-checked only). cache: True = the user cache
    (`cache_dir("compare")`), an AnswerCache, or False. Answers not in the cache are generated `batch_size` at a time
    per (model, adapter); a batched answer's generation_s is its share of the batch's time (throughput, not the
    latency one user would see: ask one question, as the dashboard does, for that). Per-arm metrics: `arm_metrics(df)`.
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
    return pd.DataFrame([_row(p, version) for p in plans])


# --- the dashboard's pure functions (wired to controls in widgets.py) -------------------------------------------------
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


# a quote line (house.render_quote: a doc id and at most ~125 characters of a passage; 96 on average in the task
# pairs' RAFT targets) is up to ~65 SmolLM2 tokens when it quotes a signature (about 3 characters a token)
QUOTE_NEW_TOKENS = 64

# --- the arms of notebooks 05 and 06, set up once ----------------------------------------------------------------------
# a built-in training set: its file, and the release its RAFT distractors come from (the one its pairs were written from)
TRAINING_SETS = {"task": (task_pairs_path, CURRENT_VERSION), "house": (train_path, OLD_VERSION)}


@dataclass(frozen=True)
class ArmSettings:
    """What notebooks 05 and 06 share, so that 06 gets 05's adapters from the cache instead of training new ones."""

    llm: str = DEFAULT_LLM
    # Passages each retrieving arm answers from. 2, chosen on dev (2026-12-03, all 86 dev questions, the whole noted
    # 2.4.6 corpus as notebook 05 answers from, workshop adapters, answering only): top 2 against top 3, RAFT 0.884
    # against 0.802, McNemar 8 fixed / 1 broken (p = 0.039); RAG 0.407 against 0.349 (6 / 1, p = 0.125); hybrid 0.814
    # against 0.744 (7 / 1, p = 0.07); top 1: RAG 11 / 6, hybrid 8 / 3; the best passage first instead of last: RAG 2 /
    # 11, hybrid 4 / 16. Over 300 documents (the draws' dev set) top 2 and top 3 had tied for RAG (1 / 1).
    top_k: int = 2
    # Passages in each RAFT training pair (the oracle and its distractors): training and answering k are separate
    # settings in the RAFT paper too (Zhang et al. 2024 train with 4 distractors and test at several top-k). 3 is the
    # k every adapter in the cache was trained with.
    raft_passages: int = 3
    threshold: float | None = 0.5  # cosine below which a retrieving arm abstains without generating; None: off
    passage_chars: int | None = 300
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS
    lora_r: int = 16
    lora_alpha: int = 32
    train_steps: int = 60
    raft_p_oracle: float = 0.8
    # pairs.RaftSettings.no_oracle_target. "answer": the paper's recipe (Zhang et al. 2024, RAFT: no abstention
    # targets at all); unanswerable pairs still target the abstention, so ~10% of the task pairs do. "abstain" (this
    # project's first recipe, 28% abstention targets with the task pairs) is the ablation of benchmarks/raft_recipe.py.
    raft_no_oracle_target: str = "answer"
    # 1e-3: the top of the published SmolLM2 LoRA range (2e-4 .. 1e-3); benchmarks/reading.py measured that 48 steps at
    # it teach the 135M model to read task-pair passages (loss 2.09 -> 0.48). The fine-tuned arm keeps
    # TrainSettings' 2e-3, which its format needs within 60 steps (README, "fine-tuning benchmark").
    raft_lr: float = 1e-3
    raft_batch_size: int = 2
    # quote-then-answer (pairs.RaftSettings.quote; Zhang et al. 2024's chain-of-thought answers): the RAFT arm's oracle
    # targets start with a quote line of the gold passage, and its answers get QUOTE_NEW_TOKENS more to write it in
    raft_quote: bool = False
    # pairs.RaftSettings.entry_gold: a changed-parameter pair's oracle is the version-noted entry chunk of its parameter
    raft_entry_gold: bool = True
    seed: int = 0
    # "task": data/train/task_pairs.jsonl, the QA set's question shapes from facts it does not ask about (the RAFT arm's
    # passages from 2.4.6, never from a document the QA set asks about); "house": data/train/house_style.jsonl, one
    # question shape ("What does `np.X` do?"), none about an API the QA set asks about (tests/test_pair_builder.py)
    pairs: str = "task"
    # The RAFT arm's context-aware decoding (System.contrast; Shi et al. 2023's alpha 0.5; 0 = off), on the first line
    # of each answer. Chosen on dev (benchmarks/raft_recipe.py --contrast, 80 questions, 2026-12-02): RAFT 0.900
    # [0.815, 0.948] against 0.862 without, McNemar 3 fixed / 0 broken (p = 0.25, not separable), reading rate 0.857
    # against 0.796, format 0.938 against 0.925; alpha 1: 0.888. The untuned RAG arm lost with it (0.375 against 0.40,
    # 6 fixed / 8 broken), and so did the hybrid arm (0.612 against 0.750, 5 fixed / 16 broken, p = 0.027: its
    # abstentions fell from 1.00 to 0.67; 80 dev questions, 2026-12-02): both decode without it.
    raft_contrast: float = 0.5
    # Training draws of the RAFT adapter: the same recipe and pairs trained with seeds seed, seed + 1, ... (each seed
    # draws its own RAFT mix and training order). With more than one, every draw answers the same dev questions
    # (`draw_dev_questions` over `draw_dev_docs` documents) and the best on dev becomes the RAFT arm (`raft_draws`).
    # Measured (benchmarks/raft_recipe.py --seed 0 --seed 1 --seed 2, 80 dev questions, 2026-12-03): 0.888 / 0.825 /
    # 0.688 on dev and 0.725 / 0.675 / 0.55 on notebook 05's test questions: one draw is not the recipe.
    raft_draws: int = 1
    draw_dev_questions: int = 80
    draw_dev_docs: int | None = 300
    # The index the retrieving arms answer from after the sync writes what changed in each signature since 1.26.4
    # (`corpus.with_change_notes`): notebook 05's synced index and the draws' dev index. Measured 2026-12-03, untuned
    # RAG arm (hybrid, whole 2.4.6 corpus, top 3, threshold 0.5) on the 34 changed-parameter task pairs, which ask the
    # QA set's question shapes about functions it does not name: 0.06 -> 0.47, McNemar 16 fixed / 2 broken, p = 0.001;
    # on the 80 dev questions (`draw_dev_set`): RAG 0.400 -> 0.412 (1 / 0), the RAFT seed-0 adapter 0.888 -> 0.912
    # (2 / 0), dev's 5 changed-parameter questions 0 -> 1 (RAG) and 2 -> 4 (RAFT).
    change_notes: bool = True

    def __post_init__(self):
        if self.pairs not in TRAINING_SETS:
            raise ValueError(f"pairs must be one of {tuple(TRAINING_SETS)}, not {self.pairs!r}")
        if self.raft_draws < 1:
            raise ValueError(f"raft_draws must be at least 1, not {self.raft_draws}")
        if self.draw_dev_questions < 1:
            raise ValueError(f"draw_dev_questions must be at least 1, not {self.draw_dev_questions}")

    @property
    def draw_seeds(self) -> list[int]:
        """The seeds of the RAFT adapter's training draws: seed, seed + 1, ... (`raft_draws` of them)."""
        return [self.seed + i for i in range(self.raft_draws)]

    def raft(self) -> RaftSettings:
        return RaftSettings(top_k=self.raft_passages, p_oracle=self.raft_p_oracle, passage_chars=self.passage_chars,
                            seed=self.seed, no_oracle_target=self.raft_no_oracle_target, quote=self.raft_quote,
                            entry_gold=self.raft_entry_gold)

    @property
    def raft_max_new_tokens(self) -> int:
        return self.max_new_tokens + (QUOTE_NEW_TOKENS if self.raft_quote else 0)

    def lora(self) -> finetune.LoraSettings:
        return finetune.LoraSettings(lora_r=self.lora_r, lora_alpha=self.lora_alpha)

    def sft_train(self) -> finetune.TrainSettings:
        return finetune.TrainSettings(steps=self.train_steps, seed=self.seed)

    def raft_train(self) -> finetune.TrainSettings:
        # RAFT prompts are ~4x longer than plain ones: a smaller batch keeps a step affordable on CPU
        return finetune.TrainSettings(steps=self.train_steps, lr=self.raft_lr, batch_size=self.raft_batch_size,
                                      max_length=768, seed=self.seed)


@dataclass
class TunedAdapters:
    """The two adapters of the tuned arms and how they were made (training logs, the RAFT pairs)."""

    sft: Path
    raft: Path
    sft_log: dict
    raft_log: dict
    raft_data: list[dict]
    raft_build_s: float
    # with ArmSettings.raft_draws > 1: every draw and how it did on dev (`RaftDraws`); the RAFT fields above are the
    # chosen draw's
    draws: RaftDraws | None = None


# the dev measures of a training draw, in the order `pick_draw` ranks by
DRAW_RANKING = ("accuracy", "format_compliance")
DRAW_METRICS = ("accuracy", "accuracy_low", "accuracy_high", "format_compliance", "reading_rate", "abstention_recall")


@dataclass
class RaftDraws:
    """The RAFT adapter's training draws (`ArmSettings.raft_draws`): `table` has one row per seed (dev metrics,
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


def raft_data(pairs: Sequence[dict], settings: ArmSettings, training_set: str | None,
              show_progress: bool = False) -> list[dict]:
    """The RAFT arm's training pairs made from `pairs`, one per training example (`steps * raft_batch_size`): BM25
    passages from the release a built-in `training_set` was written from (for the task pairs never a document the QA
    set asks about), or from 1.26.4 for your own pairs (training_set None)."""
    version = TRAINING_SETS[training_set][1] if training_set else OLD_VERSION
    return raft_training_set(pairs, settings.train_steps * settings.raft_batch_size, settings.raft(), version=version,
                             show_progress=show_progress, exclude_docs=qa_documents() if training_set == "task" else ())


def tuned_adapters(settings: ArmSettings, show_progress: bool = True, pairs: Sequence[dict] | None = None) -> TunedAdapters:
    """Train (or load from the adapter cache) the fine-tuned arm's adapter on `settings.pairs` and the RAFT arm's on
    RAFT pairs made from them (`raft_data`). pairs: other pairs of that training set's kind (a variant built by
    `pair_builder.build_pairs` for a dev measurement), instead of its file."""
    if pairs is None:
        pairs, _ = load_train_pairs(TRAINING_SETS[settings.pairs][0]())
    sft = finetune.train_or_load_adapter(pairs, settings.lora(), settings.sft_train(), model_name=settings.llm,
                                         show_progress=show_progress)
    t0 = time.perf_counter()
    raft_pairs = raft_data(pairs, settings, settings.pairs)
    raft_build_s = time.perf_counter() - t0
    if settings.raft_draws > 1:
        draws = raft_draws(settings, pairs, show_progress=show_progress, first=raft_pairs)
        return TunedAdapters(sft, draws.adapters[draws.chosen], finetune.read_training_log(sft),
                             draws.logs[draws.chosen], draws.data[draws.chosen], raft_build_s, draws)
    raft = finetune.train_or_load_adapter(raft_pairs, settings.lora(), settings.raft_train(), model_name=settings.llm,
                                          show_progress=show_progress)
    return TunedAdapters(sft, raft, finetune.read_training_log(sft), finetune.read_training_log(raft), raft_pairs,
                         raft_build_s)


def draw_dev_set(settings: ArmSettings) -> tuple[list, list]:
    """The dev questions and documents every training draw is judged on: a kind-stratified sample of
    `draw_dev_questions` dev items and their 2.4.6 documents plus distractors (`draw_dev_docs`), as
    benchmarks/raft_recipe.py measures a recipe; with the change notes since 1.26.4 (`change_notes`) that the arms'
    synced index carries."""
    from ..data.corpus import load_corpus, with_change_notes
    from ..data.datasets import load_qa, sample, subset_corpus

    items = sample(load_qa("dev"), settings.draw_dev_questions)
    docs = subset_corpus(load_corpus(CURRENT_VERSION), items, CURRENT_VERSION, settings.draw_dev_docs)
    return items, with_change_notes(docs, load_corpus(OLD_VERSION)) if settings.change_notes else docs


def draw_system(settings: ArmSettings, seed: int, adapter, retriever) -> System:
    """How a training draw answers on dev: the RAFT arm's prompt, passages and decoding over a hybrid index, with no
    similarity threshold (every answer is the adapter's own), as benchmarks/raft_recipe.py answers."""
    return System(draw_arm_name(seed), adapter=adapter, retriever=retriever, retriever_label="hybrid",
                  top_k=settings.top_k, threshold=None, passage_chars=settings.passage_chars, prompt="none",
                  max_new_tokens=settings.raft_max_new_tokens, contrast=settings.raft_contrast, model=settings.llm)


def raft_draws(settings: ArmSettings, pairs: Sequence[dict], show_progress: bool = True,
               first: list[dict] | None = None, pool: ModelPool | None = None,
               cache: AnswerCache | bool = True) -> RaftDraws:
    """Train (or load from the adapter cache) one RAFT adapter per seed of `settings.draw_seeds`, let each answer the
    dev questions of `draw_dev_set`, and pick the best on dev (`pick_draw`). Only the seed changes between draws: the
    RAFT mix (oracle or not, distractors) and the training order. first: the first seed's RAFT pairs, if already built.
    Answers come from the answer `cache` when the same adapter answered the same prompts before."""
    import pandas as pd

    from ..evaluation.scoring import summarize_arms
    from ..retrieval.retrievers import build_retriever

    adapters_, logs, data = {}, {}, {}
    for i, seed in enumerate(settings.draw_seeds):
        draw = dataclasses.replace(settings, seed=seed)
        data[seed] = first if (i == 0 and first is not None) else raft_data(pairs, draw, settings.pairs)
        adapters_[seed] = finetune.train_or_load_adapter(data[seed], draw.lora(), draw.raft_train(),
                                                         model_name=settings.llm, show_progress=show_progress)
        logs[seed] = finetune.read_training_log(adapters_[seed])
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


def arms_for(retriever, adapters: TunedAdapters | None, settings: ArmSettings, retriever_label: str = "") -> list[System]:
    """`make_arms` with the shared settings: base, rag, fine-tuned, hybrid and raft."""
    return make_arms(retriever, adapters.sft if adapters else None, adapters.raft if adapters else None,
                     model=settings.llm, top_k=settings.top_k, threshold=settings.threshold,
                     passage_chars=settings.passage_chars, max_new_tokens=settings.max_new_tokens,
                     retriever_label=retriever_label, raft_max_new_tokens=settings.raft_max_new_tokens,
                     raft_contrast=settings.raft_contrast)
