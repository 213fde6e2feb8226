"""Models, prompts and decoding: loading the LLM (`models`), chat prompts and greedy generation (`decoding`, the only
caller of `model.generate`), optional fast engines (`engines`), one base per model with adapters switched by name
(`pool`) and every generated answer cached (`answers`).
"""

from . import answers, decoding, engines, models, pool
from .answers import CACHE_VERSION, AnswerCache, as_cache, generate_unique, generation_record
from .decoding import (
    ANSWER_NO_REPEAT_NGRAM,
    CONTRAST_PLAUSIBILITY,
    CONTRAST_SCOPE,
    DECODING,
    PASSAGE_HEADER,
    PASSAGE_ORDER,
    PASSAGE_ORDERS,
    PLAIN_SYSTEM_PROMPT,
    PROMPT_LOOKUP_TOKENS,
    RAG_SYSTEM_PROMPT,
    REPETITION_PENALTY,
    STOP_AT_ANSWER_END,
    Generation,
    RagPrompt,
    answer_end_stop,
    answer_no_repeat_ngram,
    banned_next,
    build_prompt,
    chat_messages,
    check_chats,
    check_passage_order,
    context_contrast,
    context_message,
    contrast_decoding,
    cut_after_answer,
    cut_passage,
    encode_chat,
    end_of_answer,
    end_of_source_line,
    escape_passage,
    generate,
    generate_batch,
    passage_block,
    prompt_order,
    truncate_question,
    user_message,
    weights_checksum,
)
from .engines import (
    CT2_QUANTIZATION,
    ENGINES,
    MARKER,
    ORTGENAI_MARKER,
    ORTGENAI_MISSING,
    ORTGENAI_POOL_PRECISION,
    ORTGENAI_PRECISIONS,
    ORTGENAI_SEARCH,
    Ct2Generator,
    EngineUnavailable,
    OrtGenAIGenerator,
    check_decoding,
    converted,
    ct2_convert,
    is_complete,
    ortgenai_convert,
    ortgenai_converted,
)
from .models import (
    choose_dtype,
    converted_dir,
    cpu_has_fast_bf16,
    describe,
    device,
    ensure_converted,
    gguf_file,
    load_gguf,
    load_llm,
)
from .pool import ModelPool, SystemLike, adapter_hash, generate_chats

__all__ = ["ANSWER_NO_REPEAT_NGRAM", "AnswerCache", "CACHE_VERSION", "CONTRAST_PLAUSIBILITY", "CONTRAST_SCOPE", "CT2_QUANTIZATION", "Ct2Generator", "DECODING", "ENGINES", "EngineUnavailable", "Generation", "MARKER", "ModelPool", "ORTGENAI_MARKER", "ORTGENAI_MISSING", "ORTGENAI_POOL_PRECISION", "ORTGENAI_PRECISIONS", "ORTGENAI_SEARCH", "OrtGenAIGenerator", "PASSAGE_HEADER", "PASSAGE_ORDER", "PASSAGE_ORDERS", "PLAIN_SYSTEM_PROMPT", "PROMPT_LOOKUP_TOKENS", "RAG_SYSTEM_PROMPT", "REPETITION_PENALTY", "RagPrompt", "STOP_AT_ANSWER_END", "SystemLike", "adapter_hash", "answer_end_stop", "answer_no_repeat_ngram", "answers", "as_cache", "banned_next", "build_prompt", "chat_messages", "check_chats", "check_decoding", "check_passage_order", "choose_dtype", "context_contrast", "context_message", "contrast_decoding", "converted", "converted_dir", "cpu_has_fast_bf16", "ct2_convert", "cut_after_answer", "cut_passage", "decoding", "describe", "device", "encode_chat", "end_of_answer", "end_of_source_line", "engines", "ensure_converted", "escape_passage", "generate", "generate_batch", "generate_chats", "generate_unique", "generation_record", "gguf_file", "is_complete", "load_gguf", "load_llm", "models", "ortgenai_convert", "ortgenai_converted", "passage_block", "pool", "prompt_order", "truncate_question", "user_message", "weights_checksum"]
