"""LoRA adapters as files: save one atomically with the base model it was made for, read what it records, check its
files before torch reads them (a damaged one is named), refuse to put it on another base, load it on a full-precision
base to generate, switch it off, merge it into the base.

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


class AdapterFileError(ValueError):
    """A file of a saved adapter is truncated, overwritten or corrupted; the message names it."""


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


def _read_json(file: Path) -> dict:
    """A JSON object from one of the adapter's files; a damaged one raises AdapterFileError naming it."""
    try:
        row = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AdapterFileError(f"{file} is truncated or corrupted ({e.msg if isinstance(e, json.JSONDecodeError) else e.reason}): train the adapter "
                               "again (`ragft train`) or copy it again") from None
    if not isinstance(row, dict):
        raise AdapterFileError(f"{file} holds a JSON {type(row).__name__}, not an object: train the adapter again")
    return row


def adapter_info(path: str | os.PathLike) -> dict:
    """The adapter's recorded metadata (base model, settings, data hash); falls back to peft's adapter_config.json."""
    path = Path(path)
    if not (path / "adapter_config.json").exists():
        raise FileNotFoundError(f"{path} holds no adapter (no adapter_config.json)")
    if (path / ADAPTER_META).exists():
        return _read_json(path / ADAPTER_META)
    cfg = _read_json(path / "adapter_config.json")
    return {"base_model": cfg.get("base_model_name_or_path")}


def check_adapter_files(path: str | os.PathLike) -> None:
    """Read what an adapter folder's files promise, without torch: its JSON files parse, and the safetensors weights'
    header parses and the file holds every tensor it lists. A damaged file raises AdapterFileError naming it."""
    path = Path(path)
    adapter_info(path)
    _read_json(path / "adapter_config.json")
    weights = path / "adapter_model.safetensors"
    if not weights.exists():
        return
    redo = "train the adapter again (`ragft train`) or copy it again"
    size = weights.stat().st_size
    with open(weights, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            raise AdapterFileError(f"{weights} is truncated or not a safetensors file ({size} bytes): {redo}")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise AdapterFileError(f"{weights} is corrupted (its header is not JSON): {redo}") from None
    if not isinstance(header, dict):
        raise AdapterFileError(f"{weights} is corrupted (its header is not a JSON object): {redo}")
    ends = [t["data_offsets"][1] for k, t in header.items()
            if k != "__metadata__" and isinstance(t, dict) and len(t.get("data_offsets") or ()) == 2]
    if len(ends) != len(header) - ("__metadata__" in header) or 8 + n + max(ends, default=0) > size:
        raise AdapterFileError(f"{weights} is truncated ({size} bytes, its header lists "
                               f"{8 + n + max(ends, default=0)}): {redo}")


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

    check_adapter_files(path)
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
