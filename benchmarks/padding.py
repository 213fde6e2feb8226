"""How much of a training step is padding, with and without `TrainSettings.group_by_length`? Counts, without training,
the padded and real token positions of the batches `finetune.batch_indices` would form for the house-style pairs
(notebook 04's run: batch 4, max_length 256) and for the same pairs' prompts with three 300-character passages in
front (a stand-in for RAFT prompts: batch 2, max_length 768). Padding is computed by the forward and backward pass
but carries no loss, so the share saved is roughly the share of step time saved. Takes a few seconds.

    .venv/bin/python benchmarks/padding.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from transformers import AutoTokenizer  # noqa: E402

from ragft.data.corpus import load_corpus  # noqa: E402
from ragft.data.datasets import load_train_pairs  # noqa: E402
from ragft.generation.decoding import context_message  # noqa: E402
from ragft.generation.models import DEFAULT_LLM, ensure_converted  # noqa: E402
from ragft.retrieval.index import Hit  # noqa: E402
from ragft.training import finetune  # noqa: E402


def padding_share(lengths: list[int], steps: int, batch_size: int, grouped: bool) -> float:
    padded = real = 0
    for step in range(steps):
        idx = finetune.batch_indices(len(lengths), step, 0, batch_size, 1, seed=0,
                                     lengths=tuple(lengths) if grouped else None)
        padded += max(lengths[i] for i in idx) * len(idx)
        real += sum(lengths[i] for i in idx)
    return 1 - real / padded


def main() -> None:
    tok = AutoTokenizer.from_pretrained(ensure_converted(DEFAULT_LLM))
    pairs, _ = load_train_pairs()
    docs = load_corpus("2.4.6")
    with_passages = [{**p, "prompt": context_message(p["prompt"], [
        Hit(d.doc_id, d.doc_id, 0.0, d.text, 0, {}) for d in docs[(7 * k) % len(docs):][:3]], 300)}
        for k, p in enumerate(pairs)]
    for name, data, batch_size, max_length in (("house-style pairs", pairs, 4, 256),
                                               ("with 3 passages (RAFT-like)", with_passages, 2, 768)):
        encoded, _ = finetune.encode_pairs(tok, data, max_length)
        lengths = [len(ids) for ids, _ in encoded]
        plain, grouped = (padding_share(lengths, 60, batch_size, g) for g in (False, True))
        print(f"{name}: {len(lengths)} examples, batch {batch_size}, 60 steps: padding {plain:.1%} of positions, "
              f"{grouped:.1%} grouped by length")


if __name__ == "__main__":
    main()
