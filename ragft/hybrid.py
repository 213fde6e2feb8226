"""Systems composed from parts (a model, an adapter or none, a retriever or none, a threshold, a prompt), compared on
the same questions with every answer cached on disk, and the training data of the RAFT-style arm.

A `System` is a recipe, not a loaded model: `compare` loads each base model once, puts every adapter on it by name,
and caches each generated answer keyed by its exact inputs (model and adapter hashes, the full prompt, decoding), so
re-running a cell is instant. It does not train (see `finetune.py`), index (see `index.py`) or define metrics (see
`evaluation.py`).
Introduced in notebooks/05_hybrid.ipynb.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import html
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import house
from .datasets import CHANGED_KINDS
from .evaluation import frame_records, score_answer, summarize
from .generation import HOUSE_SYSTEM_PROMPT, Generation, chat_messages, generate, generate_batch
from .io import atomic_path
from .models import DEFAULT_LLM, spec
from .paths import CURRENT_VERSION, OLD_VERSION, cache_dir

# Bump when anything that shapes a generated answer changes outside the cache key (decoding in generation.generate,
# the prompt layout below): every cached answer is then regenerated.
CACHE_VERSION = 1
PROMPTS = ("house", "none")  # the system prompt: "house" TELLS the format; "none" for tuned models, which LEARNED it
ARMS = ("base", "rag", "fine-tuned", "hybrid", "raft")


# --- systems ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class System:
    """One way to answer: model + adapter (or none) + retriever (or none) + threshold + prompt.

    threshold: passed to the retriever (cosine for dense and hybrid, raw score for BM25); a question left with no
    passage gets the fixed abstention reply without any generation (the retrieval system abstains, not the model). prompt: "house" puts `HOUSE_SYSTEM_PROMPT` first;
    "none" gives no system prompt (the tuned arms were trained without one). passage_chars cuts each passage.
    >>> System("rag", retriever=my_index, top_k=3, threshold=0.5)  # doctest: +SKIP
    """

    name: str
    model: str = DEFAULT_LLM
    adapter: str | None = None  # a LoRA adapter folder (finetune.train_or_load_adapter); None = the base model
    retriever: Any = field(default=None, compare=False, repr=False)  # a ragft.index Retriever; None = no retrieval
    retriever_label: str = ""  # how tables name the retriever, e.g. "hybrid, numpy 2.4.6"
    top_k: int = 3
    threshold: float | None = None
    prompt: str = "house"
    passage_chars: int | None = 600
    max_new_tokens: int = 80

    def __post_init__(self):
        if self.prompt not in PROMPTS:
            raise ValueError(f"prompt must be one of {PROMPTS}, not {self.prompt!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, not {self.top_k}")
        if self.adapter is not None and not (Path(self.adapter) / "adapter_config.json").exists():
            raise FileNotFoundError(f"system {self.name!r}: no adapter at {self.adapter} (no adapter_config.json); "
                                    "train one with ragft.finetune.train_or_load_adapter")
        spec(self.model)  # unknown model names fail here, not in the middle of a comparison

    def replace(self, **changes) -> System:
        """A copy with some parts swapped: `rag.replace(name="rag top_k=1", top_k=1)`."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> dict:
        """The system as a table row (what the arms table prints next to its numbers)."""
        return {"arm": self.name, "model": self.model, "adapter": adapter_label(self.adapter),
                "retrieval": (self.retriever_label or retriever_kind(self.retriever)) if self.retriever is not None else "none",
                "top_k": self.top_k if self.retriever is not None else None,
                "threshold": self.threshold if self.retriever is not None else None, "prompt": self.prompt}


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
              max_new_tokens: int = 80, retriever_label: str = "") -> list[System]:
    """The arms: base, rag, fine-tuned, hybrid (fine-tuned + rag) and raft (tuned on retrieved passages + rag).

    The rule that fixes the prompts: an untuned model is TOLD the house format (system prompt "house"); a tuned model is
    not (prompt "none"), because it was trained without one. Arms whose part is missing (no retriever, no adapter) are
    left out.
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
        arms.append(System("raft", adapter=raft, prompt="none", **rag, **common))
    return arms


# --- prompts ----------------------------------------------------------------------------------------------------------
def cut_passage(text: str, passage_chars: int | None) -> str:
    """The passage shortened to at most passage_chars characters, at a line end when one is near."""
    if passage_chars is None or len(text) <= passage_chars:
        return text
    cut = text[:passage_chars]
    nl = cut.rfind("\n")
    return (cut[:nl] if nl > passage_chars * 0.6 else cut).rstrip() + " ..."


def context_message(question: str, hits: Sequence, passage_chars: int | None = 600) -> str:
    """The user turn of a retrieval prompt, in notebook 03's layout (`generation.user_message`): numbered, delimited
    <passage> blocks with their doc_id, then the question. Each passage is first cut to passage_chars characters.

    The RAFT training pairs use this same function, so a RAFT adapter sees at inference exactly what it trained on.
    With no hits it is the bare question.
    """
    from .generation import passage_block, user_message

    blocks = [passage_block(i, dataclasses.replace(h, text=cut_passage(h.text, passage_chars)))
              for i, h in enumerate(hits, 1)]
    return user_message(question, blocks)


def system_messages(system: System, question: str, hits: Sequence | None) -> list[dict]:
    """The chat messages `system` sends for `question` given its retrieved hits (None when it has no retriever).

    prompt "house": `RAG_SYSTEM_PROMPT` with passages (notebook 03's RAG pipeline), `HOUSE_SYSTEM_PROMPT` without.
    prompt "none": no system turn.
    """
    from .generation import RAG_SYSTEM_PROMPT

    if hits is None:
        return chat_messages(question, HOUSE_SYSTEM_PROMPT if system.prompt == "house" else None)
    return chat_messages(context_message(question, hits, system.passage_chars),
                         RAG_SYSTEM_PROMPT if system.prompt == "house" else None)


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
    files = sorted(p for p in Path(path).glob("adapter_*") if p.is_file())
    state = json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    return _adapter_hash(str(Path(path).resolve()), state)


class ModelPool:
    """The models `compare` generates with: each base model loaded once (full precision), every adapter put on it under
    its own name and switched per call; a system without adapter runs with the adapters disabled (same weights).

    Generation on CPU happens on the full-precision base: 4-bit saves memory in training, not time in inference.
    """

    def __init__(self, dtype=None):
        self.dtype = dtype
        self._models: dict[str, list] = {}  # model name -> [model, tok, {adapter folder: adapter name}]
        self.load_s = 0.0

    def get(self, model_name: str, adapter: str | None):
        """(model, tokenizer, context manager) with `adapter` active, or every adapter off when adapter is None."""
        from .models import load_llm

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
            from peft import PeftModel

            from .finetune import check_adapter_base

            t0 = time.perf_counter()
            check_adapter_base(model, adapter)
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

    def generate_batch(self, system: System, batch: list[list[dict]], batch_size: int = 8) -> list[Generation]:
        """Greedy answers to several chats with `system`'s model and adapter (`generation.generate_batch`; one chat
        goes through `generation.generate`). Timings of a batched answer are its batch's."""
        model, tok, ctx = self.get(system.model, system.adapter)
        with ctx:
            if len(batch) == 1:
                return [generate(model, tok, batch[0], max_new_tokens=system.max_new_tokens)]
            return generate_batch(model, tok, batch, max_new_tokens=system.max_new_tokens, batch_size=batch_size)


