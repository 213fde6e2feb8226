"""The training loop: one LoRA run on `accelerate.Accelerator`, the same loop on one CPU, one GPU or several processes
(DDP, chosen at launch). Each optimizer step takes the same global batch whatever the number of processes (each process
a contiguous part of it, the loss weighted by the global count of completion tokens), so the loss curve does not depend
on the launch. Resumable checkpoints (written by the main process, read by every process) and the step log.

It does not choose settings (see `lora.py`), encode pairs (see `batches.py`) or cache adapters (see `finetune.py`).
Introduced in notebooks/04_qlora_finetuning.ipynb; several processes in docs/distributed.md.
"""
from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..core.io import DataError, atomic_path
from .adapters import COMPLETE
from .batches import batch_indices, collate, completion_tokens, encode_pairs, shard
from .launch import check_launch, make_accelerator, wait_for_checkpoint
from .lora import TrainSettings, make_optimizer
from .memory import PeakRSS
from .quantization import disarm_cpu_bf16_repack

# torch, peft, safetensors and accelerate are imported inside the functions that need them (the CLI starts without).


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


def eval_loss(model, tok, encoded: Sequence[tuple[list[int], list[int]]], batch_size: int = 8, device=None) -> float:
    """Mean token loss on the completions of held-out examples (no gradients; dropout off). Every process computes
    the same number on the whole held-out set."""
    import torch

    if not encoded:
        return float("nan")
    device = device or model.device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(encoded), batch_size):
            batch = {k: v.to(device) for k, v in collate(encoded[i: i + batch_size], tok.pad_token_id).items()}
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    model.train(was_training)
    return total / count


def micro_loss(model, batch: dict, world: int, n_global: int):
    """The loss to backpropagate for this process's part of a micro-batch. One process: the batch's mean token loss,
    as ever. Several: the part's token-loss sum over the global token count, times `world` (DDP averages gradients)."""
    if world == 1:
        return model(**batch).loss
    return model(**batch, num_items_in_batch=n_global).loss * world


def gathered_loss(accelerator, loss, grad_accumulation: int) -> float:
    """This micro-batch's share of the step loss, summed over processes: the global batch's mean token loss."""
    part = loss.detach() / grad_accumulation
    if accelerator.num_processes > 1:
        part = accelerator.reduce(part, reduction="sum") / accelerator.num_processes
    return part.item()


