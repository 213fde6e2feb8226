"""What a shorter RAG prompt buys and costs: answers/s against accuracy and reading rate, on the same dev questions.

The issue's first lever for speed is the prompt: prefill is most of an answer's time. This grid shortens the two parts
of the RAG arm's prompt that can shrink, on the same 40 dev questions and the same retrieved passages (BM25 top 3 over a
300-document NumPy 2.4.6 subset, as benchmarks/generation.py): each passage cut to --passage-chars characters (the
arms use 300), with the house system prompt (`generation.RAG_SYSTEM_PROMPT`, ~126 tokens) or none. SmolLM2-135M fp32,
greedy, batch 8, the arms' decoding (`generation.DECODING`), no answer cache. Per setting: mean prompt tokens, answers/s,
accuracy, answerable accuracy, reading rate (correct when a gold document was among the passages), format compliance
and groundedness (`evaluation.summarize_arms`). Asserts nothing: one run on a shared CPU is a measurement; with 40
questions a difference under ~0.15 in accuracy is within noise (see the paired intervals of notebook 05).

    .venv/bin/python benchmarks/prompt_size.py                              # house/none x 300/200/120 characters
    .venv/bin/python benchmarks/prompt_size.py --prompts house --passage-chars 300,150
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pandas as pd  # noqa: E402

from ragft import (
    evaluation,  # noqa: E402
    systems,  # noqa: E402
)
from ragft.core.paths import CURRENT_VERSION  # noqa: E402
from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import load_qa, sample, subset_corpus  # noqa: E402
from ragft.retrieval.retrievers import build_retriever  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-questions", type=int, default=40)
    ap.add_argument("--prompts", default="house,none", help="system prompts to try: house, none (comma-separated)")
    ap.add_argument("--passage-chars", default="300,200,120", help="passage lengths in characters (comma-separated)")
    args = ap.parse_args()

    items = sample(load_qa("dev"), args.n_questions)
    docs = subset_corpus(load_corpus(CURRENT_VERSION), items, CURRENT_VERSION, 300)
    bm25 = build_retriever(docs, mode="bm25")
    rag = systems.System("rag", retriever=bm25, retriever_label="bm25", top_k=3, passage_chars=300)
    pool = systems.ModelPool()
    systems.compare(items[:2], [rag.replace(max_new_tokens=4)], pool=pool, cache=False, show_progress=False)  # warm-up
    print(f"{len(items)} dev questions, BM25 top 3 over {len(docs)} NumPy {CURRENT_VERSION} documents, batch 8")

    rows = []
    for prompt in args.prompts.split(","):
        for chars in map(int, args.passage_chars.split(",")):
            system = rag.replace(name=f"{prompt} system prompt, {chars}-char passages", prompt=prompt,
                                 passage_chars=chars)
            t0 = time.perf_counter()
            df = systems.compare(items, [system], pool=pool, cache=False, show_progress=False)
            wall = time.perf_counter() - t0
            m = evaluation.summarize_arms(df, metrics=evaluation.ARMS_TABLE).iloc[0]
            rows.append({"setting": system.name, "prompt tokens": df.prompt_tokens.mean(),
                         "new tokens": df.new_tokens.mean(), "answers/s": len(items) / wall,
                         "accuracy": m.accuracy, "answerable": m.answerable_accuracy, "reading rate": m.reading_rate,
                         "format": m.format_compliance, "groundedness": m.groundedness})
            print(f"  {system.name}: {rows[-1]['answers/s']:.3f} answers/s, accuracy {m.accuracy:.3f}", flush=True)
    pd.set_option("display.width", 200)
    print(pd.DataFrame(rows).set_index("setting").round(3).to_string())


if __name__ == "__main__":
    main()