# --- the answer cache -------------------------------------------------------------------------------------------------
class AnswerCache:
    """Generated answers on disk, one small JSON file per key, written atomically (safe to interrupt, safe to share).

    The key holds everything that decides the text: model sha256, adapter hash, the exact chat messages (so the
    question, the retrieved passages and the system prompt), max_new_tokens and the decoding (greedy). Retrieval is
    not cached: it runs every time (milliseconds) and decides the key.
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder else cache_dir("compare")
        self.hits = self.misses = 0

    @staticmethod
    def key(system: System, messages: list[dict]) -> str:
        import torch

        blob = {"v": CACHE_VERSION, "model": system.model, "model_sha256": spec(system.model).sha256,
                "adapter": adapter_hash(system.adapter), "messages": messages, "max_new_tokens": system.max_new_tokens,
                "decoding": "greedy, repetition_penalty=1.1", "device": "cuda" if torch.cuda.is_available() else "cpu"}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self._path(key)
        try:
            value = json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.misses += 1
            return None
        self.hits += 1
        return value

    def put(self, key: str, value: dict) -> None:
        with atomic_path(self._path(key)) as tmp:
            tmp.write_text(json.dumps(value))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json"))


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
    gated: bool
    messages: list | None = None
    key: str | None = None
    gen: dict | None = None
    cached: bool = False


def _plan(system: System, question, cache: AnswerCache | None) -> _Plan:
    text, item = _as_item(question)
    hits, retrieval_s = None, 0.0
    if system.retriever is not None:
        t0 = time.perf_counter()
        hits = list(system.retriever.search(text, top_k=system.top_k, threshold=system.threshold))
        retrieval_s = time.perf_counter() - t0
    plan = _Plan(system, text, item, hits, retrieval_s, gated=system.threshold is not None and hits is not None and not hits)
    if plan.gated:  # nothing above the threshold: the system abstains, no model involved
        plan.gen = {"text": house.ABSTAIN_ANSWER, "n_new_tokens": 0, "ttft_s": 0.0, "total_s": 0.0, "batch_size": 0}
        return plan
    plan.messages = system_messages(system, text, hits)
    if cache is not None:
        plan.key = AnswerCache.key(system, plan.messages)
        plan.gen = cache.get(plan.key)
        plan.cached = plan.gen is not None
    return plan


def _generate(plans: list[_Plan], pool, cache: AnswerCache | None, batch_size: int, bar=None) -> None:
    """Generate every plan still without an answer: grouped by model, adapter and length, identical prompts once."""
    groups: dict[tuple, dict[str, list[_Plan]]] = {}
    for p in plans:
        if p.gen is None:
            prompt = p.key or json.dumps(p.messages)
            groups.setdefault((p.system.model, p.system.adapter, p.system.max_new_tokens), {}).setdefault(prompt, []).append(p)
    for by_prompt in groups.values():
        todo = list(by_prompt.values())
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            gens = pool.generate_batch(chunk[0][0].system, [same[0].messages for same in chunk], batch_size)
            for same, g in zip(chunk, gens, strict=True):
                n = max(g.batch_size, 1)
                gen = {"text": g.text, "n_new_tokens": g.n_new_tokens, "n_prompt_tokens": g.n_prompt_tokens,
                       "ttft_s": g.ttft_s, "total_s": g.total_s / n, "batch_size": n}  # a batch's time, shared
                if cache is not None and same[0].key:
                    cache.put(same[0].key, gen)
                for p in same:
                    p.gen = gen
                if bar is not None:
                    bar.update(len(same))


def _row(p: _Plan, version: str) -> dict:
    item, hits, gen = p.item, p.hits, p.gen
    passages = [h.text for h in hits] if hits is not None else None
    row = {"arm": p.system.name, "id": item.id if item else "", "kind": item.kind if item else "typed",
           "question": p.text, "answer": gen["text"], "doc_ids": [h.doc_id for h in hits] if hits is not None else [],
           "scores": [round(_relevance(h), 4) for h in hits] if hits is not None else [],
           "passages": passages or [], "gated": p.gated,
           "gold_retrieved": (bool(item.gold(version) & {h.doc_id for h in hits})
                              if item is not None and item.answerable and hits is not None else None),
           "retrieval_s": p.retrieval_s, "generation_s": gen["total_s"], "latency_s": p.retrieval_s + gen["total_s"],
           "new_tokens": gen["n_new_tokens"], "batch_size": gen.get("batch_size", 1),
           "tokens_per_s": gen["n_new_tokens"] / gen["total_s"] if gen["total_s"] > 0 else float("nan"),
           "cached": p.cached}
    if item is not None:
        score = score_answer(item, gen["text"], passages)
        row.update({k: v for k, v in score.items() if k not in ("id", "kind")})
    else:
        parsed = house.parse(gen["text"])
        row.update({"correct": None, "fact_ok": None, "stale": None, "abstained": parsed.abstained,
                    "compliant": parsed.compliant, "grounded": None})
    return row


def answer(system: System, question, pool: ModelPool | None = None, cache: AnswerCache | None = None,
           version: str = CURRENT_VERSION) -> dict:
    """One system answers one question (a QA item or a string): a row with the answer, its passages, timings and,
    for QA items, every metric of `evaluation.score_answer`."""
    plan = _plan(system, question, cache)
    _generate([plan], pool or ModelPool(), cache, batch_size=1)
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
    cache = AnswerCache() if cache is True else (None if cache is False or cache is None else cache)
    plans = [_plan(s, q, cache) for s in systems for q in questions]
    todo = sum(p.gen is None for p in plans)
    with tqdm(total=todo, desc=f"generating ({sum(p.cached for p in plans)} of {len(plans)} answers cached, "
                              f"{sum(p.gated for p in plans)} abstained by threshold)",
              disable=not show_progress or not todo) as bar:
        _generate(plans, pool, cache, batch_size, bar)
    return pd.DataFrame([_row(p, version) for p in plans])


METRICS = ("n", "accuracy", "changed_accuracy", "fact_accuracy", "stale_rate", "format_compliance",
           "abstention_precision", "abstention_recall", "groundedness", "gold_retrieved", "latency_s", "cached")


def arm_metrics(df, arms: Sequence[str] | None = None):
    """Per-arm headline metrics (rows: arms in their order in df): `evaluation.summarize` of each arm's rows, plus
    changed_accuracy (accuracy on questions whose truth moved from 1.26 to 2.x), gold_retrieved (share of answerable
    questions whose gold document was among the passages) and cached (share of answers read from the cache)."""
    import pandas as pd

    out = {}
    for arm in arms or list(dict.fromkeys(df["arm"])):
        g = df[df["arm"] == arm]
        rows = frame_records(g)
        m = summarize(rows)
        changed = [r["correct"] for r in rows if r["kind"] in CHANGED_KINDS and r["correct"] is not None]
        gold = [r["gold_retrieved"] for r in rows if r.get("gold_retrieved") is not None]
        m["changed_accuracy"] = sum(changed) / len(changed) if changed else float("nan")
        m["gold_retrieved"] = sum(gold) / len(gold) if gold else float("nan")
        m["cached"] = float(g["cached"].mean()) if len(g) else float("nan")
        out[arm] = {k: m[k] for k in METRICS}
    return pd.DataFrame(out).T


def records(table, digits: int = 3, index_name: str = "arm") -> list[dict]:
    """A metrics DataFrame as a list of dicts (NaN -> None), the shape `report.write_index` renders as a table."""
    out = []
    for idx, row in table.iterrows():
        rec = {index_name: idx}
        for k, v in row.items():
            if isinstance(v, float):
                v = None if math.isnan(v) else round(v, digits)
            rec[k] = v
        out.append(rec)
    return out


# --- the dashboard's pure functions (wired to controls in widgets.py) -------------------------------------------------
def configure(systems: Sequence[System], *, top_k: int | None = None, threshold: float | None = None,
              retriever=None, retriever_label: str | None = None, adapter: bool = True) -> list[System]:
    """The dashboard's knobs applied to a list of systems: retrieval knobs reach only systems that retrieve; adapter=False
    takes every adapter off (each tuned arm then runs its prompt on the base model)."""
    out = []
    for s in systems:
        changes: dict = {}
        if s.retriever is not None:
            if top_k is not None:
                changes["top_k"] = top_k
            changes["threshold"] = threshold
            if retriever is not None:
                changes["retriever"] = retriever
                changes["retriever_label"] = retriever_label if retriever_label is not None else retriever_kind(retriever)
        if not adapter and s.adapter is not None:
            changes["adapter"] = None
        out.append(s.replace(**changes) if changes else s)
    return out


def ask(question, systems: Sequence[System], arms: Sequence[str] | None = None, *, top_k: int | None = None,
        threshold: float | None = None, retriever=None, retriever_label: str | None = None, adapter: bool = True,
        pool: ModelPool | None = None, cache: AnswerCache | bool = True):
    """One question (a QA item or typed text) through the chosen arms with the dashboard's knobs: `compare`'s rows."""
    chosen = [s for s in systems if arms is None or s.name in arms]
    if not chosen:
        raise ValueError("choose at least one arm")
    chosen = configure(chosen, top_k=top_k, threshold=threshold, retriever=retriever, retriever_label=retriever_label,
                       adapter=adapter)
    return compare([question], chosen, pool=pool, cache=cache, show_progress=False)


def _fmt(v, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.0%}" if pct else (f"{v:.2f}" if isinstance(v, float) else str(v))


def answers_html(df, systems: Sequence[System] | None = None) -> str:
    """The dashboard's answer panel: one card per arm, side by side (answer, sources with scores, metrics, timings).

    Pure: takes `ask`/`compare` rows, returns HTML, so the report and the tests see what the browser shows.
    """
    described = {s.name: s.describe() for s in systems or []}
    cards = []
    for r in df.to_dict("records"):
        d = described.get(r["arm"], {})
        setup = " · ".join(f"{k} {d[k]}" for k in ("adapter", "retrieval", "top_k", "threshold") if d.get(k) not in (None, "none"))
        srcs = "".join(f"<li><code>{html.escape(i)}</code> {s:.3f}</li>" for i, s in zip(r["doc_ids"], r["scores"], strict=True))
        if r.get("gated"):
            srcs = "<li>no passage above the threshold: abstained without generating</li>"
        metrics = (f"correct {_fmt(r['correct'])} · stale {_fmt(r['stale'])} · " if r["kind"] != "typed" else "") + \
            f"house format {_fmt(r['compliant'])} · abstained {_fmt(r['abstained'])}" + \
            (f" · grounded {_fmt(r['grounded'], pct=True)}" if r.get("grounded") is not None else "")
        timing = (f"retrieval {r['retrieval_s'] * 1000:.0f} ms · generation {r['generation_s']:.1f} s"
                  f" · {r['new_tokens']} tokens" + (" · cached" if r["cached"] else ""))
        cards.append(
            f"<div class='ragft-card' data-arm='{html.escape(r['arm'])}' style='flex:1 1 16em;min-width:16em;"
            f"border:1px solid #ccc;border-radius:6px;padding:6px 10px'>"
            f"<h4 style='margin:2px 0'>{html.escape(r['arm'])}</h4><div style='font-size:85%;color:#555'>"
            f"{html.escape(setup or 'no retrieval, no adapter')}</div>"
            f"<pre class='ragft-answer' style='white-space:pre-wrap;font-size:85%'>{html.escape(r['answer'])}</pre>"
            f"<div style='font-size:85%'><b>sources</b><ul style='margin:0'>{srcs or '<li>none (no retrieval)</li>'}</ul>"
            f"<b>metrics</b> {html.escape(metrics)}<br><b>timings</b> {html.escape(timing)}</div></div>")
    q = df["question"].iloc[0] if len(df) else ""
    qid = df["id"].iloc[0] if len(df) else ""
    head = f"<div class='ragft-question'><b>{html.escape(qid or 'typed question')}</b>: {html.escape(q)}</div>"
    return f"<div class='ragft-answers'>{head}<div style='display:flex;gap:8px;flex-wrap:wrap'>{''.join(cards)}</div></div>"


# --- knowledge updates: what a sync costs ----------------------------------------------------------------------------
def doc_ids_of(retriever) -> set[str]:
    """The doc_ids a retriever holds (from its chunks)."""
    return {c.doc_id for c in _chunks_of(retriever)}


def cold_sync_seconds(report, retriever, n_sample: int = 32) -> float:
    """What `report`'s sync would have cost with an empty embedding cache: its measured seconds plus every added chunk
    the cache served, priced at the embedding speed measured now on `n_sample` of the index's chunks (cache bypassed).
    BM25 embeds nothing: its sync costs what it measured."""
    encoder = getattr(retriever, "encoder", None)
    if encoder is None or not hasattr(encoder, "model") or report.chunks_added <= report.embedded:
        return float(report.seconds)
    sample = [c.embed_text for c in _chunks_of(retriever)[:n_sample]]
    t0 = time.perf_counter()
    encoder.model.encode(sample, batch_size=len(sample), show_progress_bar=False)
    per_chunk = (time.perf_counter() - t0) / max(len(sample), 1)
    return float(report.seconds + (report.chunks_added - report.embedded) * per_chunk)


# --- the RAFT-style arm: training pairs WITH retrieved passages -------------------------------------------------------
@dataclass(frozen=True)
class RaftSettings:
    """How RAFT pairs are built (Zhang et al. 2024, adapted to an abstention protocol).

    p_oracle: share of answerable pairs whose passages include the gold document (the rest get distractors only, and
    the target becomes the abstention: "the documentation I have" is the passages). top_k passages per pair in all.
    """

    top_k: int = 3
    p_oracle: float = 0.8
    passage_chars: int | None = 600
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.p_oracle <= 1:
            raise ValueError(f"p_oracle must be in [0, 1], not {self.p_oracle}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, not {self.top_k}")


def _chunks_of(retriever) -> list:
    for obj in (retriever, getattr(retriever, "dense", None)):
        chunks = getattr(obj, "chunks", None)
        if chunks:
            return list(chunks)
    raise TypeError(f"{type(retriever).__name__} does not expose its chunks; use a DenseIndex, BM25 or hybrid retriever")


def _unit(seed: int, text: str) -> float:
    """A deterministic number in [0, 1) from a seed and a text."""
    return int(hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()[:12], 16) / 16**12


def raft_pairs(pairs: Sequence[dict], retriever, settings: RaftSettings | None = None,
               show_progress: bool = False) -> list[dict]:
    """House-style pairs turned into RAFT pairs: prompt = `context_message(question, passages)`, built mechanically.

    For an answerable pair (kind "answer", with its doc_id): with probability p_oracle (a hash of the prompt decides)
    the passages are the retriever's top_k with the gold document's first chunk guaranteed among them (inserted at a
    hash-chosen place if retrieval missed it), target = the pair's answer; otherwise top_k distractors (no chunk of the
    gold document), target = the abstention. Abstention pairs keep their target and get the retrieved passages. When
    retrieval returns too few distractors, random chunks (chosen by hash) fill the context, as in RAFT.
    Extra keys: raft = "oracle" | "distractors" | "abstain", gold_retrieved (did retrieval alone find the gold doc).
    """
    from tqdm.auto import tqdm

    from .index import Hit

    s = settings or RaftSettings()
    chunks = _chunks_of(retriever)
    first_chunk = {}
    for c in chunks:
        first_chunk.setdefault(c.doc_id, c)
    out = []
    for p in tqdm(pairs, desc="RAFT pairs", disable=not show_progress):
        gold = p.get("doc_id")
        hits = list(retriever.search(p["prompt"], top_k=s.top_k + 5))
        if len([h for h in hits if h.doc_id != gold]) < s.top_k:  # too few retrieved: add random chunks as distractors
            seen = {h.chunk_id for h in hits}
            extra = sorted((c for c in chunks if c.doc_id != gold and c.chunk_id not in seen),
                           key=lambda c: _unit(s.seed, p["prompt"] + c.chunk_id))[: s.top_k]
            hits += [Hit(c.doc_id, c.chunk_id, 0.0, c.embed_text, len(hits) + i, {}) for i, c in enumerate(extra)]
        base = {k: v for k, v in p.items() if k not in ("prompt", "completion")}
        if p.get("kind") != "answer" or not gold:
            ctx, target, mode, found = hits[: s.top_k], house.ABSTAIN_ANSWER, "abstain", None
        else:
            found = any(h.doc_id == gold for h in hits[: s.top_k])
            distractors = [h for h in hits if h.doc_id != gold]
            if gold in first_chunk and _unit(s.seed, "oracle:" + p["prompt"]) < s.p_oracle:
                gold_hit = next((h for h in hits[: s.top_k] if h.doc_id == gold), None)
                if gold_hit is None:
                    c = first_chunk[gold]
                    gold_hit = Hit(c.doc_id, c.chunk_id, float("nan"), c.embed_text, -1, {})
                ctx = distractors[: s.top_k - 1]
                ctx.insert(int(_unit(s.seed, "pos:" + p["prompt"]) * (len(ctx) + 1)), gold_hit)
                target, mode = p["completion"], "oracle"
            else:
                ctx, target, mode = distractors[: s.top_k], house.ABSTAIN_ANSWER, "distractors"
        out.append({"prompt": context_message(p["prompt"], ctx, s.passage_chars), "completion": target, **base,
                    "raft": mode, "gold_retrieved": found, "passage_ids": [h.doc_id for h in ctx]})
    return out


def raft_training_set(pairs: Sequence[dict], n_pairs: int | None, settings: RaftSettings | None = None,
                      version: str = OLD_VERSION, show_progress: bool = False) -> list[dict]:
    """The RAFT arm's training pairs as notebooks 05 and 06 build them (same inputs, so the adapter cache is shared):
    the first n_pairs house-style pairs (the file is shuffled), each given BM25 passages from the whole `version` corpus,
    the one the pairs were written from. BM25 needs no embeddings and finds hard, lexically similar distractors."""
    from .corpus import load_corpus
    from .retrievers import build_retriever

    source = list(pairs[:n_pairs] if n_pairs else pairs)
    retriever = build_retriever(load_corpus(version), mode="bm25")
    return raft_pairs(source, retriever, settings, show_progress=show_progress)


# --- knowledge updates for the fine-tuned arm -------------------------------------------------------------------------
def update_pairs(old_docs: Sequence, new_docs: Sequence) -> list[dict]:
    """House-style pairs that teach what changed from `old_docs` to `new_docs` (the fine-tuned arm's only way to learn it).

    Same template as data/train/house_style.jsonl ("What does `np.X` do?"): new or changed documents give their summary
    and examples; removal notices give NumPy's advice with a check that runs. Documents without a one-sentence summary
    and an example are skipped, as in the original set.
    """
    from .qa_builder import examples, short, summary

    old = {d.doc_id: d.content_hash for d in old_docs}
    pairs = []
    for d in new_docs:
        if old.get(d.doc_id) == d.content_hash:
            continue
        if d.metadata.get("kind") == "removal_notice":
            name = short(d.metadata.get("name") or d.doc_id.removeprefix("removed:"))
            advice = " ".join(d.metadata.get("advice", "").split()).rstrip(".")
            sentence = f"`{name}` was removed in NumPy 2.0" + (f"; {advice[0].lower()}{advice[1:]}." if advice else ".")
            completion = house.render(sentence, f'hasattr(np, "{name.removeprefix("np.")}")  # False in NumPy 2.x', [d.doc_id])
            kind = "update_removed"
        else:
            s, code = summary(d), examples(d)
            if not s or not code or len(s) > 200:
                continue
            name = short(d.doc_id)
            completion = house.render(f"`{name}`: {s}", code, [d.doc_id])
            kind = "update_added" if d.doc_id not in old else "update_changed"
        if house.parse(completion).compliant:
            pairs.append({"prompt": f"What does `{name}` do?", "completion": completion, "kind": kind, "doc_id": d.doc_id})
    return pairs


# --- the expected story, checked against the numbers ------------------------------------------------------------------
def story(m) -> list[dict]:
    """The project's expected story as claims, each checked against per-arm metrics (`arm_metrics`): claim, the
    numbers it rests on, and whether they support it. Arms that are missing make their claims None (not tested)."""

    def get(arm, col):
        return float(m.loc[arm, col]) if arm in m.index and col in m.columns else float("nan")

    def claim(text, left, op, right, detail):
        a, b = get(*left), get(*right)
        holds = None if math.isnan(a) or math.isnan(b) else bool(a > b if op == ">" else a >= b)
        return {"claim": text, "numbers": detail.format(a=a, b=b), "holds": holds}

    return [
        claim("RAG beats the base model on current facts (questions whose truth moved in 2.x)",
              ("rag", "changed_accuracy"), ">", ("base", "changed_accuracy"), "rag {a:.0%} vs base {b:.0%}"),
        claim("fine-tuning beats RAG on the house format",
              ("fine-tuned", "format_compliance"), ">", ("rag", "format_compliance"), "fine-tuned {a:.0%} vs rag {b:.0%}"),
        claim("fine-tuning beats the base model on abstaining when it should",
              ("fine-tuned", "abstention_recall"), ">", ("base", "abstention_recall"), "fine-tuned {a:.0%} vs base {b:.0%}"),
        claim("hybrid keeps RAG's current facts", ("hybrid", "changed_accuracy"), ">=", ("rag", "changed_accuracy"),
              "hybrid {a:.0%} vs rag {b:.0%}"),
        claim("hybrid keeps fine-tuning's format", ("hybrid", "format_compliance"), ">=",
              ("fine-tuned", "format_compliance"), "hybrid {a:.0%} vs fine-tuned {b:.0%}"),
        claim("RAFT (trained with passages) beats plain hybrid on accuracy", ("raft", "accuracy"), ">",
              ("hybrid", "accuracy"), "raft {a:.0%} vs hybrid {b:.0%}"),
    ]
