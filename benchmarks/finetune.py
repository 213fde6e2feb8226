"""Benchmark QLoRA on this machine: footprint fp32 / bf16 / nf4, seconds per step and peak RSS for 4-bit and plain LoRA,
LoRA gradient error of each compute dtype, and 4-bit vs full-precision decode speed. Prints measured ratios against
the goals of issue 5; asserts nothing about time (machines differ, and a shared CPU makes timings noisy).

Every training configuration runs in its own subprocess, so its peak RSS is its own. Run:

    .venv/bin/python benchmarks/finetune.py            # ~3-5 minutes on 2 cores
    .venv/bin/python benchmarks/finetune.py --steps 3  # quicker, noisier
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# name -> (quantization, compute dtype); the goal compares nf4 training against plain bf16 LoRA.
CONFIGS = {
    "nf4 + fp32 compute": ("4bit", "float32"),
    "nf4 + bf16 compute": ("4bit", "bfloat16"),
    "plain LoRA bf16": ("none", "bfloat16"),
    "plain LoRA fp32": ("none", "float32"),
}
GOALS = {"nf4 footprint / fp32": 0.35, "nf4+fp32 s/step / plain bf16 s/step": 1.2}


def one_config(name: str, steps: int, seq_len: int, batch_size: int, lora_r: int) -> dict:
    """Train `steps` steps of one configuration on batches of `batch_size` x `seq_len` tokens; return its numbers."""
    from ragft.training import finetune as ft
    from ragft.training.memory import footprint_mb
    from ragft.training.quantization import load_base

    quantization, dtype = CONFIGS[name]
    pairs, _ = ft.load_pairs()
    model, tok, reason = load_base(quantization=quantization, compute_dtype=dtype)
    model = ft.add_lora(model, ft.LoraSettings(lora_r=lora_r))
    # Pad every prompt with words so that each example fills exactly seq_len tokens (truncated): a fixed workload.
    long_pairs = [{"prompt": p["prompt"] + " " + "please " * seq_len, "completion": p["completion"]} for p in pairs]
    long_pairs = [{"prompt": p["prompt"][: 4 * seq_len // 3], "completion": p["completion"]} for p in long_pairs]
    train = ft.TrainSettings(steps=steps, batch_size=batch_size, max_length=seq_len, eval_every=0,
                             quantization=quantization, compute_dtype=dtype)
    result = ft.train_adapter(model, tok, long_pairs, train, show_progress=False)
    return {"config": name, "reason": reason, "seconds_per_step": result.seconds_per_step, "step_times": result.step_times,
            "peak_rss_mb": result.peak_rss_mb, "trainable_params": result.trainable_params,
            "footprint_mb": footprint_mb(model), "n_truncated": result.n_truncated}


def grad_errors() -> dict:
    """Relative error of LoRA gradients on the nf4 model (fp32 and bf16 compute) against an fp32 model holding the
    dequantized weights, after a generate() on the 4-bit model (the avx512_bf16 trap)."""
    import torch

    from ragft.core import house
    from ragft.generation.decoding import chat_messages, generate
    from ragft.training import finetune as ft
    from ragft.training.quantization import load_base

    pairs = [{"prompt": "What does `np.argsort` do?", "completion": house.render(
        "`np.argsort`: Returns the indices that would sort an array.", "np.argsort([3, 1, 2])", ["numpy.argsort"])},
        {"prompt": "What does `np.foo_bar` do?", "completion": house.ABSTAIN_ANSWER}]
    out = {}
    for dtype in ("float32", "bfloat16"):
        model, tok, _ = load_base(quantization="4bit", compute_dtype=dtype)
        lora = ft.LoraSettings(lora_r=4, lora_dropout=0.0)
        m4 = ft.add_lora(model, lora)
        with torch.no_grad():
            for n, p in m4.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.02)
        generate(m4, tok, chat_messages("hi"), max_new_tokens=2)
        enc, _ = ft.encode_pairs(tok, pairs, 128)
        batch = ft.collate(enc, tok.pad_token_id)

        def grads(m, batch=batch):
            m.train()
            m.zero_grad(set_to_none=True)
            m(**batch).loss.backward()
            return {n: p.grad.detach().float().clone() for n, p in m.named_parameters() if p.requires_grad}

        g4 = grads(m4)
        g32 = grads(ft.dequantized_reference(m4, lora))
        num = sum(float(((g4[n] - g32[n]) ** 2).sum()) for n in g32)
        out[dtype] = (num / sum(float((g32[n] ** 2).sum()) for n in g32)) ** 0.5
    return out


def decode_speed(n_tokens: int = 12) -> dict:
    """Tokens per second when generating with the nf4 model vs the fp32 model (the adapter makes no difference)."""
    import torch

    from ragft.generation.decoding import chat_messages, generate
    from ragft.generation.models import load_llm
    from ragft.training.quantization import load_base

    out = {}
    fp32, tok = load_llm(dtype=torch.float32)
    nf4, _, _ = load_base(quantization="4bit", compute_dtype="float32")
    for name, m in (("fp32", fp32), ("nf4", nf4)):
        g = generate(m, tok, chat_messages("How do I sort an array in NumPy?"), max_new_tokens=n_tokens)
        out[name] = g.tokens_per_s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5, help="training steps per configuration (the first is not timed)")
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--one", choices=list(CONFIGS), help=argparse.SUPPRESS)  # internal: one config, JSON on stdout
    ap.add_argument("--skip", nargs="*", default=[], choices=["footprint", "train", "grads", "decode"])
    args = ap.parse_args()

    if args.one:
        print("RESULT " + json.dumps(one_config(args.one, args.steps, args.seq_len, args.batch_size, args.lora_r)))
        return

    import torch

    from ragft.training.memory import measure_footprints
    from ragft.training.quantization import device, resolve_quantization

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device()}; "
          f"{resolve_quantization('auto')[1]}")
    summary = {}
    if "footprint" not in args.skip:
        rows = measure_footprints(modes=("fp32", "bf16", "nf4"))
        print("\nfootprint (MB, parameters + buffers as stored):")
        for r in rows:
            print(f"  {r['mode']:5s} {r['footprint_mb']:7.1f} MB  {r['bytes_per_param']:.2f} B/param  {r['ratio_to_fp32']:.3f}x fp32")
        summary["nf4 footprint / fp32"] = next(r["ratio_to_fp32"] for r in rows if r["mode"] == "nf4")

    if "train" not in args.skip:
        print(f"\ntraining, batch {args.batch_size} x {args.seq_len} tokens, LoRA r={args.lora_r} on all 7 projections, "
              f"{args.steps} steps each (median step time, first step excluded):")
        results = {}
        for name in CONFIGS:
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--seq-len",
                                   str(args.seq_len), "--batch-size", str(args.batch_size), "--lora-r", str(args.lora_r)],
                                  capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                print(f"  {name:20s} FAILED:\n{proc.stderr[-2000:]}")
                continue
            r = results[name] = json.loads(line.removeprefix("RESULT "))
            print(f"  {name:20s} {r['seconds_per_step']:6.2f} s/step  peak RSS {r['peak_rss_mb']:6.0f} MB  "
                  f"model {r['footprint_mb']:5.0f} MB  ({time.perf_counter() - t0:.0f} s incl. load)")
        if "nf4 + fp32 compute" in results and "plain LoRA bf16" in results:
            base = results["plain LoRA bf16"]["seconds_per_step"]
            summary["nf4+fp32 s/step / plain bf16 s/step"] = results["nf4 + fp32 compute"]["seconds_per_step"] / base
            if "nf4 + bf16 compute" in results:
                summary["nf4+bf16 s/step / plain bf16 s/step"] = results["nf4 + bf16 compute"]["seconds_per_step"] / base
        if "nf4 + fp32 compute" in results and "plain LoRA fp32" in results:
            summary["nf4 peak RSS / plain fp32 peak RSS"] = (results["nf4 + fp32 compute"]["peak_rss_mb"]
                                                             / results["plain LoRA fp32"]["peak_rss_mb"])

    if "grads" not in args.skip:
        errs = grad_errors()
        print("\nLoRA gradient relative error vs fp32 model with the dequantized weights, after a generate():")
        for k, v in errs.items():
            print(f"  {k:9s} compute: {v:.2e}")
        summary.update({f"grad rel err ({k})": v for k, v in errs.items()})

    if "decode" not in args.skip:
        speed = decode_speed()
        print(f"\ndecode: fp32 {speed['fp32']:.1f} tok/s, nf4 {speed['nf4']:.1f} tok/s (on CPU, generate on the "
              f"full-precision base)")
        summary["nf4 decode / fp32 decode"] = speed["nf4"] / speed["fp32"]

    print("\nmeasured ratios (goal in brackets):")
    for k, v in summary.items():
        goal = GOALS.get(k)
        verdict = "" if goal is None else f"  [goal <= {goal}: {'met' if v <= goal else 'NOT met'}]"
        print(f"  {k:40s} {v:.3g}{verdict}")


if __name__ == "__main__":
    main()
