"""Answers per second of the RAG arm: today's default generation settings vs the new default, on the same dev questions.

Today's default: passages cut to 600 characters, max_new_tokens 80 and no stop (the model writes until EOS or 80
tokens). The new default, the arms' settings (`systems.ArmSettings`): passages cut to 300 characters (each passage is
one retrieved chunk; 300 characters keep its signature and summary line), generation ends where the answer ends
(`generation.STOP_AT_ANSWER_END`: after a house answer's `Source:` line, or at the first blank line of a reply in
another form) and max_new_tokens is sized from the measured length of house answers (`profiles.ANSWER_MAX_NEW_TOKENS`,
see benchmarks/answer_lengths.py). Both run `systems.System("rag")` prompts (BM25 top 3 over a NumPy 2.4.6 corpus
subset, house system prompt), the shared decoding (`generation.DECODING`: greedy, no repetition penalty, no 16-gram twice
in one answer), SmolLM2-135M fp32 through `systems.generate_chats`.

Per setting it prints: mean prompt tokens, new tokens, prefill and decode tokens/s, answers/s at batch 1 (on the first
--n-batch1 questions) and at batch 8 (all questions), the process's peak RSS so far, and the answer metrics
(`evaluation.summarize_arms`) of the batch-8 answers. Then what 4x today's answers/s would leave for a prompt at the
speeds just measured (`ceiling`), the prefill and decode rates against this machine's measured limits (`limits`), and
as the last line the new-default-to-today answers/s ratio at batch 8. Asserts
nothing: one run on a shared CPU is a measurement.

    .venv/bin/python benchmarks/generation.py            # 40 dev questions, batch 1 on 8 of them
    .venv/bin/python benchmarks/generation.py --quick    # 8 questions, batch 1 on 2 (under 3 minutes on 2 idle cores)
    .venv/bin/python benchmarks/generation.py --skip-today --engine ct2-int8 --engine ortgenai-int4  # fast engines
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from ragft import (
    evaluation,  # noqa: E402
    generation,
    systems,  # noqa: E402
)
from ragft.core import profiles  # noqa: E402
from ragft.core.paths import CURRENT_VERSION  # noqa: E402
from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import load_qa, sample, subset_corpus  # noqa: E402
from ragft.evaluation.scoring import score_answer  # noqa: E402
from ragft.generation import engines  # noqa: E402
from ragft.retrieval.retrievers import build_retriever  # noqa: E402


@dataclass(frozen=True)
class Setting:
    name: str
    max_new_tokens: int
    stop_at_answer_end: bool
    passage_chars: int
    engine: str = "transformers"


TODAY = Setting("today (600-char passages, 80 tokens, no stop)", 80, False, 600)
NEW = Setting(f"new ({systems.RetrievalSettings.passage_chars}-char passages, {profiles.ANSWER_MAX_NEW_TOKENS} tokens, "
              "stop at answer end)", profiles.ANSWER_MAX_NEW_TOKENS, generation.STOP_AT_ANSWER_END,
              systems.RetrievalSettings.passage_chars)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(setting: Setting, chats: list[list[dict]], model, tok, batch_size: int, fast=None):
    """Answer every chat in batches of batch_size; (generations, wall seconds, prefill tok/s, decode tok/s, seconds per
    decode step, decode steps per generation call). A batch takes as many decode steps as its longest answer: rows that
    have stopped are still computed."""
    gens, prefill_tokens, prefill_s, decode_tokens, decode_s, steps, n_calls = [], 0, 0.0, 0, 0.0, 0, 0
    t0 = time.perf_counter()
    for start in range(0, len(chats), batch_size):
        if setting.engine != "transformers":  # 8 chats handed over at once, answered one by one (generate_chats)
            part = fast.generate_chats(chats[start:start + batch_size], setting.max_new_tokens,
                                       stop_at_answer_end=setting.stop_at_answer_end)
            calls = [[g] for g in part]
        else:
            part = systems.generate_chats(model, tok, chats[start:start + batch_size], setting.max_new_tokens,
                                          batch_size, stop_at_answer_end=setting.stop_at_answer_end)
            calls = [part]
        gens += part
        # each generation call's rows carry that call's timings: count every call once
        prefill_tokens += sum(g.n_prompt_tokens for g in part)
        prefill_s += sum(c[0].ttft_s for c in calls)
        decode_tokens += sum(max(g.n_new_tokens - 1, 0) for g in part)
        decode_s += sum(c[0].total_s - c[0].ttft_s for c in calls)
        steps += sum(max(max(g.n_new_tokens for g in c) - 1, 0) for c in calls)
        n_calls += len(calls)
    wall = time.perf_counter() - t0
    return (gens, wall, prefill_tokens / prefill_s, decode_tokens / decode_s if decode_s > 0 else float("nan"),
            decode_s / steps if steps else float("nan"), steps / n_calls)


def ceiling(today_aps: float, prefill_tok_s: float, step_s: float, steps_per_batch: float, batch: int = 8,
            goal: float = 4.0) -> tuple[float, float, float]:
    """What `goal` x today's answers/s leaves for a prompt at this machine's measured speeds: (seconds per batch of
    `batch` answers, of which decoding takes, the prompt tokens per question the prefill rate then allows).

    Prefill is compute-bound (its rate barely changes with the prompt), one decode step costs about the same at batch 1
    and 8 (it reads every weight once), so a batch costs batch x prompt / prefill rate + steps x step time.
    >>> ceiling(0.5, 500.0, 0.1, 40)  # 4 s per batch, 4 s of decoding: no room left for a prompt
    (4.0, 4.0, 0.0)
    """
    per_batch = batch / (goal * today_aps)
    decode = steps_per_batch * step_s
    return per_batch, decode, max(per_batch - decode, 0.0) * prefill_tok_s / batch


def limits(new: dict, model) -> None:
    """The new default's prefill tokens/s and decode ms/step (batch 8) against this machine's measured limits
    (`exact_speedups.matmul_flops`, `copy_bandwidth`): the distance to the limit."""
    from exact_speedups import copy_bandwidth, matmul_flops, model_costs  # benchmarks/ is this script's folder

    flops, bandwidth = matmul_flops(), copy_bandwidth()
    per_token, per_step = model_costs(model)
    prefill, step_ms = new["prefill tok/s (b8)"], new["ms per decode step (b8)"]
    print(f"distance to the limit (new default, batch 8; {flops / 1e9:.1f} GFLOP/s fp32 matmul, {bandwidth / 1e9:.1f} "
          f"GB/s copy): prefill {prefill:.0f} tokens/s vs {flops / per_token:.0f} ({prefill * per_token / flops:.0%}); "
          f"decode {step_ms:.1f} ms/step vs {1000 * per_step / bandwidth:.1f} ms to read the weights once "
          f"({1000 * per_step / bandwidth / step_ms:.0%})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 questions, batch 1 on 2 of them")
    ap.add_argument("--n-questions", type=int, default=40)
    ap.add_argument("--n-batch1", type=int, default=8, help="questions answered one at a time (batch 1)")
    ap.add_argument("--n-docs", type=int, default=300, help="documents of the 2.4.6 corpus subset BM25 searches")
    ap.add_argument("--engine", action="append", default=[],
                    choices=["ct2-int8", "ct2-float32", "ortgenai-int4", "ortgenai-fp32"],
                    help="also run the new default on CTranslate2 (pip install ctranslate2) or ONNX Runtime GenAI "
                         "(pip install onnxruntime-genai onnx-ir): repeat for several")
    ap.add_argument("--skip-today", action="store_true", help="do not run today's setting (no ratio line)")
    args = ap.parse_args()
    if args.quick:
        args.n_questions, args.n_batch1 = 8, 2

    items = sample(load_qa("dev"), args.n_questions)
    docs = subset_corpus(load_corpus(CURRENT_VERSION), items, CURRENT_VERSION, args.n_docs)
    bm25 = build_retriever(docs, mode="bm25")
    rag = systems.System("rag", retriever=bm25, retriever_label="bm25", top_k=3)
    hits = [list(bm25.search(i.question, top_k=rag.top_k)) for i in items]

    def chats_of(s: Setting) -> list[list[dict]]:
        system = rag.replace(passage_chars=s.passage_chars)
        return [systems.system_messages(system, i.question, h) for i, h in zip(items, hits, strict=True)]

    pool = systems.ModelPool()
    model, tok, _ = pool.get(rag.model, None)
    print(f"{len(items)} dev questions ({', '.join(sorted({i.kind for i in items}))}), BM25 top 3 over {len(docs)} "
          f"NumPy {CURRENT_VERSION} documents; model loaded in {pool.load_s:.1f} s")
    chats = chats_of(NEW)
    n_system = len(tok(generation.RAG_SYSTEM_PROMPT)["input_ids"])
    systems.generate_chats(model, tok, chats[:1], 4)  # warm-up: first-call allocations out of the timings

    settings, fast = ([] if args.skip_today else [TODAY]) + [NEW], {}
    for name in args.engine:
        runtime, quantization = name.split("-")
        t0 = time.perf_counter()
        try:
            engines.check_decoding(runtime)
            if runtime == "ct2":
                fast[name] = engines.Ct2Generator(engines.converted(model, tok, quantization), tok)
            else:
                fast[name] = engines.OrtGenAIGenerator(engines.ortgenai_converted(model, tok, quantization), tok)
        except engines.EngineUnavailable as e:
            print(f"{name}: skipped: {e}")
            continue
        print(f"{name}: converted (or found in the cache) and loaded in {time.perf_counter() - t0:.1f} s")
        fast[name].generate_chats(chats[:1], 4)
        settings.append(Setting(f"{NEW.name}, {name}", NEW.max_new_tokens, NEW.stop_at_answer_end, NEW.passage_chars,
                                runtime))
    engine_of = {s.name: fast.get(s.name.rsplit(", ", 1)[-1]) for s in settings}

    results, rows = {}, []
    for s in settings:
        chats = chats_of(s)
        gens1, wall1, *_ = run(s, chats[:args.n_batch1], model, tok, batch_size=1, fast=engine_of[s.name])
        gens8, wall8, prefill, decode, step_s, steps = run(s, chats, model, tok, batch_size=8, fast=engine_of[s.name])
        results[s.name] = {
            "prompt tokens": sum(g.n_prompt_tokens for g in gens8) / len(gens8),
            "new tokens": sum(g.n_new_tokens for g in gens8) / len(gens8),
            "prefill tok/s (b8)": prefill, "decode tok/s (b8)": decode, "ms per decode step (b8)": 1000 * step_s,
            "decode steps per call": steps,  # per batch of 8 on transformers, per answer on the one-by-one engines
            "answers/s b1": len(gens1) / wall1, "answers/s b8": len(gens8) / wall8,
            "peak RSS MB": peak_rss_mb()}
        for item, h, g in zip(items, hits, gens8, strict=True):
            passages = [x.text for x in h]
            rows.append({**score_answer(item, g.text, passages), "arm": s.name, "latency_s": g.total_s / g.batch_size,
                         "confidence": g.confidence, "cached": False,
                         "gold_retrieved": bool(item.gold(CURRENT_VERSION) & {x.doc_id for x in h})
                         if item.answerable else None})
        print(f"  {s.name}: {results[s.name]['answers/s b8']:.3f} answers/s at batch 8", flush=True)

    pd.set_option("display.width", 200)
    print(pd.DataFrame(results).T.round(3).to_string())
    print(evaluation.summarize_arms(pd.DataFrame(rows), metrics=("n", "accuracy", "answerable_accuracy",
                                                                 "format_compliance", "abstention_recall",
                                                                 "groundedness", "latency_s")).round(3).to_string())
    limits(results[NEW.name], model)
    for s in settings[2:] if not args.skip_today else settings[1:]:
        print(f"{s.name} to transformers answers/s at batch 8: "
              f"{results[s.name]['answers/s b8'] / results[NEW.name]['answers/s b8']:.2f}, "
              f"at batch 1: {results[s.name]['answers/s b1'] / results[NEW.name]['answers/s b1']:.2f}")
    if not args.skip_today:
        for s in settings[2:]:  # the whole new default on a fast engine, against today's pipeline on transformers
            print(f"{s.name} to today answers/s (batch 8, {len(items)} questions): "
                  f"{results[s.name]['answers/s b8'] / results[TODAY.name]['answers/s b8']:.2f}")
        new, today = results[NEW.name], results[TODAY.name]
        per_batch, decode_s, room = ceiling(today["answers/s b8"], new["prefill tok/s (b8)"],
                                            new["ms per decode step (b8)"] / 1000, new["decode steps per call"])
        print(f"4x today's answers/s at batch 8 on transformers leaves {per_batch:.1f} s per batch of 8; its "
              f"{new['decode steps per call']:.0f} decode steps at {new['ms per decode step (b8)']:.0f} ms take "
              f"{decode_s:.1f} s, so at {new['prefill tok/s (b8)']:.0f} prefill tokens/s a prompt could hold "
              f"{room:.0f} tokens (the new default's: {new['prompt tokens']:.0f}; the house system prompt's alone: "
              f"{n_system} tokens)")
        ratio = results[NEW.name]["answers/s b8"] / results[TODAY.name]["answers/s b8"]
        print(f"new-default-to-today answers/s ratio (batch 8, {len(items)} questions): {ratio:.2f}")


if __name__ == "__main__":
    main()
