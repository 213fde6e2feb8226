"""Documents and QA items: NumPy's extracted API reference and users' own folders (`corpus`), the QA set and users'
training pairs (`datasets`). Loaders only: the builders that write `data/` live in `ragft.builders`.
"""

from . import corpus, datasets
from .corpus import (
    CHANGE_NOTES_SECTION,
    MAX_FILE_BYTES,
    MIGRATION_CORPUS,
    MIGRATION_VERSIONS,
    USER_SUFFIXES,
    VERSION_MARK,
    Document,
    change_note_lines,
    changed_params,
    corpus_versions,
    decode_text,
    file_format,
    html_title,
    html_to_markdown,
    html_to_text,
    keyword_params,
    load_corpus,
    load_folder,
    migration_corpus,
    migration_documents,
    plain_doc_id,
    split_doc_id,
    version_title,
    versioned_doc_id,
    versioned_document,
    with_change_notes,
)
from .datasets import (
    ANSWERABLE_SHAPES,
    CHANGED_KINDS,
    COMPLETION_KEYS,
    KINDS,
    ONE_RELEASE_KINDS,
    PAIR_KEYS,
    PROMPT_KEYS,
    REMOVED_TEMPLATES,
    QAItem,
    in_answerable_shape,
    load_qa,
    load_train_pairs,
    sample,
    subset_corpus,
)

__all__ = ["ANSWERABLE_SHAPES", "CHANGED_KINDS", "CHANGE_NOTES_SECTION", "COMPLETION_KEYS", "Document", "KINDS", "MAX_FILE_BYTES", "MIGRATION_CORPUS", "MIGRATION_VERSIONS", "ONE_RELEASE_KINDS", "PAIR_KEYS", "PROMPT_KEYS", "QAItem", "REMOVED_TEMPLATES", "USER_SUFFIXES", "VERSION_MARK", "change_note_lines", "changed_params", "corpus", "corpus_versions", "datasets", "decode_text", "file_format", "html_title", "html_to_markdown", "html_to_text", "in_answerable_shape", "keyword_params", "load_corpus", "load_folder", "load_qa", "load_train_pairs", "migration_corpus", "migration_documents", "plain_doc_id", "sample", "split_doc_id", "subset_corpus", "version_title", "versioned_doc_id", "versioned_document", "with_change_notes"]
