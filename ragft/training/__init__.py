"""From pairs to adapters: training pairs and RAFT data (`pairs`), the 4-bit base (`quantization`), LoRA fine-tuning
(`finetune`), adapters as files (`adapters`), the RAFT draws (`draws`), memory measured and projected (`memory`).
"""

from . import adapters, draws, finetune, memory, pairs, quantization
from .adapters import (
    ADAPTER_META,
    COMPLETE,
    FORMAT_VERSION,
    AdapterFileError,
    AdapterMismatch,
    adapter_info,
    adapter_off,
    check_adapter_base,
    check_adapter_files,
    load_adapter,
    load_tuned,
    merge_adapter,
    save_adapter,
)
from .draws import TRAINING_SETS, TunedAdapters, raft_data, train_draws, tuned_adapters
from .finetune import TRAINING_LOG, adapter_dir, read_training_log, run_key, train_or_load_adapter
from .memory import BYTES_PER_PARAM, PeakRSS, dir_mb, footprint_mb, measure_footprints, project_memory, spec_params
from .pairs import (
    FACT_KINDS,
    MAX_SUMMARY_CHARS,
    NO_ORACLE_TARGETS,
    TOP_LEVEL_PREFIXES,
    UNANSWERABLE_KINDS,
    Demonstrations,
    RaftSettings,
    added_sentence,
    advice_code,
    examples,
    fact_update_pairs,
    first_sentence,
    gold_hits,
    house_pair,
    noted_entries,
    param_answer,
    public_callable,
    qa_documents,
    quote_for,
    raft_pairs,
    raft_training_set,
    refresh_pairs,
    release_labels,
    removed_answer,
    short,
    steps_for,
    summary,
    update_facts,
    update_pairs,
    version_hit,
)
from .quantization import (
    bitsandbytes_status,
    dequantized_copy,
    disarm_cpu_bf16_repack,
    effective_quantization,
    load_base,
    resolve_dtype,
    resolve_quantization,
    unwrap,
)

__all__ = ["ADAPTER_META", "AdapterFileError", "AdapterMismatch", "BYTES_PER_PARAM", "COMPLETE", "Demonstrations", "FACT_KINDS", "FORMAT_VERSION", "MAX_SUMMARY_CHARS", "NO_ORACLE_TARGETS", "PeakRSS", "RaftSettings", "TOP_LEVEL_PREFIXES", "TRAINING_LOG", "TRAINING_SETS", "TunedAdapters", "UNANSWERABLE_KINDS", "adapter_dir", "adapter_info", "adapter_off", "adapters", "added_sentence", "advice_code", "bitsandbytes_status", "check_adapter_base", "check_adapter_files", "dequantized_copy", "dir_mb", "disarm_cpu_bf16_repack", "draws", "effective_quantization", "examples", "fact_update_pairs", "finetune", "first_sentence", "footprint_mb", "gold_hits", "house_pair", "load_adapter", "load_base", "load_tuned", "measure_footprints", "memory", "merge_adapter", "noted_entries", "pairs", "param_answer", "project_memory", "public_callable", "qa_documents", "quantization", "quote_for", "raft_data", "raft_pairs", "raft_training_set", "read_training_log", "refresh_pairs", "release_labels", "removed_answer", "resolve_dtype", "resolve_quantization", "run_key", "save_adapter", "short", "spec_params", "steps_for", "summary", "train_draws", "train_or_load_adapter", "tuned_adapters", "unwrap", "update_facts", "update_pairs", "version_hit"]
