"""Does a short LoRA run on the task pairs teach SmolLM2-135M to read the passage it is given? Correct before vs after,
on dev QA questions with the gold passage in the prompt, greedy, no repetition penalty. Prints the measured numbers and
a paired verdict; asserts nothing (one run on a shared CPU is a measurement, not a test).

Training data: data/train/task_pairs.jsonl in its with-passages form: the gold passage plus 1-2 BM25 distractors from
the NumPy 2.4.6 docs (never a document a QA item asks about), in `context_message`'s layout, no system prompt; the
abstention pairs get distractors only. Changed-parameter pairs and questions show both versions' passages, each
headed by its version. Recipe: LoRA r 16, alpha 32, lr 1e-3 (the top of the published SmolLM2 range), plain LoRA.
The defaults are sized for a shared 2-core CPU (one distractor, 250-character passages, 48 steps of 2 examples of at
most 384 tokens, 24 questions); on a free machine try --steps 80 --batch-size 4 --distractors 2. Run (about 10 minutes
on 2 busy cores):

    .venv/bin/python benchmarks/reading.py
    .venv/bin/python benchmarks/reading.py --steps 2 --n-dev 4   # smoke: checks the script end to end

Measured once with the defaults (2026-12-01, 2 cores shared with other jobs, load ~6): training 972 s (19 s/step),
loss 2.09 -> 0.48; correct 11/24 before, 13/24 after (+0.08, paired bootstrap 95% [-0.12, +0.33], McNemar 5 fixed /
3 broken, p = 0.73): not separable at this n. Added names 3 -> 5 of 5; removed names 2 -> 2 of 7 (the tuned model
repeats the removed name: the task pairs hold only 14 replacement questions); abstention 0 -> 0 of 3.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ragft import generation  # noqa: E402
from ragft.builders import leaks  # noqa: E402
from ragft.builders import pairs as pair_builder  # noqa: E402
from ragft.core.paths import CURRENT_VERSION, OLD_VERSION  # noqa: E402
from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import load_qa  # noqa: E402
from ragft.evaluation import stats  # noqa: E402
from ragft.evaluation.scoring import score_answer  # noqa: E402
from ragft.generation.decoding import context_message  # noqa: E402
from ragft.retrieval.index import Hit  # noqa: E402
from ragft.retrieval.retrievers import build_retriever  # noqa: E402
from ragft.training import adapters, finetune  # noqa: E402

DEV_PLAN = {"removed": 7, "added": 5, "unchanged": 6, "changed_param": 3, "unanswerable": 3}  # 24 questions


def _unit(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16) / 16**12


def _hit(doc_id: str, text: str, version: str | None = None) -> Hit:
    head = f"NumPy {version}:\n" if version else ""
    return Hit(doc_id, doc_id, 0.0, head + text, 0, {})


def distractors(bm25, question: str, exclude: set[str], banned: set[str], n: int) -> list[Hit]:
    """The best BM25 chunks for the question from documents that are neither gold nor asked about by any QA item."""
    out, seen = [], set()
    for h in bm25.search(question, top_k=n + 12):
        if h.doc_id in exclude or h.doc_id in seen or leaks.doc_name(h.doc_id) in banned:
            continue
        seen.add(h.doc_id)
        out.append(h)
        if len(out) == n:
            break
    return out


def arrange(gold: list[Hit], others: list[Hit], key: str) -> list[Hit]:
    """Gold passages at a hash-chosen place among the distractors (a model must not learn "the answer is passage 1")."""
    hits = list(others)
    for g in gold:
        hits.insert(int(_unit("pos:" + key + g.doc_id) * (len(hits) + 1)), g)
    return hits


def with_passages(pairs: list[dict], bm25, banned: set[str], passage_chars: int, max_distractors: int = 2) -> list[dict]:
    """Task pairs -> (prompt with passages, completion) pairs: the gold passage and 1..max_distractors distractors."""
    out = []
    for p in pairs:
        if p["kind"] == "unanswerable":
            hits = distractors(bm25, p["prompt"], set(), banned, max_distractors)
        elif p["kind"] == "changed_param":
            hits = [_hit(p["doc_id"], p["old_passage"], p["old_version"]), _hit(p["doc_id"], p["passage"], p["version"])]
        else:
            n = 1 + int(_unit("n:" + p["id"]) * max_distractors)
            exclude = {p["doc_id"], "numpy." + p["facts"][0].removeprefix("np.")} if p["facts"] else {p["doc_id"]}
            hits = arrange([_hit(p["doc_id"], p["passage"])], distractors(bm25, p["prompt"], exclude, banned, n), p["id"])
        out.append({"prompt": context_message(p["prompt"], hits, passage_chars), "completion": p["completion"],
                    "kind": p["kind"]})
    return out


def dev_items(plan: dict[str, int]) -> list:
    """A fixed, hash-ordered sample of dev questions per kind (only those with a gold document in 2.4.6, if answerable)."""
    items = []
    for kind, n in plan.items():
        pool = [it for it in load_qa(split="dev", kinds=(kind,)) if kind == "unanswerable" or it.gold(CURRENT_VERSION)]
        items += sorted(pool, key=lambda it: _unit("dev:" + it.id))[:n]
    return items


def dev_prompt(item, docs: dict[str, dict], bm25, banned: set[str], passage_chars: int) -> str:
    if item.kind == "unanswerable":
        hits = distractors(bm25, item.question, set(), set(), 2)
    elif item.kind == "changed_param":
        hits = [_hit(d, docs[v][d].text, v) for v in (OLD_VERSION, CURRENT_VERSION) for d in sorted(item.gold(v))
                if d in docs[v]]
    else:
        gold = [_hit(d, docs[CURRENT_VERSION][d].text) for d in sorted(item.gold(CURRENT_VERSION))]
        hits = arrange(gold, distractors(bm25, item.question, item.gold(CURRENT_VERSION), set(), 1), item.id)
    return context_message(item.question, hits, passage_chars)


def answer_all(model, tok, prompts: list[str], max_new_tokens: int) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    gens = generation.generate_batch(model, tok, [generation.chat_messages(p) for p in prompts],
                                     max_new_tokens=max_new_tokens, batch_size=8, repetition_penalty=1.0)
    return [g.text for g in gens], time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--passage-chars", type=int, default=250)
    ap.add_argument("--distractors", type=int, default=1, help="at most this many BM25 distractors per training pair")
    ap.add_argument("--max-new-tokens", type=int, default=40)
    ap.add_argument("--n-dev", type=int, default=None, help="cap the dev questions (default: all 24 of the plan)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    qa_rows = leaks.load_qa_rows()
    banned = leaks.qa_asked_names(qa_rows)
    docs = {v: {d.doc_id: d for d in load_corpus(v)} for v in (OLD_VERSION, CURRENT_VERSION)}
    bm25 = build_retriever(list(docs[CURRENT_VERSION].values()), mode="bm25", show_progress=False)
    task = leaks.load_qa_rows(pair_builder.default_path())  # one JSON object per line, like the QA file
    train_pairs = with_passages(task, bm25, banned, args.passage_chars, args.distractors)
    items = dev_items(DEV_PLAN)[: args.n_dev] if args.n_dev else dev_items(DEV_PLAN)
    prompts = [dev_prompt(it, docs, bm25, banned, args.passage_chars) for it in items]
    print(f"[data] {len(train_pairs)} training pairs {dict(Counter(p['kind'] for p in train_pairs))}; "
          f"{len(items)} dev questions {dict(Counter(it.kind for it in items))}; {time.perf_counter() - t_start:.0f} s")

    lora = finetune.LoraSettings(lora_r=16, lora_alpha=32)
    train = finetune.TrainSettings(steps=args.steps, lr=args.lr, batch_size=args.batch_size, max_length=args.max_length,
                                   held_out=0, eval_every=0, checkpoint_every=0, quantization="none")
    t0 = time.perf_counter()
    path = finetune.train_or_load_adapter(train_pairs, lora, train, show_progress=False)
    train_s = time.perf_counter() - t0
    log = finetune.read_training_log(path)
    losses = log.get("losses") or [float("nan")]
    tail = losses[-10:]
    print(f"[train] {args.steps} steps, lr {args.lr:g}, batch {args.batch_size}, max_length {args.max_length}: "
          f"{train_s:.0f} s ({log.get('seconds_per_step', float('nan')):.1f} s/step, {log.get('n_truncated')} of "
          f"{log.get('n_examples')} examples truncated); loss {losses[0]:.3f} -> {sum(tail) / len(tail):.3f} "
          f"(mean of the last {len(tail)} steps); {path}")

    model, tok = adapters.load_tuned(path)
    with adapters.adapter_off(model):
        before, before_s = answer_all(model, tok, prompts, args.max_new_tokens)
    after, after_s = answer_all(model, tok, prompts, args.max_new_tokens)
    rb = [score_answer(it, a)["correct"] for it, a in zip(items, before, strict=True)]
    ra = [score_answer(it, a)["correct"] for it, a in zip(items, after, strict=True)]
    print(f"[answer] before {before_s:.0f} s, after {after_s:.0f} s ({len(items)} questions each, greedy, "
          f"repetition_penalty 1.0, {args.max_new_tokens} new tokens)")

    print(f"\n{'kind':14s} {'n':>3s} {'before':>7s} {'after':>6s}")
    for kind in DEV_PLAN:
        idx = [i for i, it in enumerate(items) if it.kind == kind]
        if idx:
            print(f"{kind:14s} {len(idx):3d} {sum(rb[i] for i in idx):7d} {sum(ra[i] for i in idx):6d}")
    n = len(items)
    pb, lb, hb = stats.proportion_ci(rb)
    pa, la, ha = stats.proportion_ci(ra)
    c = stats.compare(ra, rb)
    print(f"{'all':14s} {n:3d} {sum(rb):7d} {sum(ra):6d}")
    print(f"\ncorrect before {pb:.2f} [{lb:.2f}, {hb:.2f}], after {pa:.2f} [{la:.2f}, {ha:.2f}] (Wilson 95%)")
    print(f"after - before {c.diff:+.2f}, paired bootstrap 95% [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]; McNemar: "
          f"{c.n10} fixed, {c.n01} broken, exact p = {c.p_mcnemar:.3g}; claim 'training improves reading': {c.verdict}")
    changed = [(it.id, b, a) for it, b, a in zip(items, before, after, strict=True)][:3]
    for qid, b, a in changed:
        print(f"\n{qid}\n  before: {b[:150]!r}\n  after:  {a[:150]!r}")
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
