"""Memory, measured and projected: a peak resident-memory sampler for training runs, model footprints per storage mode
(fp32, bf16, int8, nf4), bytes per parameter and the weight memory they imply for a bigger model, folder sizes on disk.

It does not decide how to quantize or load a model for training (see `quantization.py`) and does not time or train
anything (see `finetune.py`); GPU memory during training is read by `finetune.train_adapter` itself.
Introduced in notebooks/04_qlora_finetuning.ipynb.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from pathlib import Path

import psutil

from ..generation.models import DEFAULT_LLM, load_llm
from .quantization import bitsandbytes_status, device, disarm_cpu_bf16_repack, unwrap

# torch and transformers are imported inside the functions that load models: the CLI imports this module (through
# finetune.py) and must start without them.


class PeakRSS:
    """Context manager that samples this process's resident memory every `interval` seconds; `.peak_mb` afterwards.

    >>> with PeakRSS() as rss:  # doctest: +SKIP
    ...     train(...)
    >>> rss.peak_mb
    """

    def __init__(self, interval: float = 0.05):
        self.interval, self.peak_bytes = interval, 0
        self._stop = threading.Event()

    def _rss(self) -> int:
        return psutil.Process().memory_info().rss

    def _run(self):
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, self._rss())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.peak_bytes = self.start_bytes = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self.peak_bytes, self._rss())

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 1e6


def footprint_mb(model) -> float:
    """Parameters + buffers in MB, as stored (an NF4 layer counts its packed 4-bit weights and quantization state)."""
    return unwrap(model).get_memory_footprint() / 1e6


def measure_footprints(model_name: str = DEFAULT_LLM, modes: Sequence[str] = ("fp32", "bf16", "nf4"),
                       loaded: dict | None = None) -> list[dict]:
    """One row per storage mode: footprint MB, bytes per parameter, ratio to fp32. Pass already-loaded models in
    `loaded` ({"nf4": model}) to skip loading them again."""
    import torch
    from transformers import BitsAndBytesConfig

    loaded = dict(loaded or {})
    rows, n_params = [], None
    for mode in modes:
        model = loaded.get(mode)
        if model is None:
            if mode == "fp32":
                model, _ = load_llm(model_name, dtype=torch.float32)
            elif mode == "bf16":
                model, _ = load_llm(model_name, dtype=torch.bfloat16)
            elif mode in ("nf4", "int8"):
                if not bitsandbytes_status()[0]:
                    continue
                cfg = BitsAndBytesConfig(load_in_8bit=True) if mode == "int8" else BitsAndBytesConfig(
                    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                    bnb_4bit_compute_dtype=torch.float32)
                model, _ = load_llm(model_name, quantization_config=cfg, device_map=device())
                disarm_cpu_bf16_repack(model)
            else:
                raise ValueError(f"unknown mode {mode!r}: use fp32, bf16, int8 or nf4")
        if mode == "fp32":
            n_params = sum(p.numel() for p in unwrap(model).parameters())
        rows.append({"mode": mode, "footprint_mb": footprint_mb(model)})
    n_params = n_params or spec_params(model_name)
    fp32 = next((r["footprint_mb"] for r in rows if r["mode"] == "fp32"), n_params * 4 / 1e6)
    for r in rows:
        r["bytes_per_param"] = r["footprint_mb"] * 1e6 / n_params
        r["ratio_to_fp32"] = r["footprint_mb"] / fp32
    return rows


@functools.cache
def spec_params(model_name: str = DEFAULT_LLM) -> int:
    """Number of parameters of a registry model (loads it once, in bf16 to save memory)."""
    import torch

    model, _ = load_llm(model_name, dtype=torch.bfloat16)
    return sum(p.numel() for p in model.parameters())


# Bytes per parameter for the WEIGHTS of a big model; the QLoRA paper (Dettmers et al. 2023) gives NF4 with double
# quantization as 4 + 0.127 bits per parameter (the quantization constants), and reports that fine-tuning a 65B model
# needs > 780 GB in 16-bit but < 48 GB with QLoRA. Full fine-tuning with Adam in mixed precision needs ~16 bytes per
# parameter (weights, gradients, two Adam moments, fp32 master copy; ZeRO paper, Rajbhandari et al. 2020).
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "int8": 1.0 + 4 / 64, "nf4": (4 + 0.127) / 8, "full fine-tune (Adam, mixed)": 16.0}


def project_memory(n_params: float = 7e9) -> list[dict]:
    """Weight memory of an `n_params` model per storage mode (GB), from bytes per parameter; training activations and
    the LoRA optimizer state (tiny: ~1% of the parameters) come on top."""
    return [{"mode": m, "bytes_per_param": round(b, 3), "gb": round(n_params * b / 1e9, 1)} for m, b in BYTES_PER_PARAM.items()]


def dir_mb(path: str | Path) -> float:
    """Size of the files under `path`, in MB (1e6 bytes), e.g. a saved adapter folder."""
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) / 1e6
