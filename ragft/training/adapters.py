"""LoRA adapters as files: save one atomically with the base model it was made for, read what it records, refuse to
put it on another base, load it on a full-precision base to generate, switch it off, merge it into the base.

It does not train adapters (see `finetune.py`) or choose between them (see `systems.py`).
Introduced in notebooks/04_qlora_finetuning.ipynb.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..core.io import atomic_path
from ..generation.models import DEFAULT_LLM, device, load_llm
from .quantization import unwrap

# torch and peft are imported inside the functions that need them: the CLI imports this module and starts without them.

# Bump when the training format (chat template use, loss masking, batching) changes: it invalidates cached adapters.
FORMAT_VERSION = 1
ADAPTER_META = "ragft_adapter.json"  # written next to peft's files; records the base model and how the adapter was made
COMPLETE = "COMPLETE"


class AdapterMismatch(ValueError):
    """An adapter was made for another base model than the one it is being put on."""


def save_adapter(model, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Save the adapter atomically (a crash or full disk leaves no half-written folder) with its base model recorded."""
    path = Path(path)
    base = unwrap(model).config.name_or_path
    info = {"base_model": base, "format_version": FORMAT_VERSION, **(meta or {})}
    with atomic_path(path, is_dir=True) as tmp:
        model.save_pretrained(tmp)
        (tmp / ADAPTER_META).write_text(json.dumps(info, indent=2, default=str))
        (tmp / COMPLETE).write_text("ok")
    return path


def adapter_info(path: str | os.PathLike) -> dict:
    """The adapter's recorded metadata (base model, settings, data hash); falls back to peft's adapter_config.json."""
    path = Path(path)
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(f"{path} holds no adapter (no adapter_config.json)")
    if (path / ADAPTER_META).exists():
        return json.loads((path / ADAPTER_META).read_text())
    cfg = json.loads((path / "adapter_config.json").read_text())
    return {"base_model": cfg.get("base_model_name_or_path")}


def check_adapter_base(model, path: str | os.PathLike) -> None:
    """Raise AdapterMismatch if the adapter at `path` was made for another base model than `model`."""
    want = adapter_info(path).get("base_model")
    have = unwrap(model).config.name_or_path
    if want and have and want != have:
        raise AdapterMismatch(f"the adapter at {path} was trained on base model {want!r}, but this model is {have!r}. "
                              f"Load its base with ragft.generation.models.load_llm({want!r}) or train an adapter for {have!r}.")


def load_adapter(model, path: str | os.PathLike, is_trainable: bool = False):
    """Put a saved adapter on `model` (checked against its base); returns the PeftModel, adapter on."""
    from peft import PeftModel

    check_adapter_base(model, path)
    return PeftModel.from_pretrained(model, str(path), is_trainable=is_trainable)


def load_tuned(path: str | os.PathLike, dtype=None):
    """(peft model, tokenizer): the adapter's base in full precision with the adapter on top, ready to generate.

    Use `adapter_off(model)` for the base model's answers: same weights in memory, no reload.
    """
    import torch

    info = adapter_info(path)
    base, tok = load_llm(info["base_model"] or DEFAULT_LLM, dtype=dtype or torch.float32,
                         device_map=device() if device() != "cpu" else None)
    model = load_adapter(base, path)
    model.eval()
    return model, tok


def adapter_off(model):
    """Context manager: the base model's behaviour for the duration (peft's `disable_adapter`)."""
    return model.disable_adapter()


def merge_adapter(path: str | os.PathLike, dtype=None, base_model=None):
    """The adapter merged into a full-precision copy of its base: a plain transformers model, no peft at run time.

    Merge onto full precision (the original weights, or a `dequantized_copy` of the 4-bit base to get exactly the
    weights it was trained against), never onto the 4-bit weights themselves.
    """
    import torch

    if base_model is None:
        base_model, _ = load_llm(adapter_info(path)["base_model"] or DEFAULT_LLM, dtype=dtype or torch.float32)
    return load_adapter(base_model, path).merge_and_unload()
