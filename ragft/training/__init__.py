"""From pairs to adapters: training pairs and RAFT data (`pairs`), the 4-bit base (`quantization`), LoRA fine-tuning
(`finetune`), adapters as files (`adapters`), the RAFT draws (`draws`), memory measured and projected (`memory`).
"""

from . import adapters, draws, finetune, memory, pairs, quantization
from .adapters import (
    ADAPTER_META,
    COMPLETE,
    FORMAT_VERSION,
    AdapterMismatch,
    adapter_info,
    adapter_off,
    check_adapter_base,
    load_adapter,
    load_tuned,
    merge_adapter,
    save_adapter,
)
from .draws import TRAINING_SETS, TunedAdapters, raft_data, train_draws, tuned_adapters
from .finetune import (
    DEFAULT_TARGET_MODULES,
    LENGTH_WINDOW,
    TRAINING_LOG,
    EncodeStats,
    LoraSettings,
    TrainResult,
    TrainSettings,
    adapter_dir,
    add_lora,
    batch_indices,
    collate,
    data_hash,
    dequantized_reference,
    encode_pair,
    encode_pairs,
    eval_loss,
    load_pairs,
    make_optimizer,
    read_training_log,
    run_key,
    split_pairs,
    train_adapter,
    train_or_load_adapter,
)
from .memory import BYTES_PER_PARAM, PeakRSS, dir_mb, footprint_mb, measure_footprints, project_memory, spec_params
from .pairs import (
    MAX_SUMMARY_CHARS,
    NO_ORACLE_TARGETS,
    TOP_LEVEL_PREFIXES,
    UNANSWERABLE_KINDS,
    Demonstrations,
    RaftSettings,
    examples,
    gold_hits,
    house_pair,
    noted_entries,
    public_callable,
    qa_documents,
    quote_for,
    raft_pairs,
    raft_training_set,
    refresh_pairs,
    short,
    summary,
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

__all__ = ["ADAPTER_META", "AdapterMismatch", "BYTES_PER_PARAM", "COMPLETE", "DEFAULT_TARGET_MODULES", "Demonstrations", "EncodeStats", "FORMAT_VERSION", "LENGTH_WINDOW", "LoraSettings", "MAX_SUMMARY_CHARS", "NO_ORACLE_TARGETS", "PeakRSS", "RaftSettings", "TOP_LEVEL_PREFIXES", "TRAINING_LOG", "TRAINING_SETS", "TrainResult", "TrainSettings", "TunedAdapters", "UNANSWERABLE_KINDS", "adapter_dir", "adapter_info", "adapter_off", "adapters", "add_lora", "batch_indices", "bitsandbytes_status", "check_adapter_base", "collate", "data_hash", "dequantized_copy", "dequantized_reference", "dir_mb", "disarm_cpu_bf16_repack", "draws", "effective_quantization", "encode_pair", "encode_pairs", "eval_loss", "examples", "finetune", "footprint_mb", "gold_hits", "house_pair", "load_adapter", "load_base", "load_pairs", "load_tuned", "make_optimizer", "measure_footprints", "memory", "merge_adapter", "noted_entries", "pairs", "project_memory", "public_callable", "qa_documents", "quantization", "quote_for", "raft_data", "raft_pairs", "raft_training_set", "read_training_log", "refresh_pairs", "resolve_dtype", "resolve_quantization", "run_key", "save_adapter", "short", "spec_params", "split_pairs", "summary", "train_adapter", "train_draws", "train_or_load_adapter", "tuned_adapters", "unwrap", "update_pairs", "version_hit"]
