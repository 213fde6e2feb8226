"""From pairs to adapters: training pairs and RAFT data (`pairs`), the 4-bit base (`quantization`), LoRA fine-tuning
(`lora`, `batches`, the accelerate loop `loop`, its launch checks `launch`, the cache `finetune`), adapters as files
(`adapters`), the RAFT draws (`draws`), memory measured and projected (`memory`); `distcheck` is the two-process check.
"""

from . import adapters, batches, draws, finetune, launch, loop, lora, memory, pairs, quantization
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
from .batches import (
    LENGTH_WINDOW,
    EncodeStats,
    batch_indices,
    collate,
    completion_tokens,
    data_hash,
    encode_pair,
    encode_pairs,
    load_pairs,
    shard,
    split_pairs,
)
from .draws import (
    TRAINING_SETS,
    TunedAdapters,
    UpdateRetrain,
    raft_data,
    retrain_on_update,
    train_draws,
    tuned_adapters,
)
from .finetune import TRAINING_LOG, adapter_dir, read_training_log, run_key, train_or_load_adapter
from .launch import LaunchError, check_launch, make_accelerator, one_writer, process_state, wait_for_checkpoint
from .loop import TrainResult, cut_log, eval_loss, gathered_loss, log_dict, micro_loss, train_adapter
from .lora import DEFAULT_TARGET_MODULES, LoraSettings, TrainSettings, add_lora, dequantized_reference, make_optimizer
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

__all__ = ["ADAPTER_META", "AdapterFileError", "AdapterMismatch", "BYTES_PER_PARAM", "COMPLETE", "DEFAULT_TARGET_MODULES", "Demonstrations", "EncodeStats", "FACT_KINDS", "FORMAT_VERSION", "LENGTH_WINDOW", "LaunchError", "LoraSettings", "MAX_SUMMARY_CHARS", "NO_ORACLE_TARGETS", "PeakRSS", "RaftSettings", "TOP_LEVEL_PREFIXES", "TRAINING_LOG", "TRAINING_SETS", "TrainResult", "TrainSettings", "TunedAdapters", "UpdateRetrain", "UNANSWERABLE_KINDS", "adapter_dir", "adapter_info", "adapter_off", "adapters", "add_lora", "added_sentence", "advice_code", "batch_indices", "batches", "bitsandbytes_status", "check_adapter_base", "check_adapter_files", "check_launch", "collate", "completion_tokens", "cut_log", "data_hash", "dequantized_copy", "dequantized_reference", "dir_mb", "disarm_cpu_bf16_repack", "draws", "effective_quantization", "encode_pair", "encode_pairs", "eval_loss", "examples", "fact_update_pairs", "finetune", "first_sentence", "footprint_mb", "gathered_loss", "gold_hits", "house_pair", "launch", "load_adapter", "load_base", "load_pairs", "load_tuned", "log_dict", "loop", "lora", "make_accelerator", "make_optimizer", "measure_footprints", "memory", "merge_adapter", "micro_loss", "noted_entries", "one_writer", "pairs", "param_answer", "process_state", "project_memory", "public_callable", "qa_documents", "quantization", "quote_for", "raft_data", "raft_pairs", "raft_training_set", "read_training_log", "refresh_pairs", "release_labels", "removed_answer", "resolve_dtype", "resolve_quantization", "retrain_on_update", "run_key", "save_adapter", "shard", "short", "spec_params", "split_pairs", "steps_for", "summary", "train_adapter", "train_draws", "train_or_load_adapter", "tuned_adapters", "unwrap", "update_facts", "update_pairs", "version_hit", "wait_for_checkpoint"]
