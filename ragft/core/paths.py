"""Where ragft keeps things: the committed data under `data/`, and a user cache for converted models and embeddings.

Nothing here creates files except `cache_dir()`, which makes its folder on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("RAGFT_DATA", REPO_ROOT / "data"))
NUMPY_VERSIONS = ("1.26.4", "2.0.2", "2.4.6")
OLD_VERSION, CURRENT_VERSION = NUMPY_VERSIONS[0], NUMPY_VERSIONS[-1]


def corpus_path(version: str) -> Path:
    """`data/corpora/numpy-<version>.jsonl`, the extracted API reference of one NumPy release."""
    return DATA_DIR / "corpora" / f"numpy-{version}.jsonl"


def qa_path() -> Path:
    return DATA_DIR / "qa" / "numpy_migration.jsonl"


def train_path() -> Path:
    """The house-style pairs: one question shape, "What does `np.X` do?" (notebook 04's format lesson)."""
    return DATA_DIR / "train" / "house_style.jsonl"


def task_pairs_path() -> Path:
    """The task pairs: the QA set's question shapes, from facts the QA set does not ask about (`pair_builder`)."""
    return DATA_DIR / "train" / "task_pairs.jsonl"


def cache_dir(*parts: str) -> Path:
    """The user cache (`$RAGFT_CACHE`, else `$XDG_CACHE_HOME/ragft`, else `~/.cache/ragft`), created on demand."""
    root = os.environ.get("RAGFT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ragft"
    path = Path(root).joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
