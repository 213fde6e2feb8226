"""QLoRA fine-tuning for behaviour, the front door: the adapter for (base model, pairs, settings) from the cache, or
trained (resuming an interrupted run, continuing a shorter one) and saved; the cache key; the training log. The names of
the parts it is built from (settings, batches, the loop) are importable from here too.

It teaches a model the house FORMAT and the abstention protocol without a system prompt; it does not teach it facts
you can rely on (that is retrieval's job), does not score answers (see `evaluation`), does not load the quantized base
(see `quantization.py`) and does not hold the loop itself (see `loop.py`, on accelerate; `launch.py` for processes).
On CPU, 4-bit saves memory, not time: train in 4-bit, then generate on the full-precision base with the adapter on top.
Introduced in notebooks/04_qlora_finetuning.ipynb; several processes or GPUs in docs/distributed.md.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from ..core.io import DataError, atomic_path
from ..core.paths import cache_dir
from ..generation.models import DEFAULT_LLM, spec
from .adapters import COMPLETE, FORMAT_VERSION, adapter_info, save_adapter
from .batches import (
    LENGTH_WINDOW,
    EncodeStats,
    batch_indices,
    collate,
    data_hash,
    encode_pair,
    encode_pairs,
    load_pairs,
    split_pairs,
)
from .launch import LaunchError, one_writer, process_state
from .loop import TrainResult, cut_log, eval_loss, log_dict, train_adapter
from .lora import DEFAULT_TARGET_MODULES, LoraSettings, TrainSettings, add_lora, dequantized_reference, make_optimizer
from .memory import dir_mb
from .quantization import device, effective_quantization, load_base, resolve_dtype

# torch, peft, safetensors, bitsandbytes and accelerate are imported inside the functions that need them: the CLI
# imports this module (through `adapters`) and must start without loading them.

__all__ = ["DEFAULT_TARGET_MODULES", "LENGTH_WINDOW", "TRAINING_LOG", "EncodeStats", "LaunchError", "LoraSettings",
           "TrainResult", "TrainSettings", "adapter_dir", "add_lora", "batch_indices", "collate", "cut_log", "data_hash",
           "dequantized_reference", "encode_pair", "encode_pairs", "eval_loss", "load_pairs", "log_dict",
           "make_optimizer", "read_training_log", "run_key", "split_pairs", "train_adapter", "train_or_load_adapter"]

TRAINING_LOG = "training.json"


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
                          reuse: bool = True, show_progress: bool = True, verbose: bool = True,
                          callback: Callable[[int, float], None] | None = None) -> Path:
    """The adapter for (base model, pairs, lora, train): from the cache if it exists, else trained (resuming if a run
    was interrupted, continuing a shorter run of the same settings) and saved. Returns its folder.

    `train.held_out` pairs (chosen by hash) are kept out of training and give the eval loss. The folder holds peft's
    files, `ragft_adapter.json` (base model, settings, data hash) and `training.json` (`read_training_log`).
    `out_dir` overrides the cache location; `reuse=False` retrains from scratch; `callback(step, loss)` runs after each
    training step. Under `accelerate launch` every process calls it and gets the folder; only the main one writes.

    >>> path = train_or_load_adapter(pairs, LoraSettings(lora_r=16), TrainSettings(steps=60))  # doctest: +SKIP
    >>> model, tok = load_tuned(path)  # doctest: +SKIP
    """
    lora, train = lora or LoraSettings(), train or TrainSettings()
    if not pairs:
        raise DataError("empty training set: give at least one prompt/completion pair")
    key = run_key(model_name, pairs, lora, train)
    out = Path(out_dir) if out_dir else adapter_dir(model_name, pairs, lora, train)
    # one run trains a given adapter; another asking for it at the same time waits, then finds it in the cache
    with one_writer(cache_dir("locks") / f"adapter-{key[:24]}.lock"):
        return _train_or_load_adapter(pairs, lora, train, out, key, model_name, reuse, show_progress, verbose, callback)


def _train_or_load_adapter(pairs, lora, train, out: Path, key: str, model_name: str, reuse: bool, show_progress: bool,
                           verbose: bool, callback: Callable[[int, float], None] | None) -> Path:
    state = process_state()
    main = state.is_main_process  # every process decides alike (the lock keeps the cache still); one writes
    say = print if verbose and main else (lambda *a, **k: None)
    if reuse and (out / COMPLETE).exists():
        if adapter_info(out).get("run_key") == key:
            say(f"[ragft] adapter found in cache, not retraining: {out}")
            return out
        say(f"[ragft] {out} holds an adapter made from other data or settings: retraining")
    trajectory = cache_dir("checkpoints") / f"{model_name}-{run_key(model_name, pairs, lora, train, steps=False)[:16]}"
    snapshot = trajectory / f"step-{train.steps:06d}"
    if reuse and (snapshot / COMPLETE).exists() and adapter_info(snapshot).get("run_key") == key:
        say(f"[ragft] adapter at step {train.steps} taken from a longer run of the same settings: {snapshot}")
        if main:
            with atomic_path(out, is_dir=True) as tmp:
                shutil.rmtree(tmp)
                shutil.copytree(snapshot, tmp)
        return out
    if not reuse and trajectory.exists() and main:
        shutil.rmtree(trajectory)
    state.wait_for_everyone()  # the others read the trajectory only once the main process has cleared it
    model, tok, reason = load_base(model_name, train.quantization, train.compute_dtype, train.gradient_checkpointing)
    model = add_lora(model, lora, seed=train.seed)
    say(f"[ragft] training {model_name} with LoRA r={lora.lora_r} for {train.steps} steps: {reason}")
    traj_key = run_key(model_name, pairs, lora, train, steps=False)

    def snapshot_cb(step: int, loss: float) -> None:
        if main and train.checkpoint_every and step % train.checkpoint_every == 0 and step != train.steps:
            snap_train = replace(train, steps=step)
            meta = _adapter_meta(model_name, pairs, lora, snap_train, reason)
            save_adapter(model, trajectory / f"step-{step:06d}", meta)
        if callback is not None:
            callback(step, loss)

    train_pairs, eval_pairs = split_pairs(pairs, train.held_out, seed=train.seed)
    latest = trajectory / "latest" / "state.json"
    if latest.exists() and json.loads(latest.read_text())["step"] > train.steps:
        ckpt_dir = None  # a longer run of these settings is checkpointed here: do not wind it back to this shorter one
    else:
        ckpt_dir = trajectory
    result = train_adapter(model, tok, train_pairs, train, eval_pairs=eval_pairs, checkpoint_dir=ckpt_dir, run_key=traj_key,
                           show_progress=show_progress, callback=snapshot_cb)
    result.reason = reason
    if not main:
        return out  # `one_writer` holds every process until the main one has written it
    meta = _adapter_meta(model_name, pairs, lora, train, reason)
    save_adapter(model, snapshot, meta)
    for snap in trajectory.glob("step-*"):  # every snapshot on this trajectory gets the log cut at its own step
        s = int(snap.name.removeprefix("step-"))
        if (snap / COMPLETE).exists() and s <= result.steps and (s == train.steps or not (snap / TRAINING_LOG).exists()):
            (snap / TRAINING_LOG).write_text(json.dumps(log_dict(cut_log(result, s)), indent=1))
    with atomic_path(out, is_dir=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(snapshot, tmp)
    say(f"[ragft] saved adapter ({dir_mb(out):.1f} MB) to {out}")
    return out


def _adapter_meta(model_name, pairs, lora, train, reason) -> dict:
    return {"run_key": run_key(model_name, pairs, lora, train), "data_hash": data_hash(pairs), "n_pairs": len(pairs),
            "lora": asdict(lora), "train": asdict(train), "quantization_reason": reason}


def read_training_log(path: str | os.PathLike) -> dict:
    """The training log saved with an adapter: losses, eval_losses, step_times, seconds_per_step, peak_rss_mb, ..."""
    p = Path(path) / TRAINING_LOG
    if not p.exists():
        raise FileNotFoundError(f"{p}: this adapter was not made by train_or_load_adapter (or its run was interrupted)")
    return json.loads(p.read_text())
