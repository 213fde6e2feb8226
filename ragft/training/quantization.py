"""The 4-bit (NF4) base for QLoRA: which device and compute dtype to use, whether bitsandbytes really works here,
the transformers quantization config with a one-line reason to print, the avx512_bf16 repack guard, loading the base
ready for LoRA, and a float32 copy holding the weights the 4-bit model computes with.

It does not add or train adapters (see `finetune.py`) and does not measure memory (see `memory.py`).
Introduced in notebooks/04_qlora_finetuning.ipynb.
"""

from __future__ import annotations

import functools

from ..generation.models import DEFAULT_LLM, choose_dtype, device, load_llm

# torch, transformers, peft and bitsandbytes are imported inside the functions: the CLI imports this module (through
# finetune.py) and must start without loading them, and a machine without a working bitsandbytes must still import it.


def resolve_dtype(compute_dtype: str = "auto"):
    """The training compute dtype by the one policy (`models.choose_dtype`): "auto" -> bfloat16 on CUDA, float32 on CPU
    (exact LoRA gradients on the 4-bit base). `resolve_dtype("bfloat16")`."""
    return choose_dtype(compute_dtype, purpose="training")


@functools.cache
def bitsandbytes_status() -> tuple[bool, str]:
    """(works, detail): does bitsandbytes import AND round-trip a tensor through NF4 on this device? Checked once."""
    try:
        import bitsandbytes as bnb
        import bitsandbytes.functional as F
        import torch

        x = torch.linspace(-1, 1, 128, device=device()).reshape(2, 64)
        q, state = F.quantize_4bit(x, quant_type="nf4", blocksize=64)
        err = (F.dequantize_4bit(q, state) - x).abs().max().item()
        if not err < 0.2:
            return False, f"bitsandbytes {bnb.__version__} NF4 round trip is wrong on {device()} (max error {err:.3f})"
        return True, f"bitsandbytes {bnb.__version__}"
    except Exception as e:  # ImportError, missing native library, unsupported CPU: each means "no 4-bit here"
        return False, f"bitsandbytes unavailable: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def resolve_quantization(mode: str = "auto", compute_dtype: str = "auto"):
    """The transformers quantization config for `mode` and a one-line reason to print.

    >>> resolve_quantization("none")[1]  # doctest: +SKIP
    '4-bit: off (quantization="none"); plain LoRA on a full-precision base, float32 compute on cpu'
    """
    import torch
    from transformers import BitsAndBytesConfig

    if mode not in ("auto", "4bit", "8bit", "none"):
        raise ValueError(f"quantization must be 'auto', '4bit', '8bit' or 'none', not {mode!r}")
    dtype = resolve_dtype(compute_dtype)
    dname, dev = str(dtype).removeprefix("torch."), device()
    plain = f"plain LoRA on a full-precision base, {dname} compute on {dev}"
    if mode == "none":
        return None, f'4-bit: off (quantization="none"); {plain}'
    ok, detail = bitsandbytes_status()
    if not ok:
        if mode == "auto":
            return None, f"4-bit: off ({detail}); {plain}"
        raise RuntimeError(f"quantization={mode!r} needs bitsandbytes: {detail}. Use quantization='none' or 'auto'.")
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True), \
            f"8-bit LLM.int8 on {dev} via {detail} (saves memory; expect 'MatMul8bitLt: inputs will be cast' warnings)"
    cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=dtype)
    why = " (auto: bitsandbytes works here)" if mode == "auto" else ""
    note = ", exact LoRA gradients" if dtype == torch.float32 else ""
    return cfg, f"4-bit NF4 + double quantization on {dev} via {detail}, {dname} compute{note}{why}"


def effective_quantization(mode: str) -> str:
    """What "auto" becomes here: "4bit" where bitsandbytes works, else "none". Other modes are returned as given."""
    return ("4bit" if bitsandbytes_status()[0] else "none") if mode == "auto" else mode


def disarm_cpu_bf16_repack(model) -> int:
    """Stop bitsandbytes from silently breaking training on CPUs with avx512_bf16; return how many layers were repaired.

    On such CPUs any no-grad forward or generate() repacks each Linear4bit's weights for a bf16 inference kernel that has
    no autograd: training afterwards runs, prints "an autograd kernel was not registered", and its LoRA gradients are
    ~1000x off. Setting `support_avx512bf16_for_cpu = False` prevents the repack; layers already repacked are unpacked
    (their absmax goes through bf16 once, so weights move by ~1e-3 relative; reload the model if that matters).
    """
    try:
        import bitsandbytes as bnb
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
    except Exception:
        return 0
    repaired = 0
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False
            state = getattr(module.weight, "quant_state", None)
            if state is not None and getattr(state, "packing_format_for_cpu", False):
                module.weight.data, module.weight.quant_state = _convert_weight_packed_for_cpu_inverse(module.weight.data, state)
                repaired += 1
    return repaired


def load_base(model_name: str = DEFAULT_LLM, quantization: str = "auto", compute_dtype: str = "auto",
              gradient_checkpointing: bool = False):
    """The base model ready for LoRA training: (model, tokenizer, reason). Quantized bases are disarmed and prepared.

    The 4-bit base keeps its embedding and norms in fp32 (`prepare_model_for_kbit_training`); a plain base is loaded
    in the compute dtype.
    """
    cfg, reason = resolve_quantization(quantization, compute_dtype)
    dev = device()
    if cfg is None:
        model, tok = load_llm(model_name, dtype=resolve_dtype(compute_dtype), device_map=dev if dev != "cpu" else None)
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
            model.enable_input_require_grads()
        return model, tok, reason
    from peft import prepare_model_for_kbit_training

    model, tok = load_llm(model_name, quantization_config=cfg, device_map=dev)
    disarm_cpu_bf16_repack(model)  # before anything can run a no-grad forward on it
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    return model, tok, reason


def dequantized_copy(model4, model_name: str | None = None):
    """A float32 model holding the weights the 4-bit model actually computes with (each NF4 layer dequantized).

    The reference for the gradient-equality check, and the base to merge a QLoRA adapter onto when you want exactly
    the weights it was trained against.
    """
    import bitsandbytes as bnb
    import bitsandbytes.functional as F
    import torch

    base4 = unwrap(model4)
    disarm_cpu_bf16_repack(base4)
    ref, _ = load_llm(model_name or base4.config.name_or_path, dtype=torch.float32)
    ref_modules = dict(ref.named_modules())
    n = 0
    for name, module in base4.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            target = ref_modules[name.replace(".base_layer", "")]
            w = F.dequantize_4bit(module.weight.data, module.weight.quant_state).to(torch.float32)
            target.weight.data.copy_(w.reshape(target.weight.shape))
            n += 1
    if n == 0:
        raise ValueError("dequantized_copy: the model has no 4-bit layers")
    return ref


def unwrap(model):
    """The transformers model inside a PeftModel (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
