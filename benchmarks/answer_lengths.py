"""How long is a house answer, in SmolLM2 tokens? Measures the token lengths of the house-style training completions
(data/train/house_style.jsonl) and of the dev QA references rendered in the house format, and prints the percentiles
the default `max_new_tokens` is chosen from (profiles.py). Also prints the passage sizes a RAG prompt carries (the
retrieved chunks, before and after `generation.cut_passage`). Asserts nothing; takes a few seconds.

    .venv/bin/python benchmarks/answer_lengths.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoTokenizer  # noqa: E402

from ragft.core import house  # noqa: E402
from ragft.data.datasets import load_qa, load_train_pairs  # noqa: E402
from ragft.generation.decoding import cut_passage  # noqa: E402
from ragft.generation.models import DEFAULT_LLM, ensure_converted  # noqa: E402


def percentiles(values) -> str:
    v = np.asarray(values)
    return (f"n {len(v)}  median {np.median(v):.0f}  p90 {np.percentile(v, 90):.0f}  p95 {np.percentile(v, 95):.0f}  "
            f"p99 {np.percentile(v, 99):.0f}  max {v.max():.0f}")


def main() -> None:
    tok = AutoTokenizer.from_pretrained(ensure_converted(DEFAULT_LLM))

    def n(text: str) -> int:
        return len(tok(text, add_special_tokens=False)["input_ids"]) + 1  # + the end-of-turn token

    pairs, _ = load_train_pairs()
    answers = [p["completion"] for p in pairs if p.get("kind") != "abstain"]
    abstains = [p["completion"] for p in pairs if p.get("kind") == "abstain"]
    print(f"house_style answers      : {percentiles([n(a) for a in answers])}")
    print(f"house_style abstentions  : {percentiles([n(a) for a in abstains])}")
    dev = load_qa("dev")
    refs = [house.render(i.reference, "x = np.asarray([1, 2])", sorted(i.gold(i_version) or ["numpy.x"]))
            for i in dev for i_version in ["2.4.6"] if i.answerable]
    print(f"dev references, rendered : {percentiles([n(r) for r in refs])}")
    print(f"abstention reply         : {n(house.ABSTAIN_ANSWER)} tokens")

    from ragft.data.corpus import load_corpus
    from ragft.retrieval.retrievers import build_retriever

    docs = load_corpus("2.4.6")
    golds = {d for i in dev if i.answerable for d in i.gold("2.4.6")}
    sub = [d for d in docs if d.doc_id in golds] + docs[:200]
    bm25 = build_retriever(sub, mode="bm25")
    hits = [h for i in dev[:40] for h in bm25.search(i.question, top_k=3)]
    print(f"retrieved chunks (tokens): {percentiles([n(h.text) for h in hits])}")
    for chars in (600, 300):
        print(f"  cut to {chars} characters : {percentiles([n(cut_passage(h.text, chars)) for h in hits])}")


if __name__ == "__main__":
    main()
