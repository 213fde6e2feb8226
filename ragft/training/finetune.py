"""QLoRA fine-tuning for behaviour: LoRA adapters on a 4-bit (NF4) base, trained on (prompt -> house answer) pairs,
with resumable checkpoints, an adapter cache keyed by (base model, data, settings), and saving, loading, switching and
merging adapters.

It teaches a model the house FORMAT and the abstention protocol without a system prompt; it does not teach it facts
you can rely on (that is retrieval's job, see `index.py`), and it does not score answers (see `evaluation.py`).
It does not choose or load the quantized base (see `quantization.py`) or measure model memory (see `memory.py`).
On CPU, 4-bit saves memory, not time: train in 4-bit, then generate on the full-precision base with the adapter on top.
Introduced in notebooks/04_qlora_finetuning.ipynb.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..core.cache import locked, seeded_key
from ..core.io import DataError, atomic_path
from ..core.paths import cache_dir
from ..data.datasets import load_train_pairs
from ..generation.decoding import chat_messages, encode_chat
from ..generation.models import DEFAULT_LLM, spec
from .adapters import COMPLETE, FORMAT_VERSION, adapter_info, save_adapter
from .memory import PeakRSS, dir_mb
from .quantization import (
    dequantized_copy,
    device,
    disarm_cpu_bf16_repack,
    effective_quantization,
    load_base,
    resolve_dtype,
)

# torch, peft, safetensors and bitsandbytes are imported inside the functions that need them: the CLI imports this
# module (through `adapters`) and must start without loading them.

TRAINING_LOG = "training.json"
DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# --- settings ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter: rank `lora_r`, scale `lora_alpha / lora_r`, dropout, and which linear layers get one."""

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES

    def __post_init__(self):
        if self.lora_r < 1:
            raise ValueError(f"lora_r must be >= 1, not {self.lora_r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.lora_r, lora_alpha=self.lora_alpha, lora_dropout=self.lora_dropout,
                          target_modules=list(self.target_modules), bias="none", task_type="CAUSAL_LM")


@dataclass(frozen=True)
class TrainSettings:
    """One training run. The learning rate is constant, so a longer run continues a shorter one exactly (see the cache).

    quantization: "auto" | "4bit" | "8bit" | "none" (see `quantization.resolve_quantization`); compute_dtype: "auto"
    (bf16 on CUDA, fp32 on CPU, where bf16 costs ~2% gradient error for ~10% speed) | "float32" | "bfloat16";
    optimizer: "auto" (paged AdamW on CUDA, torch AdamW on CPU) | "adamw" | "paged_adamw".
    """

    steps: int = 60
    lr: float = 2e-3  # high for LoRA on big models, right for a 135M one: 60 steps at 3e-4 reached 22% format compliance
    batch_size: int = 4
    grad_accumulation: int = 1
    max_length: int = 256  # tokens of prompt + completion; longer examples are truncated (and counted)
    eval_every: int = 20  # steps between held-out evaluations; 0 = only at the end
    checkpoint_every: int = 20  # steps between checkpoints (adapter + optimizer + step); 0 = only at the end
    held_out: int = 32  # pairs kept out of training (chosen by hash) to measure the eval loss; 0 = train on all
    seed: int = 0
    quantization: str = "auto"
    compute_dtype: str = "auto"
    optimizer: str = "auto"
    gradient_checkpointing: bool = False  # saves activation memory, costs ~25% time; not needed for a 135M model
    max_grad_norm: float = 1.0
    # Batch examples of similar length (sorted within windows of LENGTH_WINDOW batches of the shuffled order, batch
    # order shuffled again): less padding computed per step. Changes which examples share a step, so it is a setting.
    group_by_length: bool = False

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accumulation", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.quantization not in ("auto", "4bit", "8bit", "none"):
            raise ValueError(f"quantization must be 'auto', '4bit', '8bit' or 'none', not {self.quantization!r}")
        if self.compute_dtype not in ("auto", "float32", "bfloat16"):
            raise ValueError(f"compute_dtype must be 'auto', 'float32' or 'bfloat16', not {self.compute_dtype!r}")
        if self.optimizer not in ("auto", "adamw", "paged_adamw"):
            raise ValueError(f"optimizer must be 'auto', 'adamw' or 'paged_adamw', not {self.optimizer!r}")


