"""LoRA and a training run's settings: the adapter (`LoraSettings`), one run (`TrainSettings`), wrapping a base model
with a fresh adapter, the gradient-check reference on a 4-bit base, and the optimizer a run uses.

It does not load the base (see `quantization.py`), encode or batch pairs (see `batches.py`) or run the training loop
(see `loop.py`). Introduced in notebooks/04_qlora_finetuning.ipynb.
"""
from __future__ import annotations

from dataclasses import dataclass

from .quantization import dequantized_copy, device

# torch, peft and bitsandbytes are imported inside the functions that need them (the CLI must start without them).

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


def make_optimizer(model, train: TrainSettings):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    kind = train.optimizer if train.optimizer != "auto" else ("paged_adamw" if device() == "cuda" else "adamw")
    if kind == "paged_adamw":
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW32bit(params, lr=train.lr)
    return torch.optim.AdamW(params, lr=train.lr)
