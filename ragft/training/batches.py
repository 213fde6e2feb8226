"""Training pairs into batches: reading and hashing pairs, the hash-chosen hold-out, encoding a pair in the chat
template (loss on the completion only), padding a batch, and which examples each step uses (a function of the step
alone, so a resumed run and a run split over several processes see the same global batches).

It does not train (see `loop.py`) or build pairs (see `pairs.py`).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass

from ..core.cache import seeded_key
from ..data.datasets import load_train_pairs
from ..generation.decoding import chat_messages, encode_chat


def load_pairs(path: str | os.PathLike | None = None, on_error: str = "raise") -> tuple[list[dict], object]:
    """Training pairs and the read report: the house-style set by default, or a user's JSONL of prompt/completion rows.

    on_error="raise" stops on the first file with bad lines (every line number listed); "skip" keeps the good rows.
    """
    return load_train_pairs(path, on_error=on_error)


def data_hash(pairs: Sequence[dict]) -> str:
    """sha256 of the prompt/completion texts, in order (other keys do not change training)."""
    h = hashlib.sha256()
    for p in pairs:
        h.update(json.dumps([p["prompt"], p["completion"]], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def split_pairs(pairs: Sequence[dict], n_eval: int = 32, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train, held_out): a deterministic hold-out of n_eval pairs, chosen by hashing, so adding pairs does not reshuffle.
    No hold-out when it would take more than half the pairs."""
    key = lambda p: seeded_key(seed, p["prompt"])  # noqa: E731
    held = {id(p) for p in sorted(pairs, key=key)[:n_eval]} if 2 * n_eval <= len(pairs) else set()
    return [p for p in pairs if id(p) not in held], [p for p in pairs if id(p) in held]


@dataclass
class EncodeStats:
    n: int = 0
    n_truncated: int = 0  # cut to max_length (the completion's tail is lost)
    n_dropped: int = 0  # the prompt alone filled max_length: no completion token left to learn from


def encode_pair(tok, prompt: str, completion: str, max_length: int) -> tuple[list[int], list[int], bool]:
    """(input_ids, labels, truncated) for one pair in the chat template: user = prompt, assistant = completion.

    No system prompt is given (the template's own default line stays, exactly as `generation.generate` sees it at
    inference). Labels are -100 on the prompt, so the loss covers only the completion and its end-of-turn token.
    """
    prompt_ids = encode_chat(tok, chat_messages(prompt))[0].tolist()
    completion_ids = tok(completion.strip() + tok.eos_token, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + completion_ids
    labels = [-100] * len(prompt_ids) + completion_ids
    truncated = len(ids) > max_length
    return ids[:max_length], labels[:max_length], truncated


def encode_pairs(tok, pairs: Sequence[dict], max_length: int) -> tuple[list[tuple[list[int], list[int]]], EncodeStats]:
    """Encode every pair; truncated ones are counted, ones with no completion token left are dropped and counted."""
    out, stats = [], EncodeStats()
    for p in pairs:
        ids, labels, truncated = encode_pair(tok, p["prompt"], p["completion"], max_length)
        if all(x == -100 for x in labels):
            stats.n_dropped += 1
            continue
        stats.n_truncated += truncated
        out.append((ids, labels))
    stats.n = len(out)
    return out, stats


def collate(examples: Sequence[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad a batch: {"input_ids", "attention_mask", "labels"} tensors, padding masked out of the loss."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, (x, y) in enumerate(examples):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


LENGTH_WINDOW = 16  # batches per window inside which group_by_length sorts examples by length


def batch_indices(n: int, step: int, micro: int, batch_size: int, grad_accumulation: int, seed: int,
                  lengths: tuple[int, ...] | None = None) -> list[int]:
    """Which examples micro-batch `micro` of optimizer step `step` uses: a function of the step alone, so a resumed
    run sees exactly the batches an uninterrupted one would. Each epoch is a fresh seeded permutation; with `lengths`
    (one per example) it is grouped by length (`_grouped_permutation`)."""
    start = (step * grad_accumulation + micro) * batch_size
    out = []
    for pos in range(start, start + batch_size):
        epoch, i = divmod(pos, n)
        order = _permutation(n, seed, epoch) if lengths is None else _grouped_permutation(lengths, seed, epoch, batch_size)
        out.append(order[i])
    return out


@functools.lru_cache(maxsize=8)
def _permutation(n: int, seed: int, epoch: int):
    import torch

    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)).tolist()


@functools.lru_cache(maxsize=8)
def _grouped_permutation(lengths: tuple[int, ...], seed: int, epoch: int, batch_size: int) -> list[int]:
    """The epoch's permutation with each window of LENGTH_WINDOW batches sorted by length, then the window's batches
    in a seeded random order (so steps do not go from short to long). Same examples per epoch, less padding."""
    perm, window = _permutation(len(lengths), seed, epoch), LENGTH_WINDOW * batch_size
    rng = random.Random(seed * 1_000_003 + epoch)
    out = []
    for w in range(0, len(perm), window):
        chunk = sorted(perm[w:w + window], key=lambda i: lengths[i])
        batches = [chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        out += [i for b in batches for i in b]
    return out


def shard(indices: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's contiguous part of a global micro-batch (sizes differ by at most one; every part non-empty when
    len(indices) >= world). One process: the whole batch."""
    base, extra = divmod(len(indices), world)
    start = rank * base + min(rank, extra)
    return list(indices[start:start + base + (rank < extra)])


def completion_tokens(labels: Sequence[int]) -> int:
    """Tokens one example adds to the loss: labels other than -100 after the first (the model predicts token i+1)."""
    return sum(x != -100 for x in labels[1:])
