"""The several-process check: a tiny randomly initialised Llama-like model trained a few steps on a few house-style
pairs through `finetune.train_or_load_adapter`; the main process writes the loss curve to `<out>/result.json`.

Run it as one process and as two; the curves must agree (tests/test_distributed.py, scripts/gpu_check.sh):
    python -m ragft.training.distcheck OUT1
    torchrun --standalone --nproc_per_node 2 -m ragft.training.distcheck OUT2  # on GPUs: accelerate launch too
It is a check harness, not a way to train: its random model stands in for the base `load_base` would load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..generation.models import ensure_converted
from . import finetune
from .batches import load_pairs
from .launch import LaunchError, process_state
from .lora import LoraSettings, TrainSettings

MODEL_NAME = "smollm2-135m"  # names the cache key and the tokenizer; the weights are the tiny random model's


def settings(steps: int = 4, batch_size: int = 4, n_pairs: int = 24) -> tuple[list[dict], LoraSettings, TrainSettings]:
    """The check's pairs and settings (fp32, no dropout: every process computes what one process would)."""
    pairs, _ = load_pairs()
    lora = LoraSettings(lora_r=4, lora_alpha=8, lora_dropout=0.0, target_modules=("q_proj", "v_proj"))
    train = TrainSettings(steps=steps, lr=1e-2, batch_size=batch_size, grad_accumulation=2, max_length=96, eval_every=2,
                          checkpoint_every=2, held_out=4, quantization="none", compute_dtype="float32")
    return pairs[:n_pairs], lora, train


def tiny_model(tok, device: str = "cpu", seed: int = 0):
    """A 2-layer Llama-like model with SmolLM2's vocabulary, randomly initialised from `seed` (same in every process)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config).to(device)
    model.config.name_or_path = MODEL_NAME
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ragft.training.distcheck", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the cache (adapters, checkpoints, locks) and result.json")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--stop-at", type=int, default=0, help="raise KeyboardInterrupt after this step (0: never)")
    args = ap.parse_args(argv)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(ensure_converted(MODEL_NAME, show_progress=False))  # before the cache moves
    tok.pad_token = tok.pad_token or tok.eos_token
    os.environ["RAGFT_CACHE"] = str(args.out.resolve() / "cache")
    state = process_state()
    model = tiny_model(tok, device=str(state.device))
    finetune.load_base = lambda *a, **k: (model, tok, "tiny random Llama (distcheck)")  # the harness's stand-in base
    pairs, lora, train = settings(args.steps, args.batch_size)

    def stop(step: int, loss: float) -> None:
        if step == args.stop_at:
            raise KeyboardInterrupt

    t0 = time.perf_counter()
    try:
        path = finetune.train_or_load_adapter(pairs, lora, train, model_name=MODEL_NAME, show_progress=False,
                                              verbose=False, callback=stop)
    except LaunchError as e:
        if state.is_main_process:
            print(f"distcheck: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    if state.is_main_process:
        log = finetune.read_training_log(path)
        adapters = sorted(p.name for p in (args.out / "cache" / "adapters").iterdir())
        result = {"world": state.num_processes, "losses": log["losses"], "eval_losses": log["eval_losses"],
                  "resumed_from": log["resumed_from"], "adapter": str(path), "adapters": adapters,
                  "step_tokens": log["step_tokens"], "wall_s": time.perf_counter() - t0}
        (args.out / "result.json").write_text(json.dumps(result, indent=1))
        print(json.dumps({k: result[k] for k in ("world", "losses", "resumed_from", "wall_s")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
