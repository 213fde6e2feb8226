"""Chunks, vectors, indexes and retrievers: chunkers (`chunking`, with `spans`, `docstrings`, `headings`), MiniLM and
hashing encoders (`embeddings`), the retriever interface (`index`), the HNSW and exact indexes (`hnsw`, `exact`),
BM25 and hybrid fusion (`retrievers`), recall-vs-speed curves (`speed`) and what an update costs (`updates`).
It knows nothing of the models that answer, nor of how answers are graded; PostgreSQL lives in `retrieval.pgvector`.
"""

from . import chunking, docstrings, embeddings, exact, headings, hnsw, index, retrievers, spans, speed, updates
from .chunking import (
    SEMANTIC_MIN_TOKENS,
    chunk_documents,
    chunk_fixed,
    chunk_semantic,
    chunk_sentences,
    chunk_table,
    file_type_summary,
    token_lengths,
)
from .docstrings import ENTRY_SECTIONS, chunk_structure, noted_parameter, version_note
from .embeddings import (
    BACKENDS,
    CALIBRATION_TEXTS,
    ENCODERS,
    EmbeddingCache,
    Encoder,
    HashingEncoder,
    OnnxEmbedder,
    OpenVinoEmbedder,
    embedder_path,
    encoder_for_model_id,
    export_onnx,
    export_openvino,
    get_encoder,
    load_embedder,
    model_hash,
)
from .exact import exact_topk, has_faiss
from .headings import (
    HEADER_SEPARATOR,
    HEADING_FORMATS,
    chunk_headings,
    heading_sections,
    markdown_headings,
    rst_headings,
)
from .hnsw import FORMAT, FORMAT_VERSION, DenseIndex, ExactRetriever, HnswConfig, build_hnsw, writer_lock
from .index import (
    Hit,
    IndexFormatError,
    IndexLoadError,
    IndexMismatchError,
    Retriever,
    SyncReport,
    check_query,
    check_top_k,
    chunks_of,
)
from .retrievers import (
    BM25_BACKENDS,
    DEFAULT_FUSION,
    DEFAULT_FUSION_WEIGHT,
    DEFAULT_PROSE_WEIGHT,
    FUSIONS,
    MODES,
    QUERY_STOPWORDS,
    BM25Retriever,
    HybridRetriever,
    asked_names,
    bm25_idf,
    bm25_tokens,
    build_retriever,
    is_prose_question,
    minmax,
    query_tokens,
    retriever_from_index,
    search_table,
    top_indices,
    undocumented_names,
)
from .spans import (
    DEFAULT_CHUNK_OVERLAP,
    DEFAULT_CHUNK_SIZE,
    STRATEGIES,
    Chunk,
    ChunkConfig,
    Tokenizer,
    Tokens,
    chunk_budget,
    get_tokenizer,
    line_blocks,
    make_chunks,
    pack_spans,
    paragraph_spans,
    section_of,
    sections,
    sentence_spans,
    split_spans,
    split_units,
    strip_span,
    token_windows,
)
from .speed import best_time, clustered_vectors, exact_baselines, hnsw_curve, recall_vs_truth
from .updates import changed_chunks, cold_sync_seconds, doc_ids_of, embedding_rate

__all__ = ["BACKENDS", "BM25Retriever", "BM25_BACKENDS", "CALIBRATION_TEXTS", "Chunk", "ChunkConfig", "DEFAULT_CHUNK_OVERLAP", "DEFAULT_CHUNK_SIZE", "DEFAULT_FUSION", "DEFAULT_FUSION_WEIGHT", "DEFAULT_PROSE_WEIGHT", "DenseIndex", "ENCODERS", "ENTRY_SECTIONS", "EmbeddingCache", "Encoder", "ExactRetriever", "FORMAT", "FORMAT_VERSION", "FUSIONS", "HEADER_SEPARATOR", "HEADING_FORMATS", "HashingEncoder", "Hit", "HnswConfig", "HybridRetriever", "IndexFormatError", "IndexLoadError", "IndexMismatchError", "MODES", "OnnxEmbedder", "OpenVinoEmbedder", "QUERY_STOPWORDS", "Retriever", "SEMANTIC_MIN_TOKENS", "STRATEGIES", "SyncReport", "Tokenizer", "Tokens", "asked_names", "best_time", "bm25_idf", "bm25_tokens", "build_hnsw", "build_retriever", "changed_chunks", "check_query", "check_top_k", "chunk_budget", "chunk_documents", "chunk_fixed", "chunk_headings", "chunk_semantic", "chunk_sentences", "chunk_structure", "chunk_table", "chunking", "chunks_of", "clustered_vectors", "cold_sync_seconds", "doc_ids_of", "docstrings", "embedder_path", "embedding_rate", "embeddings", "encoder_for_model_id", "exact", "exact_baselines", "exact_topk", "export_onnx", "export_openvino", "file_type_summary", "get_encoder", "get_tokenizer", "has_faiss", "heading_sections", "headings", "hnsw", "hnsw_curve", "index", "is_prose_question", "line_blocks", "load_embedder", "make_chunks", "markdown_headings", "minmax", "model_hash", "noted_parameter", "pack_spans", "paragraph_spans", "query_tokens", "recall_vs_truth", "retriever_from_index", "retrievers", "rst_headings", "search_table", "section_of", "sections", "sentence_spans", "spans", "speed", "split_spans", "split_units", "strip_span", "token_lengths", "token_windows", "top_indices", "undocumented_names", "updates", "version_note", "writer_lock"]