def add_lora(model, lora: LoraSettings, seed: int = 0):
    """Wrap `model` with a fresh LoRA adapter (B = 0, so it starts as the base model). Seeds the A initialisation."""
    import torch
    from peft import get_peft_model

    torch.manual_seed(seed)
    return get_peft_model(model, lora.peft_config())


def dequantized_reference(peft_model4, lora: LoraSettings):
    """The gradient-check reference: `quantization.dequantized_copy` of a 4-bit LoRA model, the SAME LoRA weights on top.

    Training both on one batch must give equal LoRA gradients (fp32 compute); see tests/test_finetune.py.
    """
    import torch

    ref = add_lora(dequantized_copy(peft_model4), lora)
    weights = {n: p for n, p in peft_model4.named_parameters() if "lora_" in n}
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if "lora_" in n:
                p.copy_(weights[n].to(p.device))
    return ref


# --- data -------------------------------------------------------------------------------------------------------------
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


# --- training ---------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a run did: per-step loss and time, held-out loss at eval points, peak memory. JSON-able via `asdict`."""

    steps: int = 0
    losses: list[float] = field(default_factory=list)  # per optimizer step, mean token loss on completions
    eval_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, held-out loss); step 0 = before training
    step_times: list[float] = field(default_factory=list)  # seconds per optimizer step
    step_tokens: list[int] = field(default_factory=list)  # tokens per optimizer step, padding excluded
    step_padded: list[int] = field(default_factory=list)  # tokens per optimizer step, padding included
    resumed_from: int = 0
    wall_s: float = 0.0  # this call only (a resumed run adds to the earlier calls' time, see `total_train_s`)
    total_train_s: float = 0.0  # sum of step times across every call that built this adapter
    rss_before_mb: float = float("nan")  # resident memory of the process when training started (model loaded)
    peak_rss_mb: float = float("nan")  # resident host memory of the whole process, sampled during training
    peak_gpu_mb: float | None = None  # torch.cuda.max_memory_allocated during training; None on CPU
    n_examples: int = 0
    n_truncated: int = 0
    n_dropped: int = 0
    trainable_params: int = 0
    reason: str = ""

    @property
    def seconds_per_step(self) -> float:
        """Median step time, leaving out the first step of this call (it pays for warm-up)."""
        times = sorted(self.step_times[1:] or self.step_times)
        return times[len(times) // 2] if times else float("nan")

    @property
    def tokens_per_s(self) -> float:
        """Training throughput: tokens (padding excluded) per second of the steps that counted them, first one left out."""
        n = len(self.step_tokens)  # a run resumed from an older checkpoint counted tokens only for its last n steps
        steps = list(zip(self.step_tokens, self.step_times[-n:] if n else [], strict=True))
        steps = steps[1:] or steps
        seconds = sum(t for _, t in steps)
        return sum(k for k, _ in steps) / seconds if seconds > 0 else float("nan")

    @property
    def padding_share(self) -> float:
        """Share of the positions the model computed that were padding (what grouping by length would save)."""
        padded = sum(self.step_padded)
        return 1 - sum(self.step_tokens) / padded if padded else float("nan")


def make_optimizer(model, train: TrainSettings):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    kind = train.optimizer if train.optimizer != "auto" else ("paged_adamw" if device() == "cuda" else "adamw")
    if kind == "paged_adamw":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW32bit(params, lr=train.lr)
    return torch.optim.AdamW(params, lr=train.lr)


def eval_loss(model, tok, encoded: Sequence[tuple[list[int], list[int]]], batch_size: int = 8) -> float:
    """Mean token loss on the completions of held-out examples (no gradients; dropout off)."""
    import torch

    if not encoded:
        return float("nan")
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = {k: v.to(model.device) for k, v in collate(encoded[i: i + batch_size], tok.pad_token_id).items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    model.train(was_training)
    return total / count


def train_adapter(model, tok, pairs: Sequence[dict], train: TrainSettings, eval_pairs: Sequence[dict] | None = None,
                  checkpoint_dir: str | os.PathLike | None = None, run_key: str = "", show_progress: bool = True,
                  callback: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train the LoRA adapter of a peft `model` on prompt/completion pairs; return the log.

    Every `checkpoint_every` steps (and at the end, and on KeyboardInterrupt) the adapter, optimizer, step and RNG state
    go atomically to `checkpoint_dir/latest`; a later call with the same `run_key` resumes from there. `callback(step,
    loss)` runs after each step (raise from it to stop).
    """
    import torch

    if not pairs:
        raise DataError("empty training set: give at least one prompt/completion pair")
    if train.batch_size * train.grad_accumulation > len(pairs) * 1000:
        raise ValueError("batch larger than 1000 epochs of the data: check batch_size")
    disarm_cpu_bf16_repack(model)  # cheap and idempotent: also protects a model built elsewhere
    encoded, stats = encode_pairs(tok, pairs, train.max_length)
    lengths = tuple(len(ids) for ids, _ in encoded) if train.group_by_length else None
    if not encoded:
        raise DataError(f"every training pair was longer than max_length={train.max_length} in its prompt alone")
    held, _ = encode_pairs(tok, eval_pairs or [], train.max_length)
    optimizer = make_optimizer(model, train)
    result = TrainResult(n_examples=stats.n, n_truncated=stats.n_truncated, n_dropped=stats.n_dropped,
                         trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    start = 0
    ckpt = Path(checkpoint_dir) / "latest" if checkpoint_dir else None
    if ckpt is not None and (ckpt / COMPLETE).exists():
        start = _load_checkpoint(model, optimizer, ckpt, run_key, result, max_step=train.steps)
    if start == 0:
        torch.manual_seed(train.seed)
        random.seed(train.seed)
    result.resumed_from = start
    if start == 0 and held:
        result.eval_losses.append((0, eval_loss(model, tok, held)))
    model.train()
    bar = tqdm(total=train.steps, initial=start, desc="training", disable=not show_progress, leave=True)
    on_gpu = torch.cuda.is_available() and model.device.type == "cuda"
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    t_call = time.perf_counter()
    step, in_update = start, False
    try:
        with PeakRSS() as rss:
            for step in range(start, train.steps):
                t0 = time.perf_counter()
                total, n_tokens, n_padded = 0.0, 0, 0
                in_update = True
                for micro in range(train.grad_accumulation):
                    idx = batch_indices(len(encoded), step, micro, train.batch_size, train.grad_accumulation, train.seed,
                                        lengths)
                    batch = {k: v.to(model.device) for k, v in collate([encoded[i] for i in idx], tok.pad_token_id).items()}
                    n_tokens += int(batch["attention_mask"].sum())
                    n_padded += batch["attention_mask"].numel()
                    loss = model(**batch).loss / train.grad_accumulation
                    loss.backward()
                    total += loss.detach().item()
                if train.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], train.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                in_update = False
                done = step + 1
                result.losses.append(total)
                result.step_times.append(time.perf_counter() - t0)
                result.step_tokens.append(n_tokens)
                result.step_padded.append(n_padded)
                result.total_train_s += result.step_times[-1]
                result.steps = done
                if held and ((train.eval_every and done % train.eval_every == 0) or done == train.steps):
                    result.eval_losses.append((done, eval_loss(model, tok, held)))
                bar.update(1)
                bar.set_postfix(loss=f"{total:.3f}")
                if ckpt is not None and ((train.checkpoint_every and done % train.checkpoint_every == 0) or done == train.steps):
                    _save_checkpoint(model, optimizer, ckpt, run_key, result)
                if callback is not None:
                    callback(done, total)
    except KeyboardInterrupt:
        if ckpt is not None and not in_update and result.steps > start:
            _save_checkpoint(model, optimizer, ckpt, run_key, result)
            print(f"[ragft] interrupted: checkpoint at step {result.steps} in {ckpt}; run again to resume")
        raise
    finally:
        bar.close()
    result.steps = max(result.steps, start)
    result.wall_s = time.perf_counter() - t_call
    result.peak_rss_mb = rss.peak_mb
    result.rss_before_mb = rss.start_bytes / 1e6
    if on_gpu:
        result.peak_gpu_mb = torch.cuda.max_memory_allocated() / 1e6
    model.eval()
    return result


def _save_checkpoint(model, optimizer, ckpt: Path, run_key: str, result: TrainResult) -> None:
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    with atomic_path(ckpt, is_dir=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()},
                  str(tmp / "adapter.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state(), "python": random.getstate()}, tmp / "rng.pt")
        state = {"run_key": run_key, "step": result.steps, "log": _log_dict(result)}
        (tmp / "state.json").write_text(json.dumps(state))
        (tmp / COMPLETE).write_text("ok")


def _load_checkpoint(model, optimizer, ckpt: Path, run_key: str, result: TrainResult, max_step: int) -> int:
    """Restore a checkpoint if it belongs to this run and is not past `max_step`; return the step to resume from."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    if state["run_key"] != run_key:
        print(f"[ragft] ignoring checkpoint {ckpt}: it belongs to another run (data or settings differ)")
        return 0
    if state["step"] > max_step:
        return 0
    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter.safetensors")))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    log = state["log"]
    result.losses, result.step_times = log["losses"], log["step_times"]
    result.step_tokens, result.step_padded = log.get("step_tokens", []), log.get("step_padded", [])
    result.eval_losses = [tuple(x) for x in log["eval_losses"]]
    result.total_train_s = log["total_train_s"]
    result.steps = state["step"]
    return state["step"]


def _log_dict(result: TrainResult) -> dict:
    d = asdict(result)
    d["seconds_per_step"] = result.seconds_per_step
    d["tokens_per_s"] = result.tokens_per_s  # next to s/step: long RAFT prompts make a step slower, not the model
    d["padding_share"] = result.padding_share
    return d


# --- the cache: train once per (base model, data, settings) -----------------------------------------------------------
def run_key(model_name: str, pairs: Sequence[dict], lora: LoraSettings, train: TrainSettings, steps: bool = True) -> str:
    """sha256 naming one training run. With steps=False it names the run's trajectory, shared by every step count
    (the learning rate is constant, so step N of a 60-step run IS the 20-step run when N = 20)."""
    s = asdict(train)
    if not steps:
        s.pop("steps")
    for k in ("eval_every", "checkpoint_every"):  # bookkeeping only: the weights do not depend on them
        s.pop(k)
    if not s.get("group_by_length"):  # off: the key every adapter trained before this setting existed has
        s.pop("group_by_length", None)
    s["compute_dtype"] = str(resolve_dtype(train.compute_dtype))
    s["quantization"] = effective_quantization(train.quantization)
    blob = {"model": model_name, "model_sha256": spec(model_name).sha256, "data": data_hash(pairs), "lora": asdict(lora),
            "train": s, "format": FORMAT_VERSION, "device": device()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def adapter_dir(model_name: str, pairs: Sequence[dict], lora: LoraSettings, train: TrainSettings) -> Path:
    """Where the cache keeps the adapter for these inputs: `<cache>/adapters/<model>-r<lora_r>-s<steps>-<key[:12]>`."""
    key = run_key(model_name, pairs, lora, train)
    return cache_dir("adapters") / f"{model_name}-r{lora.lora_r}-s{train.steps}-{key[:12]}"


def train_or_load_adapter(pairs: Sequence[dict], lora: LoraSettings | None = None, train: TrainSettings | None = None,
                          out_dir: str | os.PathLike | None = None, *, model_name: str = DEFAULT_LLM,
                          reuse: bool = True, show_progress: bool = True, verbose: bool = True) -> Path:
    """The adapter for (base model, pairs, lora, train): from the cache if it exists, else trained (resuming if a run
    was interrupted, continuing a shorter run of the same settings) and saved. Returns its folder.

    `train.held_out` pairs (chosen by hash) are kept out of training and give the eval loss. The folder holds peft's
    files, `ragft_adapter.json` (base model, settings, data hash) and `training.json` (`read_training_log`).
    `out_dir` overrides the cache location; `reuse=False` retrains from scratch.

    >>> path = train_or_load_adapter(pairs, LoraSettings(lora_r=16), TrainSettings(steps=60))  # doctest: +SKIP
    >>> model, tok = load_tuned(path)  # doctest: +SKIP
    """
    lora, train = lora or LoraSettings(), train or TrainSettings()
    if not pairs:
        raise DataError("empty training set: give at least one prompt/completion pair")
    key = run_key(model_name, pairs, lora, train)
    out = Path(out_dir) if out_dir else adapter_dir(model_name, pairs, lora, train)
    # one process trains a given adapter; another asking for it at the same time waits, then finds it in the cache
    with locked(cache_dir("locks") / f"adapter-{key[:24]}.lock"):
        return _train_or_load_adapter(pairs, lora, train, out, key, model_name, reuse, show_progress, verbose)


def _train_or_load_adapter(pairs, lora, train, out: Path, key: str, model_name: str, reuse: bool, show_progress: bool,
                           verbose: bool) -> Path:
    say = print if verbose else (lambda *a, **k: None)
    if reuse and (out / COMPLETE).exists():
        if adapter_info(out).get("run_key") == key:
            say(f"[ragft] adapter found in cache, not retraining: {out}")
            return out
        say(f"[ragft] {out} holds an adapter made from other data or settings: retraining")
    trajectory = cache_dir("checkpoints") / f"{model_name}-{run_key(model_name, pairs, lora, train, steps=False)[:16]}"
    snapshot = trajectory / f"step-{train.steps:06d}"
    if reuse and (snapshot / COMPLETE).exists() and adapter_info(snapshot).get("run_key") == key:
        say(f"[ragft] adapter at step {train.steps} taken from a longer run of the same settings: {snapshot}")
        with atomic_path(out, is_dir=True) as tmp:
            shutil.rmtree(tmp)
            shutil.copytree(snapshot, tmp)
        return out
    if not reuse and trajectory.exists():
        shutil.rmtree(trajectory)
    model, tok, reason = load_base(model_name, train.quantization, train.compute_dtype, train.gradient_checkpointing)
    model = add_lora(model, lora, seed=train.seed)
    say(f"[ragft] training {model_name} with LoRA r={lora.lora_r} for {train.steps} steps: {reason}")
    traj_key = run_key(model_name, pairs, lora, train, steps=False)

    def snapshot_cb(step: int, loss: float) -> None:
        if train.checkpoint_every and step % train.checkpoint_every == 0 and step != train.steps:
            snap_train = replace(train, steps=step)
            meta = _adapter_meta(model_name, pairs, lora, snap_train, reason)
            save_adapter(model, trajectory / f"step-{step:06d}", meta)

    train_pairs, eval_pairs = split_pairs(pairs, train.held_out, seed=train.seed)
    latest = trajectory / "latest" / "state.json"
    if latest.exists() and json.loads(latest.read_text())["step"] > train.steps:
        ckpt_dir = None  # a longer run of these settings is checkpointed here: do not wind it back to this shorter one
    else:
        ckpt_dir = trajectory
    result = train_adapter(model, tok, train_pairs, train, eval_pairs=eval_pairs, checkpoint_dir=ckpt_dir, run_key=traj_key,
                           show_progress=show_progress, callback=snapshot_cb)
    result.reason = reason
    meta = _adapter_meta(model_name, pairs, lora, train, reason)
    save_adapter(model, snapshot, meta)
    for snap in trajectory.glob("step-*"):  # every snapshot on this trajectory gets the log cut at its own step
        s = int(snap.name.removeprefix("step-"))
        if (snap / COMPLETE).exists() and s <= result.steps and (s == train.steps or not (snap / TRAINING_LOG).exists()):
            (snap / TRAINING_LOG).write_text(json.dumps(_log_dict(_cut(result, s)), indent=1))
    with atomic_path(out, is_dir=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(snapshot, tmp)
    say(f"[ragft] saved adapter ({dir_mb(out):.1f} MB) to {out}")
    return out


def _cut(result: TrainResult, step: int) -> TrainResult:
    """The log of a run as it stood after `step` steps."""
    uncounted = len(result.step_times) - len(result.step_tokens)  # steps from before token counting (old checkpoints)
    counted = max(step - uncounted, 0)
    return replace(result, steps=step, losses=result.losses[:step], step_times=result.step_times[:step],
                   step_tokens=result.step_tokens[:counted], step_padded=result.step_padded[:counted],
                   eval_losses=[e for e in result.eval_losses if e[0] <= step], total_train_s=sum(result.step_times[:step]))


def _adapter_meta(model_name, pairs, lora, train, reason) -> dict:
    return {"run_key": run_key(model_name, pairs, lora, train), "data_hash": data_hash(pairs), "n_pairs": len(pairs),
            "lora": asdict(lora), "train": asdict(train), "quantization_reason": reason}


def read_training_log(path: str | os.PathLike) -> dict:
    """The training log saved with an adapter: losses, eval_losses, step_times, seconds_per_step, peak_rss_mb, ..."""
    p = Path(path) / TRAINING_LOG
    if not p.exists():
        raise FileNotFoundError(f"{p}: this adapter was not made by train_or_load_adapter (or its run was interrupted)")
    return json.loads(p.read_text())
