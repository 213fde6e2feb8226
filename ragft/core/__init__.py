"""The ground floor: where things are (`paths`), atomic files (`io`), the content-hash cache (`cache`), run
profiles (`profiles`), the house answer format (`house`), the offline model registry (`registry`), quiet logs
(`quiet`). It imports nothing else of ragft.
"""

from . import cache, house, io, paths, profiles, quiet, registry
from .cache import KeyValueCache, content_key, files_state, locked, seeded_key, seeded_unit, stable_hash
from .house import (
    ABSTAIN_ANSWER,
    ABSTAIN_SENTENCE,
    DOCS_URL,
    QUOTE_LABEL,
    SYSTEM_PROMPT,
    HouseAnswer,
    compliance_rate,
    declines,
    parse,
    recommends_api,
    render,
    render_quote,
    split_quote,
    starts_with_quote,
)
from .io import DataError, ReadReport, atomic_path, old_name, read_jsonl, recover_folder, write_jsonl
from .paths import DATA_DIR, NUMPY_VERSIONS, REPO_ROOT, cache_dir, corpus_path, qa_path, task_pairs_path, train_path
from .profiles import ANSWER_MAX_NEW_TOKENS, DEFAULT_TOP_K, PROFILES, Profile, get, resolve
from .quiet import (
    BNB_KERNELS_MESSAGE,
    BNB_LOGGER,
    GRADIENT_CHECKPOINTING_MESSAGE,
    GRADIENT_CHECKPOINTING_MODULE,
    ExactMessageFilter,
    install,
    uninstall,
)
from .registry import (
    DEFAULT_EMBEDDER,
    DEFAULT_LLM,
    REGISTRY,
    ModelSpec,
    ModelUnavailable,
    is_available,
    package_dir,
    sha256_file,
    source_files,
    spec,
    verify,
)

__all__ = ["ABSTAIN_ANSWER", "ABSTAIN_SENTENCE", "ANSWER_MAX_NEW_TOKENS", "BNB_KERNELS_MESSAGE", "BNB_LOGGER", "DATA_DIR", "DEFAULT_EMBEDDER", "DEFAULT_LLM", "DEFAULT_TOP_K", "DOCS_URL", "DataError", "ExactMessageFilter", "GRADIENT_CHECKPOINTING_MESSAGE", "GRADIENT_CHECKPOINTING_MODULE", "HouseAnswer", "KeyValueCache", "ModelSpec", "ModelUnavailable", "NUMPY_VERSIONS", "PROFILES", "Profile", "QUOTE_LABEL", "REGISTRY", "REPO_ROOT", "ReadReport", "SYSTEM_PROMPT", "atomic_path", "cache", "cache_dir", "compliance_rate", "content_key", "corpus_path", "declines", "files_state", "get", "house", "install", "io", "is_available", "locked", "old_name", "package_dir", "parse", "paths", "profiles", "qa_path", "quiet", "read_jsonl", "recommends_api", "recover_folder", "registry", "render", "render_quote", "resolve", "seeded_key", "seeded_unit", "sha256_file", "source_files", "spec", "split_quote", "stable_hash", "starts_with_quote", "task_pairs_path", "train_path", "uninstall", "verify", "write_jsonl"]
