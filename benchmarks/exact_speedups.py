"""Exact speed-ups of generation on one arm's dev prompts: prompt-lookup decoding (`generation.PROMPT_LOOKUP_TOKENS`)
against plain greedy decoding, the same text required, and how far prefill and decode are from this machine's limits.

The arm: the RAG arm (`systems.System("rag")`: BM25 top 3 over a NumPy 2.4.6 corpus subset, the arms' 300-character
passages, house system prompt) on SmolLM2-135M fp32; with --adapter, the RAFT arm's prompts instead (no system prompt,
the adapter on; context-aware decoding only with --contrast, where prompt lookup stays off). Greedy, the shared
decoding (`generation.DECODING`), answers stopped at their end, `profiles.ANSWER_MAX_NEW_TOKENS` as the cap.

Per setting it prints answers/s, prefill tokens/s, decode ms per forward pass, the draft tokens proposed and accepted
(acceptance = accepted / proposed) and how many answers are identical to plain greedy one by one. Settings: plain and
prompt lookup one chat at a time (transformers runs prompt lookup on one chat only), and plain in batches of 8 (what
`systems.compare` does). With --static-cache also a static KV cache, and with --compile that cache with
`torch.compile` of the forward pass (the first answers pay the compilation; it is counted). Then prompt lookup
replayed on the RAFT arm's training targets without a model (`lookup_passes`: the tokens per forward pass it would
reach if the tuned model wrote exactly those), and this machine's limits, measured here: FLOP/s of a large fp32 matmul
and the bandwidth of a large copy, against which prefill (2 x the parameters outside the embedding, FLOPs per token)
and a decode step (every weight read once) are placed: the distance to the limit. The last lines are the answers/s
ratios. --short-prompt runs only the RAG arm with the house system prompt and with a short instruction
(`SHORT_PROMPT`) in batches of 8, strictly graded (prompts no longer than the answer needs). Asserts nothing: one
run on a shared CPU is a measurement.

    .venv/bin/python benchmarks/exact_speedups.py                 # 24 dev questions
    .venv/bin/python benchmarks/exact_speedups.py --quick         # 6 questions
    .venv/bin/python benchmarks/exact_speedups.py --adapter ~/.cache/ragft/adapters/<the RAFT adapter>
    .venv/bin/python benchmarks/exact_speedups.py --quick --static-cache --compile   # + static cache, torch.compile
    .venv/bin/python benchmarks/exact_speedups.py --short-prompt --n-questions 40   # house prompt vs a short one
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from ragft import generation, systems  # noqa: E402
from ragft.core import profiles  # noqa: E402
from ragft.core.paths import CURRENT_VERSION  # noqa: E402
from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import load_qa, sample, subset_corpus  # noqa: E402
from ragft.retrieval.retrievers import build_retriever  # noqa: E402


def matmul_flops(n: int = 2048, reps: int = 5) -> float:
    """FLOP/s of an n x n fp32 matmul (2 n^3 per product), best of reps after a warm-up."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def copy_bandwidth(mb: int = 512, reps: int = 5) -> float:
    """Bytes/s of copying an fp32 tensor of `mb` MB into another (read + write counted), best of reps."""
    x = torch.randn(mb * 2 ** 20 // 4)
    y = torch.empty_like(x)
    y.copy_(x)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        y.copy_(x)
        best = min(best, time.perf_counter() - t0)
    return 2 * x.numel() * 4 / best


def model_costs(model) -> tuple[float, float]:
    """(prefill FLOPs per prompt token, bytes read per decode step): 2 x the parameters outside the embedding (the
    output matmul runs for the last prompt token only; attention's own FLOPs left out), and every distinct parameter's
    bytes once (a decode step ends in the output matmul, which reads the whole tied embedding)."""
    params = {p.data_ptr(): p for p in model.parameters()}.values()
    embedding = model.get_input_embeddings().weight.numel()
    n = sum(p.numel() for p in params)
    return 2.0 * (n - embedding), float(sum(p.numel() * p.element_size() for p in params))


class Drafts:
    """Counts prompt lookup's proposed and accepted draft tokens (wraps PromptLookupCandidateGenerator)."""

    def __init__(self):
        self.proposed = self.accepted = self.passes = 0

    @contextlib.contextmanager
    def counting(self):
        from transformers.generation import candidate_generator as cg

        cls, counts = cg.PromptLookupCandidateGenerator, self
        get, update = cls.get_candidates, cls.update_candidate_strategy

        def get_candidates(self, input_ids, **kwargs):
            out = get(self, input_ids, **kwargs)
            counts.proposed += out[0].shape[1] - input_ids.shape[1]
            counts.passes += 1
            return out

        def update_candidate_strategy(self, input_ids, scores, num_matches):
            counts.accepted += int(num_matches)
            return update(self, input_ids, scores, num_matches)

        cls.get_candidates, cls.update_candidate_strategy = get_candidates, update_candidate_strategy
        try:
            yield self
        finally:
            cls.get_candidates, cls.update_candidate_strategy = get, update


@contextlib.contextmanager
def cache_setting(model, static: bool, compiled: bool):
    """The model's generation config set to a static KV cache (and compiled forward passes, on CPU too) for a while."""
    from transformers import CompileConfig

    config = model.generation_config
    before = config.cache_implementation, config.compile_config
    if static:
        config.cache_implementation = "static"
    if compiled:
        config.compile_config = CompileConfig(mode="default", dynamic=False)
        config.compile_config._compile_all_devices = True  # transformers compiles on GPUs only unless told
    try:
        yield
    finally:
        config.cache_implementation, config.compile_config = before


def run(model, tok, chats, system, lookup: int, batch_size: int = 1, static: bool = False, compiled: bool = False):
    """Answer every chat; (generations, wall s, draft counts)."""
    drafts = Drafts()
    t0 = time.perf_counter()
    with drafts.counting(), cache_setting(model, static, compiled):
        if batch_size == 1:
            gens = [generation.generate(model, tok, c, max_new_tokens=system.max_new_tokens, prompt_lookup=lookup,
                                        contrast=p, contrast_alpha=system.contrast) for c, p in chats]
        else:
            contrast = [p for _, p in chats] if system.contrast else None
            gens = generation.generate_batch(model, tok, [c for c, _ in chats], system.max_new_tokens, batch_size,
                                             contrast=contrast, contrast_alpha=system.contrast)
    return gens, time.perf_counter() - t0, drafts


# A short instruction for the untuned arm, against the house prompt (`generation.RAG_SYSTEM_PROMPT`): the same format,
# without the worked code block, the exact abstention sentence and the passage warning.
SHORT_PROMPT = ("Answer the NumPy 2 question from the passages in one sentence, as `Answer: <sentence>` then "
                "`Source: <doc ids>`. If they do not cover it, reply `Answer: I don't know` and `Source: none`.")


def lookup_passes(prompt: list[int], answer: list[int], k: int, ngram: int = 2) -> tuple[int, int, int]:
    """(forward passes, draft tokens accepted, proposed) for greedy decoding that writes exactly `answer` after
    `prompt` with prompt lookup drafting k tokens: transformers' PromptLookupCandidateGenerator rule (the first earlier
    match of the last `ngram`, then shorter, tokens) replayed on token lists.

    >>> lookup_passes([5, 6, 7, 8], [6, 7, 8], k=2)  # no earlier "8": 6 from one pass; then "6" drafts "7 8", accepted
    (2, 2, 2)
    """
    seq, i, passes, accepted, proposed = list(prompt), 0, 0, 0, 0
    while i < len(answer):
        draft: list[int] = []
        for size in range(min(ngram, len(seq) - 1), 0, -1):
            starts = [j for j in range(len(seq) - size) if seq[j:j + size] == seq[-size:]]
            if starts:
                draft = seq[starts[0] + size:starts[0] + size + k]
                break
        m = 0
        while m < len(draft) and i + m < len(answer) and draft[m] == answer[i + m]:
            m += 1
        seq += answer[i:i + m + 1]
        i, passes, accepted, proposed = i + m + 1, passes + 1, accepted + m, proposed + len(draft)
    return passes, accepted, proposed


def replay_raft_targets(tok, lookups: list[int]) -> None:
    """Prompt lookup replayed on the RAFT arm's training pairs (notebook 05's `raft_data`): what it would save if the
    tuned model wrote exactly the targets it was trained on, whatever adapter is cached."""
    from ragft.data.datasets import load_train_pairs
    from ragft.training.draws import TRAINING_SETS, raft_data

    settings = systems.ArmSettings()
    pairs, _ = load_train_pairs(TRAINING_SETS[settings.training.pairs][0]())
    raft = raft_data(pairs, settings, settings.training.pairs)
    end = [tok.convert_tokens_to_ids("<|im_end|>")]
    encoded = [(tok.apply_chat_template([{"role": "user", "content": p["prompt"]}], add_generation_prompt=True,
                                        tokenize=True, return_dict=True)["input_ids"],
                tok(p["completion"], add_special_tokens=False)["input_ids"] + end) for p in raft]
    n_tokens = sum(len(a) for _, a in encoded)
    for k in lookups:
        passes, accepted, proposed = map(sum, zip(*(lookup_passes(p, a, k) for p, a in encoded), strict=True))
        print(f"RAFT targets replayed, prompt lookup {k}: {len(raft)} answers, {n_tokens} tokens in {passes} passes "
              f"({n_tokens / passes:.2f} tokens per pass), acceptance {accepted / proposed:.2f}")


def compare_prompts(model, tok, items, hits, system) -> None:
    """The untuned arm with the house system prompt and with `SHORT_PROMPT`, batches of 8, strictly graded."""
    import pandas as pd

    from ragft.evaluation import summarize_arms
    from ragft.evaluation.scoring import score_answer

    rows, speed = [], {}
    for name, prompt in (("house prompt", generation.RAG_SYSTEM_PROMPT), ("short prompt", SHORT_PROMPT)):
        chats = [generation.chat_messages(generation.context_message(i.question, generation.prompt_order(h),
                                                                     system.passage_chars), prompt)
                 for i, h in zip(items, hits, strict=True)]
        t0 = time.perf_counter()
        gens = generation.generate_batch(model, tok, chats, system.max_new_tokens, 8)
        wall = time.perf_counter() - t0
        speed[name] = (len(gens) / wall, sum(g.n_prompt_tokens for g in gens) / len(gens))
        rows += [{**score_answer(i, g.text, [x.text for x in h]), "arm": name, "latency_s": g.total_s / g.batch_size,
                  "confidence": g.confidence, "cached": False, "gold_retrieved": None}
                 for i, h, g in zip(items, hits, gens, strict=True)]
    table = summarize_arms(pd.DataFrame(rows), metrics=("n", "accuracy", "answerable_accuracy", "format_compliance",
                                                         "abstention_recall"))
    table["answers/s (b8)"] = [speed[a][0] for a in table.index]
    table["prompt tokens"] = [speed[a][1] for a in table.index]
    print(table.round(3).to_string())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 questions")
    ap.add_argument("--n-questions", type=int, default=24)
    ap.add_argument("--n-docs", type=int, default=300, help="documents of the 2.4.6 corpus subset BM25 searches")
    ap.add_argument("--lookup", type=int, action="append", default=[],
                    help="draft tokens per step to try (repeat; default 3 and 10)")
    ap.add_argument("--adapter", help="a RAFT adapter folder: the RAFT arm's prompts (no system prompt), not RAG's")
    ap.add_argument("--contrast", type=float, default=0.0, help="context-aware decoding alpha (prompt lookup then off)")
    ap.add_argument("--static-cache", action="store_true", help="also plain decoding with a static KV cache")
    ap.add_argument("--compile", action="store_true", help="also a static cache with torch.compile (minutes)")
    ap.add_argument("--short-prompt", action="store_true",
                    help="instead: the RAG arm with the house system prompt and a short instruction, strictly graded")
    args = ap.parse_args()
    n_questions = 6 if args.quick else args.n_questions
    lookups = args.lookup or [3, 10]

    items = sample(load_qa("dev"), n_questions)
    docs = subset_corpus(load_corpus(CURRENT_VERSION), items, CURRENT_VERSION, args.n_docs)
    bm25 = build_retriever(docs, mode="bm25")
    common = dict(retriever=bm25, retriever_label="bm25", top_k=3, max_new_tokens=profiles.ANSWER_MAX_NEW_TOKENS,
                  passage_chars=systems.RetrievalSettings.passage_chars, contrast=args.contrast)
    system = (systems.System("raft", adapter=str(Path(args.adapter).expanduser()), prompt="none", **common)
              if args.adapter else systems.System("rag", prompt="house", **common))
    chats, hits = [], [list(bm25.search(i.question, top_k=system.top_k)) for i in items]
    for item, found in zip(items, hits, strict=True):
        chats.append((systems.system_messages(system, item.question, found),
                      systems.contrast_messages(system, item.question) if args.contrast else None))

    pool = systems.ModelPool()
    model, tok, ctx = pool.get(system.model, system.adapter)
    print(f"arm {system.name}{' (adapter ' + system.adapter + ')' if system.adapter else ''}: {len(items)} dev "
          f"questions, BM25 top 3 over {len(docs)} NumPy {CURRENT_VERSION} documents, contrast {args.contrast}; "
          f"{torch.get_num_threads()} torch threads; model loaded in {pool.load_s:.1f} s", flush=True)
    settings = [("plain, one by one", 0, 1, False, False)]
    settings += [(f"prompt lookup {k}, one by one", k, 1, False, False) for k in lookups]
    settings += [("plain, batches of 8", 0, 8, False, False)]
    if args.static_cache:
        settings.append(("plain, static cache, one by one", 0, 1, True, False))
    if args.compile:
        settings.append(("plain, static cache + torch.compile, one by one", 0, 1, True, True))

    if args.short_prompt:
        with torch.no_grad():
            return compare_prompts(model, tok, items, hits, system)
    results = {}
    with ctx, torch.no_grad():
        run(model, tok, chats[:1], system.replace(max_new_tokens=4), 0)  # warm-up: first-call allocations out
        for name, lookup, batch_size, static, compiled in settings:
            gens, wall, drafts = run(model, tok, chats, system, lookup, batch_size, static, compiled)
            results[name] = (gens, wall, drafts)
            print(f"  {name}: {len(gens) / wall:.3f} answers/s ({wall:.1f} s)", flush=True)

    replay_raft_targets(tok, lookups)
    flops, bandwidth = matmul_flops(), copy_bandwidth()
    per_token, per_step = model_costs(model)
    plain = [g.text for g in results["plain, one by one"][0]]
    print(f"\n{'setting':<52}{'answers/s':>10}{'prefill tok/s':>14}{'ms/pass':>9}{'new tok':>8}{'proposed':>9}"
          f"{'accepted':>9}{'accept':>8}{'same text':>10}")
    for name, (gens, wall, drafts) in results.items():
        # a batched answer carries its batch's timings: each row counts 1/batch_size of them
        prefill = sum(g.n_prompt_tokens for g in gens) / sum(g.ttft_s / g.batch_size for g in gens)
        if drafts.passes:  # prompt lookup: one forward pass per draft checked, the first one the prefill
            passes = drafts.passes - len(gens)
        else:  # one pass per token after the first; a batch takes as many as its longest answer (not counted here)
            passes = sum(g.n_new_tokens - 1 for g in gens) if gens[0].batch_size == 1 else float("nan")
        decode_s = sum(g.total_s - g.ttft_s for g in gens)
        ms_pass = 1000 * decode_s / passes if passes else float("nan")
        same = sum(a == g.text for a, g in zip(plain, gens, strict=True))
        accept = drafts.accepted / drafts.proposed if drafts.proposed else float("nan")
        print(f"{name:<52}{len(gens) / wall:>10.3f}{prefill:>14.0f}{ms_pass:>9.1f}"
              f"{sum(g.n_new_tokens for g in gens) / len(gens):>8.1f}{drafts.proposed:>9}{drafts.accepted:>9}"
              f"{accept:>8.2f}{same:>7}/{len(gens)}")

    gens, wall, _ = results["plain, one by one"]
    prefill = sum(g.n_prompt_tokens for g in gens) / sum(g.ttft_s for g in gens)
    step_s = sum(g.total_s - g.ttft_s for g in gens) / max(sum(g.n_new_tokens - 1 for g in gens), 1)
    prefill_limit, step_limit = flops / per_token, per_step / bandwidth
    share = sum(g.ttft_s for g in gens) / sum(g.total_s for g in gens)
    print(f"\nthis machine: {flops / 1e9:.1f} GFLOP/s (2048^2 fp32 matmul), {bandwidth / 1e9:.1f} GB/s (512 MB copy); "
          f"the model: {per_token / 1e9:.2f} GFLOP per prompt token, {per_step / 1e6:.0f} MB read per decode step")
    print(f"distance to the limit (plain, one by one): prefill {prefill:.0f} tokens/s vs {prefill_limit:.0f} at the "
          f"matmul rate ({prefill / prefill_limit:.0%}); decode {1000 * step_s:.1f} ms/step vs {1000 * step_limit:.1f} "
          f"ms to read the weights once ({step_limit / step_s:.0%}); prefill is {share:.0%} of the generation time")
    base_aps = len(gens) / wall
    b8 = results["plain, batches of 8"]
    for name, (g, w, _) in results.items():
        if name != "plain, one by one":
            print(f"{name} to plain one by one, answers/s: {len(g) / w / base_aps:.2f}")
    for k in lookups:
        g, w, _ = results[f"prompt lookup {k}, one by one"]
        print(f"prompt lookup {k} one by one to plain batches of 8, answers/s: "
              f"{len(g) / w / (len(b8[0]) / b8[1]):.2f}")


if __name__ == "__main__":
    main()
