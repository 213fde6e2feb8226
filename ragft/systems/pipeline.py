"""The answering path for a model already in hand: notebook 03's `RagPipeline` (a retriever and a loaded model,
prompts that fit a token budget via `generation.build_prompt`, answers that carry their passages, cuts, warnings and a
retrieve / prompt / generate time split; `evaluate_pipeline` scores a run) and notebook 04's base-vs-tuned behaviour
evaluation (`evaluate_behaviour`, `compare_adapter`: one model, its adapter off and on, no system prompt).

Generation, deduplication and caching are `generation.answers.generate_unique`'s and the abstentions without the model
`answering.gate`'s; this module only retrieves, builds prompts and keeps the bookkeeping a learner inspects. The pipeline's cache is in memory (it is handed a loaded model it cannot
name), so `clear_cache` is needed after changing the model's weights or adapter.
Introduced in notebooks/03_rag.ipynb (RAG) and notebooks/04_qlora_finetuning.ipynb (behaviour).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ..core.cache import content_key
from ..core.house import ABSTAIN_ANSWER, SYSTEM_PROMPT, parse, split_quote
from ..core.paths import CURRENT_VERSION
from ..core.profiles import ANSWER_MAX_NEW_TOKENS, DEFAULT_TOP_K
from ..evaluation.arms import BEHAVIOUR_TABLE, summarize_arms
from ..evaluation.code_runs import add_code_runs
from ..evaluation.ranking import gold_found
from ..evaluation.scoring import score_answer
from ..generation import decoding as generation
from ..generation.answers import AnswerCache, generate_unique
from ..generation.decoding import (
    DECODING,
    PASSAGE_ORDER,
    RAG_SYSTEM_PROMPT,
    REPETITION_PENALTY,
    Generation,
    RagPrompt,
    build_prompt,
    chat_messages,
    cut_passage,
    truncate_question,
)
from ..generation.pool import generate_chats
from ..retrieval.retrievers import undocumented_names
from .answering import gate


@dataclass
class RagConfig:
    """How the pipeline retrieves and prompts. threshold: hits scoring below it are dropped (None: keep top_k);
    when none is left the pipeline abstains in the house format without generating."""

    top_k: int = DEFAULT_TOP_K
    threshold: float | None = None
    max_prompt_tokens: int = 1024  # the whole chat-formatted prompt; SmolLM2 reads 8192, but prefill time grows with it
    max_question_tokens: int = 256
    max_new_tokens: int = ANSWER_MAX_NEW_TOKENS
    system: str | None = RAG_SYSTEM_PROMPT  # with passages
    base_system: str | None = SYSTEM_PROMPT  # without retrieval
    delimit: bool = True
    passage_chars: int | None = None  # each passage cut to this many characters first (the arms' 300); None: whole chunks
    passage_order: str = PASSAGE_ORDER  # "best_last": the best passage next to the question (generation.PASSAGE_ORDER)
    batch_size: int = 8
    repetition_penalty: float | None = REPETITION_PENALTY  # the shared decoding; another value only for experiments
    contrast: float = 0.0  # context-aware decoding alpha for prompts with passages (`generation.context_contrast`); 0: off
    name_check: bool = False  # abstain without generating when no passage documents the `np.X` the question names

    def __post_init__(self):
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.contrast < 0:
            raise ValueError(f"contrast must be >= 0 (0 = off), got {self.contrast}")
        if self.max_new_tokens < 1 or self.max_question_tokens < 8:
            raise ValueError("max_new_tokens must be >= 1 and max_question_tokens >= 8")
        generation.check_passage_order(self.passage_order)  # an unknown order fails here


@dataclass
class Timings:
    """Seconds spent per stage of one answer (in a batch: the batch's time divided by its size)."""

    retrieve_s: float = 0.0
    prompt_s: float = 0.0
    generate_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.retrieve_s + self.prompt_s + self.generate_s


@dataclass
class RagAnswer:
    """An answer and everything that produced it: the passages used (with scores), those cut, timings, warnings."""

    question: str
    text: str
    passages: list  # Hits in the prompt, best first
    cut: list  # Hits retrieved but dropped by the token budget
    timings: Timings
    retrieval: bool = True
    abstained_no_context: bool = False  # retrieval found nothing above the threshold: house abstention, no generation
    n_retrieved: int = 0
    n_prompt_tokens: int = 0
    n_new_tokens: int = 0
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    confidence: float | None = None
    cached: bool = False  # an identical prompt was answered before (greedy decoding is deterministic)
    warnings: list[str] = field(default_factory=list)
    quote: str = ""  # the quote line an adapter trained to quote first wrote before its answer (house.split_quote)

    @property
    def scores(self) -> list[float]:
        return [float(h.score) for h in self.passages]

    @property
    def sources(self) -> list[str]:
        return [h.doc_id for h in self.passages]

    @property
    def passage_texts(self) -> list[str]:
        return [h.text for h in self.passages]

    def to_json(self) -> dict:
        return {"question": self.question, "answer": self.text, "quote": self.quote, "retrieval": self.retrieval,
                "abstained_no_context": self.abstained_no_context,
                "passages": [{"doc_id": h.doc_id, "chunk_id": h.chunk_id, "score": round(float(h.score), 4)}
                             for h in self.passages],
                "cut": [h.chunk_id for h in self.cut], "n_prompt_tokens": self.n_prompt_tokens,
                "n_new_tokens": self.n_new_tokens,
                "timings": {"retrieve_s": self.timings.retrieve_s, "prompt_s": self.timings.prompt_s,
                            "generate_s": self.timings.generate_s, "total_s": self.timings.total_s,
                            "ttft_s": self.ttft_s, "tokens_per_s": self.tokens_per_s},
                "warnings": self.warnings}


class RagPipeline:
    """Retriever + generator. `answer(q)` retrieves top_k passages (above `threshold`), fits them in the prompt budget and
    generates greedily; `answer(q, retrieval=False)` is the same model without retrieval (the base arm).

    >>> rag = RagPipeline(retriever, model, tok, RagConfig(top_k=3))  # doctest: +SKIP
    >>> a = rag.answer("What replaces np.float_?"); a.text, a.sources, a.timings  # doctest: +SKIP
    """

    def __init__(self, retriever, model, tok, config: RagConfig | None = None, cache_answers: bool = True):
        """cache_answers: answer an identical prompt once (greedy decoding makes the text the same; timings are not
        re-measured: cached answers carry cached=True and generate_s 0)."""
        self.retriever, self.model, self.tok = retriever, model, tok
        self.config = config or RagConfig()
        self.cache_answers = cache_answers
        self._cache = AnswerCache("memory")
        context = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        if context and self.config.max_prompt_tokens + self.config.max_new_tokens > context:
            raise ValueError(f"max_prompt_tokens + max_new_tokens = {self.config.max_prompt_tokens + self.config.max_new_tokens}"
                             f" exceeds the model's context window ({context} tokens)")

    def clear_cache(self) -> None:
        """Forget cached answers: needed after changing the model itself (weights, adapter on/off), not after a sync."""
        self._cache = AnswerCache("memory")

    def with_config(self, **changes) -> RagPipeline:
        """The same retriever and model (nothing reloaded) with some settings changed; shares the answer cache."""
        other = RagPipeline(changes.pop("retriever", self.retriever), self.model, self.tok,
                            replace(self.config, **changes), self.cache_answers)
        other._cache = self._cache
        return other

    # -- stages
    def retrieve(self, questions: list[str], top_k: int | None = None, threshold: float | None = None) -> list[list]:
        if self.retriever is None:
            raise ValueError("this pipeline has no retriever: pass one, or answer with retrieval=False")
        return self.retriever.search_batch(questions, top_k=top_k or self.config.top_k,
                                           threshold=self.config.threshold if threshold is None else threshold)

    def prompt(self, question: str, hits: list | None) -> RagPrompt:
        c = self.config
        if hits and c.passage_chars is not None:
            hits = [replace(h, text=cut_passage(h.text, c.passage_chars)) for h in hits]
        return build_prompt(self.tok, question, hits or [], c.max_prompt_tokens, c.system if hits is not None else c.base_system,
                            c.max_question_tokens, c.delimit, c.passage_order)

    def _generate(self, prompts: list[RagPrompt]) -> list[tuple[Generation | dict, bool]]:
        """(Generation, False) for each freshly generated prompt; (cached record, True) for a repeat or a cache hit."""
        mnt, c = self.config.max_new_tokens, self.config
        decoding = {**DECODING, "repetition_penalty": c.repetition_penalty}
        if c.contrast:  # context-aware decoding: a prompt with passages goes with its passage-free twin (same system turn)
            decoding["contrast"] = generation.contrast_decoding(c.contrast)
        keyed = [(content_key(p.messages, mnt, decoding),
                  (p.messages, chat_messages(p.question, c.system) if c.contrast and p.used else None)) for p in prompts]
        out: dict[int, tuple] = {}
        for with_passages in (True, False):  # one generate call per kind: a batch either contrasts or does not
            idx = [i for i, (_, (_, plain)) in enumerate(keyed) if (plain is not None) == with_passages]
            if not idx:
                continue
            done = generate_unique(
                [keyed[i] for i in idx],
                lambda batch, w=with_passages: generate_chats(
                    self.model, self.tok, [m for m, _ in batch], mnt, c.batch_size, c.repetition_penalty,
                    contrast=[p for _, p in batch] if w else None, contrast_alpha=c.contrast if w else 0.0),
                self._cache if self.cache_answers else None, c.batch_size)
            out.update(zip(idx, done, strict=True))
        return [(gen, False) if gen is not None else (record, True) for record, gen, _ in (out[i] for i in range(len(prompts)))]

    # -- answering
    def answer(self, question: str, retrieval: bool = True, top_k: int | None = None, threshold: float | None = None,
               passages: list | None = None) -> RagAnswer:
        """Answer one question. `passages` skips retrieval and uses the given hits (to inject wrong or irrelevant text)."""
        return self.answer_batch([question], retrieval, top_k, threshold, None if passages is None else [passages])[0]

    def answer_batch(self, questions: list[str], retrieval: bool = True, top_k: int | None = None,
                     threshold: float | None = None, passages: list[list] | None = None,
                     show_progress: bool = False) -> list[RagAnswer]:
        """Answer many questions: one batched retrieval, then batched generation (identical prompts generated once)."""
        from tqdm.auto import tqdm

        for q in questions:
            if not isinstance(q, str) or not q.strip():
                raise ValueError("empty question: type a question to answer")
        n = max(len(questions), 1)
        t0 = time.perf_counter()
        if passages is not None:
            hit_lists = [list(p) for p in passages]
        elif retrieval:
            # retrieval reads the question as the prompt will hold it: an over-long one is truncated first
            queries = [truncate_question(self.tok, q.strip(), self.config.max_question_tokens)[0] for q in questions]
            hit_lists = self.retrieve(queries, top_k, threshold)
        else:
            hit_lists = [None] * len(questions)
        retrieve_s = (time.perf_counter() - t0) / n
        answers: list[RagAnswer | None] = [None] * len(questions)
        prompts, slots = [], []
        for i, (q, hits) in enumerate(zip(questions, hit_lists, strict=True)):
            t1 = time.perf_counter()
            reason = gate(q, hits, threshold_on=True, name_check=self.config.name_check)
            if reason == "threshold":  # nothing above the threshold: abstain instead of generating from nothing
                answers[i] = RagAnswer(q, ABSTAIN_ANSWER, [], [], Timings(retrieve_s), True, abstained_no_context=True,
                                       warnings=["no passage above the threshold: abstained without generating"])
                continue
            if reason == "name":  # the passages are about other APIs: the system check of System.name_check
                missing = undocumented_names(q, hits)
                answers[i] = RagAnswer(q, ABSTAIN_ANSWER, list(hits), [], Timings(retrieve_s), True,
                                       abstained_no_context=True, n_retrieved=len(hits),
                                       warnings=[f"no retrieved passage documents {', '.join(missing)}: abstained "
                                                 "without generating (name check)"])
                continue
            p = self.prompt(q, hits)
            if hits and not p.used:  # the budget holds no passage at all: same as finding none
                answers[i] = RagAnswer(q, ABSTAIN_ANSWER, [], p.cut, Timings(retrieve_s, time.perf_counter() - t1), True,
                                       abstained_no_context=True, n_retrieved=len(hits),
                                       warnings=[*p.warnings, "no passage fits max_prompt_tokens: abstained without generating"])
                continue
            prompts.append(p)
            slots.append((i, time.perf_counter() - t1, len(hits or [])))
        gen_t0 = time.perf_counter()
        gens = []
        step = self.config.batch_size
        for s in tqdm(range(0, len(prompts), step), desc="answering", unit="batch", disable=not show_progress or not prompts):
            gens += self._generate(prompts[s:s + step])
        fresh = sum(1 for _, cached in gens if not cached)
        gen_each = (time.perf_counter() - gen_t0) / fresh if fresh else 0.0
        for p, (i, prompt_s, n_hits), (g, cached) in zip(prompts, slots, gens, strict=True):
            if cached:  # a cache record: the text and token counts, no timing to report
                g = Generation(g["text"], g["n_prompt_tokens"], g["n_new_tokens"], 0.0, 0.0, g.get("mean_logprob"),
                               g["batch_size"])
            quote, text = split_quote(g.text)  # a quote line is the model's working, not its answer
            answers[i] = RagAnswer(
                question=questions[i], text=text, quote=quote, passages=p.used, cut=p.cut,
                timings=Timings(retrieve_s, prompt_s, 0.0 if cached else (g.total_s if g.batch_size == 1 else gen_each)),
                retrieval=hit_lists[i] is not None, n_retrieved=n_hits, n_prompt_tokens=p.n_tokens,
                n_new_tokens=g.n_new_tokens, ttft_s=g.ttft_s if g.batch_size == 1 and not cached else None,
                tokens_per_s=g.tokens_per_s if g.batch_size == 1 and not cached else None, confidence=g.confidence,
                cached=cached, warnings=list(p.warnings))
        return answers


def compare_answers(pipeline: RagPipeline, question: str, top_k: int = DEFAULT_TOP_K, threshold: float | None = None,
                    retriever=None) -> dict:
    """Base (no retrieval) vs RAG for one question: {"passages": DataFrame of hits with scores, "answers": DataFrame}.

    The pure function behind the notebook's widget (`widgets.rag_widget`).
    """
    import pandas as pd

    rag = pipeline.with_config(top_k=top_k, threshold=threshold, **({"retriever": retriever} if retriever else {}))
    a_rag = rag.answer(question)
    a_base = rag.answer(question, retrieval=False)
    used = {h.chunk_id for h in a_rag.passages}
    hits = pd.DataFrame([{"rank": h.rank + 1, "score": round(float(h.score), 4), "doc_id": h.doc_id,
                          "in prompt": h.chunk_id in used, "text": " ".join(h.text.split())[:160]}
                         for h in a_rag.passages + a_rag.cut])
    rows = []
    for arm, a in (("base", a_base), ("RAG", a_rag)):
        parsed = parse(a.text)
        rows.append({"arm": arm, "answer": a.text, "compliant": parsed.compliant, "abstained": parsed.abstained,
                     "sources": ", ".join(a.sources), "seconds": round(a.timings.total_s, 2)})
    return {"passages": hits, "answers": pd.DataFrame(rows), "rag": a_rag, "base": a_base}


# --- evaluating a pipeline --------------------------------------------------------------------------------------------


def evaluate_pipeline(pipeline, items, arm: str = "rag", retrieval: bool = True, version: str | None = None,
                      passages: Sequence[Sequence] | None = None, show_progress: bool = True, **config):
    """Answer every item with `pipeline` (batched) and score it: one row per item, as a DataFrame.

    arm: a label for the row; retrieval=False answers without context (the base arm); passages: the hits to use per item
    instead of retrieving (wrong/irrelevant context); config: RagConfig overrides (top_k, threshold, ...). `version`
    (default: the current NumPy) says which gold documents `gold_in_context` checks. Cached answers (an identical prompt
    answered before) carry latency None so they do not distort the latency figures.
    """
    import pandas as pd

    version = version or CURRENT_VERSION
    items = list(items)
    pipe = pipeline.with_config(**config) if config else pipeline
    answers = pipe.answer_batch([it.question for it in items], retrieval=retrieval,
                                passages=None if passages is None else [list(p) for p in passages],
                                show_progress=show_progress)
    rows = []
    for it, a in zip(items, answers, strict=True):
        with_context = a.retrieval or passages is not None
        row = score_answer(it, a.text, a.passage_texts if with_context else None)
        gold = it.gold(version) if hasattr(it, "gold") else set()
        row.update({
            "arm": arm, "question": it.question, "answer": a.text, "sources": a.sources,
            "retrieved": a.sources + [h.doc_id for h in a.cut],  # what retrieval found, before the token budget
            "scores": [round(s, 4) for s in a.scores], "n_passages": len(a.passages), "n_cut": len(a.cut),
            "gold_in_context": (bool(gold_found(gold, a.sources, version)) if gold else None) if with_context else None,
            "abstained_no_context": a.abstained_no_context, "confidence": a.confidence,
            "n_prompt_tokens": a.n_prompt_tokens, "n_new_tokens": a.n_new_tokens, "cached": a.cached,
            "retrieve_s": a.timings.retrieve_s, "prompt_s": a.timings.prompt_s, "generate_s": a.timings.generate_s,
            "latency_s": None if a.cached or a.abstained_no_context else a.timings.total_s,
        })
        rows.append(row)
    return add_code_runs(pd.DataFrame(rows), cache=True)


# --- behaviour: one loaded model, its adapter on and off, no system prompt -------------------------------------------
# Notebook 04 asks the tuned model itself (peft switches the adapter off for the base arm): the same generation loop,
# with no cache because the model in hand is being trained. Introduced in notebooks/04_qlora_finetuning.ipynb.
def _adapter(model, on: bool):
    """The context in which `model` answers with its adapter on (as it is) or off (the base model)."""
    return contextlib.nullcontext() if on or not hasattr(model, "disable_adapter") else model.disable_adapter()


def answer_tuned(model, tok, question: str, max_new_tokens: int = 80, adapter: bool = True) -> Generation:
    """Generate an answer with NO system prompt, with the adapter on or off."""
    with _adapter(model, adapter):
        return generate_chats(model, tok, [chat_messages(question)], max_new_tokens)[0]


def compare_adapter(model, tok, question: str, max_new_tokens: int = 80):
    """Same question, base (adapter off) vs tuned (adapter on): a two-row DataFrame with answer, format checks, time."""
    import pandas as pd

    rows = []
    for arm, on in (("base", False), ("tuned", True)):
        g = answer_tuned(model, tok, question, max_new_tokens, adapter=on)
        parsed = parse(g.text)
        rows.append({"arm": arm, "answer": g.text, "compliant": parsed.compliant, "abstained": parsed.abstained,
                     "problems": "; ".join(parsed.problems), "new_tokens": g.n_new_tokens, "seconds": round(g.total_s, 2)})
    return pd.DataFrame(rows)


def evaluate_behaviour(model, tok, items: Sequence, max_new_tokens: int = 80, arms: Sequence[str] = ("base", "tuned"),
                       batch_size: int = 8, show_progress: bool = True):
    """Answer each QA item (no retrieval, no system prompt) with each arm; one scored row per (item, arm).

    Scores come from `evaluation.score_answer`. All questions of an arm go through `generation.generate_batch` together
    (it sorts them by length and batches `batch_size` at a time); batch_size=1 answers one by one.
    """
    import pandas as pd

    chats = [(content_key(chat_messages(i.question)), chat_messages(i.question)) for i in items]
    rows = []
    for arm in arms:
        def generate(batch):
            if batch_size == 1:
                return [generation.generate(model, tok, m, max_new_tokens=max_new_tokens) for m in batch]
            return generation.generate_batch(model, tok, batch, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                             show_progress=show_progress)

        with _adapter(model, arm != "base"):
            done = generate_unique(chats, generate, cache=None, batch_size=max(len(chats), 1))
        for item, (record, _, _) in zip(items, done, strict=True):
            row = score_answer(item, record["text"])
            row.update({"arm": arm, "question": item.question, "answer": record["text"],
                        "latency_s": record["total_s"] * record["batch_size"], "new_tokens": record["n_new_tokens"]})
            rows.append(row)
    return pd.DataFrame(rows)


def summarize_behaviour(df):
    """Headline metrics per arm (rows) from `evaluate_behaviour`'s table: `evaluation.summarize_arms` with the columns
    that say what the compliance is made of (`abstained`, `answered_in_format`: compliant AND not an abstention)."""
    return summarize_arms(df, metrics=BEHAVIOUR_TABLE)