def train_adapter(model, tok, pairs: Sequence[dict], train: TrainSettings, eval_pairs: Sequence[dict] | None = None,
                  checkpoint_dir: str | os.PathLike | None = None, run_key: str = "", show_progress: bool = True,
                  callback: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train the LoRA adapter of a peft `model` on prompt/completion pairs; return the log.

    Every `checkpoint_every` steps (and at the end, and on KeyboardInterrupt) the adapter, optimizer, step and RNG state
    go atomically to `checkpoint_dir/latest`; a later call with the same `run_key` resumes from there. `callback(step,
    loss)` runs after each step, in every process (raise from it to stop). Under `accelerate launch` / `torchrun` each
    process trains on its part of every micro-batch; only the main process writes.
    """
    import torch

    if not pairs:
        raise DataError("empty training set: give at least one prompt/completion pair")
    if train.batch_size * train.grad_accumulation > len(pairs) * 1000:
        raise ValueError("batch larger than 1000 epochs of the data: check batch_size")
    accelerator = make_accelerator(train.grad_accumulation)
    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    check_launch(train.batch_size, world)
    disarm_cpu_bf16_repack(model)  # cheap and idempotent: also protects a model built elsewhere
    encoded, stats = encode_pairs(tok, pairs, train.max_length)
    lengths = tuple(len(ids) for ids, _ in encoded) if train.group_by_length else None
    if not encoded:
        raise DataError(f"every training pair was longer than max_length={train.max_length} in its prompt alone")
    held, _ = encode_pairs(tok, eval_pairs or [], train.max_length)
    dev = model.device
    wrapped, optimizer = accelerator.prepare(model, make_optimizer(model, train))  # DDP when launched on several
    result = TrainResult(n_examples=stats.n, n_truncated=stats.n_truncated, n_dropped=stats.n_dropped,
                         trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad))
    start = 0
    ckpt = Path(checkpoint_dir) / "latest" if checkpoint_dir else None
    if ckpt is not None and (ckpt / COMPLETE).exists():
        start = _load_checkpoint(accelerator, model, optimizer, ckpt, run_key, result, max_step=train.steps)
    if start == 0:
        torch.manual_seed(train.seed)
        random.seed(train.seed)
    result.resumed_from = start
    if start == 0 and held:
        result.eval_losses.append((0, eval_loss(wrapped, tok, held, device=dev)))
    wrapped.train()
    bar = tqdm(total=train.steps, initial=start, desc="training", disable=not (show_progress and main), leave=True)
    on_gpu = torch.cuda.is_available() and dev.type == "cuda"
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
                    parts = [shard(idx, r, world) for r in range(world)]  # the global micro-batch, one part a process
                    n_tokens += sum(len(encoded[i][0]) for i in idx)
                    n_padded += sum(len(p) * max(len(encoded[i][0]) for i in p) for p in parts)
                    batch = {k: v.to(dev) for k, v in collate([encoded[i] for i in parts[rank]], tok.pad_token_id).items()}
                    with accelerator.accumulate(wrapped):  # gradients synchronised on the step's last micro-batch only
                        loss = micro_loss(wrapped, batch, world, sum(completion_tokens(encoded[i][1]) for i in idx))
                        accelerator.backward(loss)  # divides by grad_accumulation
                    total += gathered_loss(accelerator, loss, train.grad_accumulation)
                if train.max_grad_norm:
                    accelerator.clip_grad_norm_(list(wrapped.parameters()), train.max_grad_norm)
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
                    result.eval_losses.append((done, eval_loss(wrapped, tok, held, device=dev)))
                bar.update(1)
                bar.set_postfix(loss=f"{total:.3f}")
                if ckpt is not None and ((train.checkpoint_every and done % train.checkpoint_every == 0) or done == train.steps):
                    _save_checkpoint(accelerator, model, optimizer, ckpt, run_key, result)
                if callback is not None:
                    callback(done, total)
    except KeyboardInterrupt:
        if ckpt is not None and not in_update and result.steps > start:
            if main:  # no collective call here: the other processes may already be gone
                _save_checkpoint(accelerator, model, optimizer, ckpt, run_key, result, gather=False)
                print(f"[ragft] interrupted: checkpoint at step {result.steps} in {ckpt}; run again to resume")
            else:
                wait_for_checkpoint(ckpt, result.steps)  # exit after it: a launcher stops every process on the first exit
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


def _save_checkpoint(accelerator, model, optimizer, ckpt: Path, run_key: str, result: TrainResult,
                     gather: bool = True) -> None:
    """Every process hands its RNG state to the main process (`gather`), which writes the checkpoint atomically."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    rngs = [{"torch": torch.get_rng_state(), "python": random.getstate()}]
    if gather and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        rngs = gather_object(rngs)
    if not accelerator.is_main_process:
        return
    with atomic_path(ckpt, is_dir=True) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(model).items()},
                  str(tmp / "adapter.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(rngs[0], tmp / "rng.pt")
        if len(rngs) > 1:  # one per process, so that each resumes its own dropout stream
            torch.save(rngs, tmp / "rng-ranks.pt")
        state = {"run_key": run_key, "step": result.steps, "log": log_dict(result)}
        (tmp / "state.json").write_text(json.dumps(state))
        (tmp / COMPLETE).write_text("ok")


def _load_checkpoint(accelerator, model, optimizer, ckpt: Path, run_key: str, result: TrainResult, max_step: int) -> int:
    """Restore a checkpoint (in every process) if it belongs to this run and is not past `max_step`; return the step
    to resume from. It may come from a launch with another number of processes: the global batches are the same."""
    import torch
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = json.loads((ckpt / "state.json").read_text())
    if state["run_key"] != run_key:
        accelerator.print(f"[ragft] ignoring checkpoint {ckpt}: it belongs to another run (data or settings differ)")
        return 0
    if state["step"] > max_step:
        return 0
    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter.safetensors")))
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", weights_only=False))
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    ranks = ckpt / "rng-ranks.pt"
    if accelerator.num_processes > 1 and ranks.exists():
        per_rank = torch.load(ranks, weights_only=False)
        rng = per_rank[accelerator.process_index] if len(per_rank) == accelerator.num_processes else rng
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    log = state["log"]
    result.losses, result.step_times = log["losses"], log["step_times"]
    result.step_tokens, result.step_padded = log.get("step_tokens", []), log.get("step_padded", [])
    result.eval_losses = [tuple(x) for x in log["eval_losses"]]
    result.total_train_s = log["total_train_s"]
    result.steps = state["step"]
    return state["step"]


def log_dict(result: TrainResult) -> dict:
    """The JSON-able log of a run (`training.json`): every field plus the derived rates."""
    d = asdict(result)
    d["seconds_per_step"] = result.seconds_per_step
    d["tokens_per_s"] = result.tokens_per_s  # next to s/step: long RAFT prompts make a step slower, not the model
    d["padding_share"] = result.padding_share
    return d


def cut_log(result: TrainResult, step: int) -> TrainResult:
    """The log of a run as it stood after `step` steps."""
    uncounted = len(result.step_times) - len(result.step_tokens)  # steps from before token counting (old checkpoints)
    counted = max(step - uncounted, 0)
    return replace(result, steps=step, losses=result.losses[:step], step_times=result.step_times[:step],
                   step_tokens=result.step_tokens[:counted], step_padded=result.step_padded[:counted],
                   eval_losses=[e for e in result.eval_losses if e[0] <= step], total_train_s=sum(result.step_times[:step]))
