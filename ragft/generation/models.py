"""Loading the LLMs of the offline registry (`core/registry.py`, whose names this module re-exports for its importers):
convert a verified GGUF once into a safetensors checkpoint in the user cache (keyed by the hash, written atomically, a
half-written one is detected and rebuilt), load it, and the one device/dtype policy.

It never imports the model packages' Python modules and never contacts a model hub. It does not load the embedding model
(see `retrieval/embeddings.py`), fine-tune (see `finetune.py`) or generate (see `decoding.py`).
Introduced in notebooks/00_overview.ipynb.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..core.io import atomic_path
from ..core.paths import cache_dir
from ..core.registry import (
    DEFAULT_EMBEDDER,
    DEFAULT_LLM,
    REGISTRY,
    ModelSpec,
    ModelUnavailable,
    is_available,
    package_dir,
    sha256_file,
    spec,
    verify,
)

# the registry's names, still importable from here (`models.is_available`, `models.DEFAULT_LLM`, ...)
__all__ = ["DEFAULT_EMBEDDER", "DEFAULT_LLM", "REGISTRY", "ModelSpec", "ModelUnavailable", "choose_dtype",
           "converted_dir", "cpu_has_fast_bf16", "describe", "device", "ensure_converted", "gguf_file", "is_available",
           "load_gguf", "load_llm", "package_dir", "sha256_file", "spec", "verify"]


def gguf_file(name: str) -> Path:
    """A verified GGUF file for an LLM; multi-part models are concatenated once into the cache (atomically)."""
    s = spec(name)
    paths = verify(name)
    if len(paths) == 1:
        return paths[0]
    out = cache_dir("gguf") / f"{s.sha256[:16]}-{s.gguf_name}"
    if out.exists() and out.stat().st_size == sum(p.stat().st_size for p in paths):
        return out
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        for p in paths:
            with open(p, "rb") as part:
                shutil.copyfileobj(part, f, 1 << 22)
    return out


def converted_dir(name: str) -> Path:
    """Where the safetensors conversion of an LLM lives: `<cache>/models/<name>-<sha256[:16]>`."""
    s = spec(name)
    return cache_dir("models") / f"{s.name}-{s.sha256[:16]}"


def load_gguf(name: str, dtype=None):
    """Load an LLM straight from its GGUF (slow: dequantizes every tensor). Returns (model, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_file(name)
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype or torch.float32)
    return model, tok


def ensure_converted(name: str, show_progress: bool = True) -> Path:
    """Convert the GGUF once into a safetensors checkpoint; a folder without its COMPLETE marker is rebuilt."""
    out = converted_dir(name)
    if (out / "COMPLETE").exists():
        return out
    if out.exists():
        shutil.rmtree(out)  # half-written by an interrupted conversion
    if show_progress:
        print(f"[ragft] converting {name} from GGUF to safetensors in {out} (once, ~20 s)")
    from transformers import AutoModelForCausalLM

    gguf_model, tok = load_gguf(name)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    with atomic_path(out, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        (tmp / "SOURCE.json").write_text(json.dumps({"model": name, "gguf_sha256": spec(name).sha256}))
        (tmp / "COMPLETE").write_text("ok")
    return out


# --- device and dtype: the one policy --------------------------------------------------------------------------------
def device() -> str:
    """"cuda" where a CUDA GPU is visible, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_fast_bf16() -> bool:
    """True if this CPU multiplies bfloat16 natively (avx512_bf16 or AMX). Without it, torch emulates bf16 matmuls:
    on a 2-core AVX2 EPYC that measured 0.5 GFLOP/s against 43 in float32, so bf16 decoding was ~10x slower, not faster."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def choose_dtype(name: str = "auto", purpose: str = "inference"):
    """The torch dtype for `purpose` ("inference" or "training"): "float32", "bfloat16", or "auto" by one rule:
    bfloat16 on a GPU; on a CPU, float32 for training (exact LoRA gradients on the 4-bit base) and, for inference,
    bfloat16 only where the CPU multiplies it natively (`cpu_has_fast_bf16`).
    >>> choose_dtype("auto", "training")  # on a CPU  # doctest: +SKIP
    torch.float32
    """
    import torch

    if purpose not in ("inference", "training"):
        raise ValueError(f"purpose must be 'inference' or 'training', not {purpose!r}")
    if name == "auto":
        if device() == "cuda":
            return torch.bfloat16
        return torch.bfloat16 if purpose == "inference" and cpu_has_fast_bf16() else torch.float32
    try:
        return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}: float32, bfloat16 or auto") from None


def load_llm(name: str = DEFAULT_LLM, dtype=None, quantization_config=None, device_map: str | None = None):
    """Load an LLM and its tokenizer by short name from the converted checkpoint (well under a second once converted).

    `quantization_config` (a transformers BitsAndBytesConfig) loads it in 4 or 8 bit; see `quantization.resolve_quantization`.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if spec(name).kind != "llm":
        raise ValueError(f"{name!r} is an embedding model, not an LLM")
    path = ensure_converted(name)
    kwargs = {"dtype": dtype or torch.float32}
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
        kwargs["device_map"] = device_map or "cpu"
    elif device_map:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.generation_config.pad_token_id = tok.pad_token_id
    model.config.name_or_path = name  # adapters record this to refuse a mismatched base
    return model, tok


def describe() -> list[dict]:
    """One row per registered model: name, kind, installed or not, what to run if not."""
    return [{"name": s.name, "kind": s.kind, "installed": is_available(s.name), "description": s.description,
             "install": s.install_hint} for s in REGISTRY.values()]
