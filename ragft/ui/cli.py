"""The `ragft` command: index a folder of your own documents (or a corpus JSONL), keep the index in sync, search it
and ask it questions.

    ragft index SOURCE --out PATH [--chunker structure --chunk-size 200]
    ragft update PATH SOURCE
    ragft search PATH (--query TEXT | --queries FILE.jsonl) -k 5 [--mode dense|bm25|hybrid] [--fusion convex|rrf]
                 [--threshold X] --json
    ragft ask INDEX "question" [--no-retrieval] [--adapter PATH] [-k N] [--threshold X] [--name-check]
              [--mode dense|bm25|hybrid]
    ragft train [--pairs FILE.jsonl] [--raft] [--steps 60]   (prints the adapter folder for `ragft ask --adapter`)
    add `--backend pgvector [--db URL]` to index: the index lives in PostgreSQL and PATH is a small pointer file
    naming it, which search, update and ask follow (pgvector/pointer.py)

Bad input ends with a one-line `ragft: error: ...` and exit status 2, never a traceback, with the files on disk as they
were; numbers are checked at parse time (inputs.py); skipped files are listed. Writers of one hnswlib index queue on its
lock, and each reports what it did.
Each subcommand is one `register_*` function that adds its parser, listed in SUBCOMMANDS. The command only parses
arguments and prints: chunking, indexing, retrieval and generation live in their own modules.
Introduced in notebooks/02_hnsw_retrieval.ipynb (`ask`: notebooks/03_rag.ipynb).
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

from ..core.io import DataError, recover_folder
from ..core.paths import NUMPY_VERSIONS, task_pairs_path
from ..core.profiles import ANSWER_MAX_NEW_TOKENS
from ..data.corpus import MIGRATION_CORPUS, corpus_versions, load_corpus, load_folder, with_change_notes
from ..data.datasets import load_train_pairs
from ..generation.decoding import PASSAGE_ORDER, PASSAGE_ORDERS
from ..generation.models import DEFAULT_LLM, ModelUnavailable, load_llm
from ..retrieval.chunking import DEFAULT_CHUNK_OVERLAP, DEFAULT_CHUNK_SIZE, STRATEGIES, ChunkConfig, file_type_summary
from ..retrieval.embeddings import BACKENDS, ENCODERS, get_encoder
from ..retrieval.hnsw import DenseIndex, HnswConfig, writer_lock
from ..retrieval.index import IndexLoadError
from ..retrieval.pgvector.pointer import name_for_path, read_pointer, write_pointer
from ..retrieval.retrievers import (
    DEFAULT_FUSION,
    DEFAULT_FUSION_WEIGHT,
    FUSIONS,
    MODES,
    build_retriever,
    retriever_from_index,
)
from ..systems.arms import AnswerSettings, ArmSettings, RaftRecipe, RetrievalSettings, TrainingSettings
from ..systems.pipeline import RagConfig, RagPipeline
from ..training import finetune
from ..training.adapters import check_adapter_files, load_adapter
from ..training.draws import raft_data
from ..training.pairs import NO_ORACLE_TARGETS
from .inputs import EXIT_USAGE, CliError, OneLineParser, check_text, number, printable, read_queries

__all__ = ["EXIT_USAGE", "CliError", "build_parser", "main", "read_queries"]


def _load_source(source: str, skipped: list | None = None):
    """Documents from a folder (.txt/.md/.rst/.html), a corpus JSONL, a NumPy version, several ("1.26.4,2.4.6") or
    "numpy-migration" (1.26.4 and 2.4.6 in one index, ids tagged with the version); skipped files go to stderr
    (and, when given, into `skipped` as (file, reason) pairs)."""
    path = Path(source)
    if path.is_dir():
        docs, report = load_folder(path)
        for where, why in report.problems:
            print(f"ragft: {where}: {why}", file=sys.stderr)
        if skipped is not None:
            skipped += report.problems
        return docs
    try:
        builtin = corpus_versions(source) is not None
    except ValueError as e:
        raise CliError(str(e)) from None
    if builtin or path.suffix == ".jsonl":
        return load_corpus(source)
    if not path.exists():
        raise CliError(f"no such file or folder: {source}")
    raise CliError(f"{source}: expected a folder of .txt/.md/.rst/.html files or a corpus .jsonl file")


def add_change_notes_arg(p) -> None:
    """--change-notes-since, shared by index and update."""
    p.add_argument("--change-notes-since", metavar="VERSION", default=None, choices=NUMPY_VERSIONS,
                   help="SOURCE is a NumPy version: add to each API whose keyword arguments changed since VERSION a "
                        "'Parameter changes' section saying which (as notebook 05's synced index; e.g. 1.26.4)")


def _notes_version(source: str, since: str | None) -> str | None:
    """SOURCE's NumPy version when --change-notes-since is given (checked before anything is loaded), else None."""
    if since is None:
        return None
    try:
        versions = corpus_versions(source)
    except ValueError:
        versions = None
    if versions is None or len(versions) != 1:
        raise CliError(f"--change-notes-since compares two NumPy releases: SOURCE must be one NumPy version "
                       f"({', '.join(NUMPY_VERSIONS)}), not {source!r}")
    if versions[0] == since:
        raise CliError(f"--change-notes-since {since} is SOURCE's own version: name an older release")
    return versions[0]


def _load_noted(source: str, since: str | None, skipped: list | None = None):
    """`_load_source`, with the change notes since `since` (`corpus.with_change_notes`) when it is given."""
    version = _notes_version(source, since)
    docs = _load_source(source, skipped)
    if version is None:
        return docs
    noted = with_change_notes(docs, load_corpus(since), since, version)
    n = sum("change_notes" in d.metadata for d in noted)
    print(f"change notes since NumPy {since}: {n} of {len(noted)} documents", file=sys.stderr)
    return noted


def add_backend_args(p) -> None:
    """--backend and --db, shared by index, update and search."""
    p.add_argument("--backend", default="hnswlib", choices=("hnswlib", "pgvector"),
                   help="hnswlib: an index folder (default); pgvector: the index lives in PostgreSQL, PATH is a pointer "
                        "file naming it (search, update and ask follow it without --backend)")
    p.add_argument("--db", metavar="URL", default=None, help="PostgreSQL URL for --backend pgvector (default: "
                   "$RAGFT_DATABASE_URL, else an embedded server under the cache)")


# ---------------------------------------------------------------------------------------------------------- index
def register_index(sub) -> None:
    p = sub.add_parser("index", help="build an HNSW index from a folder of documents or a corpus JSONL",
                       description="Chunk, embed (cached) and index SOURCE into the folder PATH.")
    p.add_argument("source", metavar="SOURCE", help="a folder of .txt/.md/.rst/.html files (doc_id = relative path), "
                   "a corpus .jsonl (doc_id, text per line), a NumPy version such as 2.4.6, or several in one index "
                   f"(\"1.26.4,2.4.6\", or {MIGRATION_CORPUS} for 1.26.4 and 2.4.6: doc ids tagged numpy.sort@1.26.4)")
    p.add_argument("--out", required=True, metavar="PATH", help="index folder to write")
    p.add_argument("--chunker", default="structure", choices=STRATEGIES, help="chunking strategy (default: structure)")
    p.add_argument("--chunk-size", type=number(int, "--chunk-size", low=1), default=DEFAULT_CHUNK_SIZE,
                   help="tokens per chunk (default: %(default)s)")
    p.add_argument("--chunk-overlap", type=number(int, "--chunk-overlap", low=0), default=DEFAULT_CHUNK_OVERLAP,
                   help="tokens shared by neighbouring chunks")
    p.add_argument("--embedder", default="minilm", choices=ENCODERS, help="minilm (default) or the weak hashing encoder")
    p.add_argument("--embedding-backend", default="torch", choices=BACKENDS,
                   help="minilm only: torch (default), onnx / onnx-int8 (the onnx extra) or openvino / openvino-int8 "
                        "(the openvino extra; fastest on 2 cores)")
    p.add_argument("--M", type=number(int, "--M", low=2), default=16, help="HNSW links per node")
    p.add_argument("--ef-construction", type=number(int, "--ef-construction", low=1), default=200,
                   help="HNSW build-time beam width")
    p.add_argument("--ef", type=number(int, "--ef", low=1), default=64, help="HNSW default query-time beam width (>= k)")
    p.add_argument("--force", action="store_true", help="overwrite an existing index at PATH")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_change_notes_arg(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_index)


def cmd_index(args) -> int:
    out = Path(check_text(args.out, "--out", _PATH_FIX))
    if args.backend == "pgvector":
        return _pgvector_index(args)
    _say_recovered(out, recover_folder(out))
    if out.exists() and not args.force:
        raise CliError(f"{out} already exists: use `ragft update {out} SOURCE` to sync it, or --force to rebuild")
    skipped: list[tuple[str, str]] = []
    cfg, hnsw, docs = _index_inputs(args, skipped)
    t0 = time.perf_counter()
    embedder = get_encoder(args.embedder, args.embedding_backend) if args.embedder == "minilm" else args.embedder
    index = build_retriever(docs, "dense", cfg, embedder=embedder, show_progress=not args.quiet, hnsw=hnsw)
    with writer_lock(out, on_wait=lambda: _say_waiting(out)):
        if out.exists() and not args.force:  # another `ragft index` wrote it while this one was embedding
            raise CliError(f"{out} was created meanwhile by another ragft: sync it with `ragft update {out} SOURCE`, "
                           "or --force to rebuild")
        index.save(out)
    print(f"indexed {len(docs)} documents as {len(index)} chunks ({args.chunker}, chunk_size {args.chunk_size}) with "
          f"{index.encoder.model_id} in {time.perf_counter() - t0:.1f} s -> {out}", file=sys.stderr)
    _print_file_types(docs, index.chunks, skipped)
    return 0


def _print_file_types(docs, chunks, skipped) -> None:
    """Per file type: files, chunks, mean and max chunk tokens, files skipped (the reasons are listed above)."""
    rows = file_type_summary(docs, chunks, skipped)
    w = max([10, *(len(r["type"]) for r in rows)])
    print(f"{'type':{w}s} {'files':>6s} {'chunks':>7s} {'mean tok':>9s} {'max tok':>8s} {'skipped':>8s}", file=sys.stderr)
    for r in rows:
        print(f"{r['type']:{w}s} {r['files']:6d} {r['chunks']:7d} {r['mean_tokens']:9.1f} {r['max_tokens']:8d} "
              f"{r['skipped']:8d}", file=sys.stderr)


def _index_inputs(args, skipped: list | None = None):
    """(chunk config, HNSW config, documents) from `ragft index`'s arguments; bad settings become CliError. Files the
    folder loader skipped are added to `skipped` as (file, reason) pairs."""
    try:
        cfg = ChunkConfig(args.chunker, args.chunk_size, args.chunk_overlap)
        hnsw = HnswConfig(args.M, args.ef_construction, args.ef)
    except ValueError as e:
        raise CliError(str(e)) from None
    return cfg, hnsw, _load_noted(args.source, args.change_notes_since, skipped)


_PATH_FIX = "choose a path whose name is UTF-8 (hnswlib and PostgreSQL take no other)"


def _say_waiting(path) -> None:
    print(f"ragft: {path} is being written by another ragft process: waiting for it to finish", file=sys.stderr)


def _say_recovered(path, old) -> None:
    if old is not None:
        print(f"ragft: recovered {path} from {old.name}, left by a write killed between its two renames (the index "
              "is as before that write)", file=sys.stderr)


def _pgvector_index(args) -> int:
    """`ragft index --backend pgvector`: the tables under a name unique to PATH, and a pointer file at PATH naming them."""
    from ..retrieval.pgvector.store import PgVectorIndex  # psycopg and the embedded server only when asked for

    out = Path(args.out)
    if out.exists() and read_pointer(out) is None:
        raise CliError(f"{out} exists and is not a pgvector index pointer: give --out another path")
    if out.exists() and not args.force:
        raise CliError(f"{out} already exists: use `ragft update {out} SOURCE` to sync it, or --force to rebuild")
    # the hnswlib path refuses a missing extra in get_encoder: so does this one (it used to embed with torch silently)
    encoder = get_encoder(args.embedder, args.embedding_backend if args.embedder == "minilm" else "torch")
    cfg, hnsw, docs = _index_inputs(args)
    with PgVectorIndex.build(docs, encoder, name_for_path(out), args.db, hnsw, cfg, replace=args.force,
                             show_progress=not args.quiet) as index:
        write_pointer(out, index.name, None if index.embedded else index.url, index.where)
        print(f"indexed {len(docs)} documents as {len(index)} chunks with {index.encoder.model_id} in "
              f"{index.build_seconds:.1f} s -> PostgreSQL {index.where}, index {index.name} (named by {out})",
              file=sys.stderr)
    return 0


def _pgvector_target(args, path: str) -> tuple[str, str | None] | None:
    """(index name, database URL) when PATH is a pgvector index: the pointer file `ragft index` wrote there, or, with
    --backend pgvector, PATH itself as the name (an index made before pointer files); None for an hnswlib folder."""
    pointer = read_pointer(path)
    if pointer is not None:
        return pointer["name"], args.db or pointer.get("db")
    return (path, args.db) if args.backend == "pgvector" else None


# --------------------------------------------------------------------------------------------------------- update
def register_update(sub) -> None:
    p = sub.add_parser("update", help="sync an index to a changed source (re-embeds only what changed)",
                       description="Add new documents, drop removed ones, re-index changed ones (by content hash).")
    p.add_argument("path", metavar="PATH", help="index made by `ragft index` (its folder, or its pgvector pointer file)")
    p.add_argument("source", metavar="SOURCE", help="the changed folder or corpus JSONL")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_change_notes_arg(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_update)


def cmd_update(args) -> int:
    check_text(args.path, "PATH", _PATH_FIX)
    target = _pgvector_target(args, args.path)
    if target is not None:  # one transaction in the server: writers queue there
        from ..retrieval.pgvector.store import open_retriever

        docs = _load_noted(args.source, args.change_notes_since)
        with open_retriever(target[0], db_url=target[1]) as index:
            print(index.sync(docs, show_progress=not args.quiet), file=sys.stderr)
        return 0
    path = Path(args.path)
    _say_recovered(path, recover_folder(path))
    if not path.is_dir():  # before the lock: a refused update leaves nothing behind, not even a lock file
        raise CliError(f"no index at {path}: build one with `ragft index SOURCE --out {path}`")
    docs = _load_noted(args.source, args.change_notes_since)
    # load, sync and save under the folder's lock: a second writer waits, then syncs from what this one saved, so
    # neither update is lost and each report says what its own save changed
    with writer_lock(path, on_wait=lambda: _say_waiting(path)):
        index = DenseIndex.load(path)
        _say_recovered(path, index.recovered_from)
        report = index.sync(docs, show_progress=not args.quiet)
        index.save(path)
    print(report, file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------- search
def register_search(sub) -> None:
    p = sub.add_parser("search", help="search an index; --json prints one JSON line per query",
                       description="Print the top k chunks for each query, best first.")
    p.add_argument("path", metavar="PATH", help="index made by `ragft index` (its folder, or its pgvector pointer file)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", metavar="TEXT", help="one query")
    q.add_argument("--queries", metavar="FILE.jsonl", help='a JSONL file of {"qid": ..., "query": ...} lines')
    p.add_argument("-k", "--top-k", dest="top_k", type=number(int, "-k", low=1), default=5,
                   help="results per query (default: 5)")
    # hybrid by default: convex fusion beat dense on NumPy's dev questions (notebook 02: MRR 0.880 vs 0.784) and on the
    # own-documents benchmark (README: recall@5 / MRR@10 0.986 / 0.954 vs dense 0.960 / 0.879)
    p.add_argument("--mode", default="hybrid", choices=MODES, help="hybrid (dense + BM25, default), dense (HNSW), "
                   "exact or bm25")
    p.add_argument("--fusion", default=DEFAULT_FUSION, choices=FUSIONS,
                   help="hybrid on an hnswlib index: convex (min-max normalized scores, default) or rrf")
    p.add_argument("--fusion-weight", type=number(float, "--fusion-weight", low=0, high=1), default=DEFAULT_FUSION_WEIGHT,
                   help="hybrid convex only: the dense share in [0, 1] (default: %(default)s)")
    p.add_argument("--threshold", type=number(float, "--threshold"), default=None,
                   help="drop hits scoring below it (cosine for dense/exact/hybrid, raw BM25 score for bm25)")
    p.add_argument("--ef", type=number(int, "--ef", low=1), default=None,
                   help="HNSW query beam width (default: the index's)")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip malformed --queries lines (listed on stderr)")
    p.add_argument("--json", action="store_true", help="one JSON object per query on stdout")
    add_backend_args(p)
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    if args.query is not None:
        if not args.query.strip():
            raise CliError("empty query: give some text to search for")
        queries = [{"query": check_text(args.query, "--query")}]
    else:
        queries = read_queries(args.queries, args.skip_bad_lines)
    check_text(args.path, "PATH", _PATH_FIX)
    if args.ef is not None and args.ef < args.top_k:
        print(f"ragft: --ef {args.ef} is below -k {args.top_k}; HNSW needs ef >= k, using ef={args.top_k}", file=sys.stderr)
    target = _pgvector_target(args, args.path)
    if target is not None:
        from ..retrieval.pgvector.store import open_retriever  # psycopg and the embedded server only when asked for

        index = retriever = open_retriever(target[0], args.mode, target[1])
    else:
        index = DenseIndex.load(args.path)
        _say_recovered(args.path, index.recovered_from)
        retriever = retriever_from_index(index, args.mode, args.fusion, args.fusion_weight)
    if args.ef is not None:
        index.config.ef = max(args.ef, args.top_k)
    if args.top_k > len(index):
        print(f"ragft: -k {args.top_k} is more than the {len(index)} chunks in the index; returning at most {len(index)}",
              file=sys.stderr)
    try:
        results = retriever.search_batch([q["query"] for q in queries], top_k=args.top_k, threshold=args.threshold)
    finally:
        if target is not None:
            index.close()
    for q, hits in zip(queries, results, strict=True):
        if args.json:
            print(json.dumps({**q, "results": [h.to_json() for h in hits]}, ensure_ascii=False))
        else:  # one row per hit: a newline or tab in a file name is shown escaped, never splitting the table
            print(f"# {printable(str(q.get('qid', '')))}{': ' if 'qid' in q else ''}{printable(q['query'])}")
            for h in hits:
                snippet = printable(" ".join(h.text.split())[:100])
                print(f"{h.rank + 1:3d}. {h.score:.4f}  {printable(h.chunk_id):40s}  {snippet}")
            if not hits:
                print("    (no results" + (f" above threshold {args.threshold})" if args.threshold is not None else ")"))
    return 0


# ------------------------------------------------------------------------------------------------------------ ask
def register_ask(sub) -> None:
    p = sub.add_parser("ask", help="answer a question with retrieved context (RAG) and show sources and timings",
                       description="Retrieve the top k chunks for QUESTION from INDEX, put them in a numbered, "
                       "delimited prompt and generate an answer greedily.")
    p.add_argument("index", metavar="INDEX", help="index made by `ragft index`: its folder or pgvector pointer file "
                   "(not read with --no-retrieval)")
    p.add_argument("question", metavar="QUESTION", help="the question, in quotes")
    p.add_argument("--no-retrieval", action="store_true", help="answer from the model alone (the base arm)")
    p.add_argument("--adapter", metavar="PATH", help="a LoRA adapter saved by ragft (refused if made for another base)")
    p.add_argument("-k", "--top-k", dest="top_k", type=number(int, "-k", low=1), default=RetrievalSettings.top_k,
                   help="passages to retrieve (default: %(default)s, as notebook 05's arms)")
    p.add_argument("--threshold", type=number(float, "--threshold"), default=None,
                   help="drop passages scoring below it; with none left the answer is the house abstention")
    p.add_argument("--passage-order", default=PASSAGE_ORDER, choices=PASSAGE_ORDERS,
                   help="where the best passage sits in the prompt (default: %(default)s, next to the question)")
    p.add_argument("--name-check", action="store_true",
                   help="abstain without generating when the question names an API in backticks (`np.X`) and no "
                        "retrieved passage documents it (notebook 05's name check)")
    p.add_argument("--mode", default="hybrid", choices=MODES, help="retriever over the index (default: hybrid, dense + "
                   "BM25 as `ragft search`)")
    p.add_argument("--embedder", default=None, help="query encoder (default: the one the index was built with); "
                   "another one is refused")
    p.add_argument("--contrast", type=number(float, "--contrast", low=0, why=", 0 = off"), default=None,
                   metavar="ALPHA",
                   help="context-aware decoding: contrast each step of the answer's first line with the question "
                        f"asked without its passages (0 = off; default: {AnswerSettings.raft_contrast}, the RAFT arm's, "
                        "with --adapter, else 0)")
    p.add_argument("--model", default=DEFAULT_LLM, help="LLM by registry name (default: %(default)s)")
    p.add_argument("--max-new-tokens", type=number(int, "--max-new-tokens", low=1), default=ANSWER_MAX_NEW_TOKENS,
                   help="cap on the answer's length; generation stops at the answer's end (default: %(default)s)")
    p.add_argument("--max-prompt-tokens", type=number(int, "--max-prompt-tokens", low=1), default=1024,
                   help="prompt budget; lowest-ranked passages are cut")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    add_backend_args(p)
    p.set_defaults(func=cmd_ask)


def cmd_ask(args) -> int:
    """Answer `args.question`; print the answer, its sources (doc ids, scores) and the retrieve/prompt/generate time."""
    if not args.question.strip():
        raise CliError("empty question: give some text to ask")
    check_text(args.question, "the question")
    check_text(args.index, "INDEX", _PATH_FIX)
    if args.adapter:  # a damaged adapter file is named now, not as a SafetensorError after the model has loaded
        check_adapter_files(args.adapter)
    if args.contrast is None:  # a tuned adapter answers as notebook 05's RAFT arm does; the untuned model lost with it
        args.contrast = AnswerSettings.raft_contrast if args.adapter else 0.0
    retriever = None
    target = None if args.no_retrieval else _pgvector_target(args, args.index)
    if not args.no_retrieval:
        encoder = get_encoder(args.embedder) if args.embedder else None
        if target is not None:
            from ..retrieval.pgvector.store import open_retriever  # psycopg and the embedded server only when asked for

            retriever = open_retriever(target[0], args.mode, target[1], encoder=encoder)
        else:
            retriever = retriever_from_index(DenseIndex.load(args.index, encoder=encoder), args.mode)
    try:
        model, tok = _load_model(args.model, args.adapter)
        # a tuned adapter LEARNED the format: it gets the prompt it was trained on (no system prompt, passages cut as
        # the arms of notebook 05 cut them), as systems.make_arms does; the base model is TOLD the format
        tuned = {"system": None, "base_system": None, "passage_chars": RetrievalSettings.passage_chars} if args.adapter else {}
        pipe = RagPipeline(retriever, model, tok, RagConfig(top_k=args.top_k, threshold=args.threshold,
                                                            passage_order=args.passage_order,
                                                            contrast=args.contrast, name_check=args.name_check,
                                                            max_new_tokens=args.max_new_tokens,
                                                            max_prompt_tokens=args.max_prompt_tokens, **tuned))
        answer = pipe.answer(args.question, retrieval=not args.no_retrieval)
    finally:
        if target is not None and retriever is not None:
            retriever.close()
    for w in answer.warnings:
        print(f"ragft: {w}", file=sys.stderr)
    if args.json:
        print(json.dumps({**answer.to_json(), "model": args.model, "adapter": args.adapter, "contrast": args.contrast},
                         ensure_ascii=False))
        return 0
    print(answer.text)
    print()
    if answer.passages:
        print("Sources:")
        for h in answer.passages:
            print(f"  [{h.rank + 1}] {h.score:.4f}  {h.doc_id}")
    elif not args.no_retrieval:
        print("Sources: none (no passage above the threshold)" if answer.abstained_no_context else "Sources: none")
    for h in answer.cut:
        print(f"  cut (prompt budget): {h.doc_id}")
    t = answer.timings
    speed = f", {answer.tokens_per_s:.1f} tok/s" if answer.tokens_per_s and answer.tokens_per_s == answer.tokens_per_s else ""
    print(f"Time: retrieve {t.retrieve_s * 1000:.0f} ms, prompt {t.prompt_s * 1000:.0f} ms, generate {t.generate_s:.2f} s"
          f" ({answer.n_prompt_tokens} prompt tokens, {answer.n_new_tokens} new{speed})")
    return 0


def _load_model(name: str, adapter: str | None):
    """The LLM (and its LoRA adapter, if any) with the loading bar off; unknown or missing models become CliError."""
    # transformers takes about a second to import: imported here so that `ragft --help`, index and search start fast.
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Loading weights" bar on stderr would bury the answer and its errors
    try:
        model, tok = load_llm(name)
    except (ModelUnavailable, KeyError) as e:
        raise CliError(str(e.args[0] if e.args else e)) from None
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if adapter:
        model = load_adapter(model, adapter)  # AdapterMismatch (a ValueError) if made for another base model
        model.eval()
    return model, tok


# ----------------------------------------------------------------------------------------------------- dispatching
# Each register_* adds one subcommand and sets `func`; to add a subcommand, write its register_* and list it here.
# --- train ------------------------------------------------------------------------------------------------------------
def register_train(sub) -> None:
    p = sub.add_parser("train", help="train a LoRA adapter (or take it from the cache) on the built-in or your own pairs",
                       description="Train a LoRA adapter on prompt/completion pairs (the built-in task pairs, "
                       "or your JSONL) and print its folder, for `ragft ask --adapter`. Runs are cached by their "
                       "data and settings (a repeat returns at once) and resume after an interruption.")
    p.add_argument("--pairs", metavar="FILE.jsonl", default=None,
                   help="your pairs: one JSON object a line with prompt/question and completion/answer "
                   "(default: data/train/task_pairs.jsonl, the QA set's question shapes on other APIs)")
    p.add_argument("--raft", action="store_true", help="give each pair BM25 passages, as notebook 05's RAFT arm "
                   "trains (the gold passage in 80%% of answerable pairs; from the NumPy 2.4.6 docs for the built-in "
                   "pairs, 1.26.4 for --pairs FILE)")
    p.add_argument("--no-oracle-target", choices=NO_ORACLE_TARGETS, default=None,
                   help="with --raft: what a pair without its gold passage is trained to say: the real 'answer' (as "
                   "published) or 'abstain' (default: notebook 05's)")
    p.add_argument("--steps", type=number(int, "--steps", low=1), default=60, help="optimizer steps (default: %(default)s)")
    # 0 would train nothing (and used to fall back to the default silently); above 1 the adapter's weights diverge
    p.add_argument("--lr", type=number(float, "--lr", above=0, high=1, why=": try 1e-4 to 1e-2"), default=None,
                   help="learning rate in (0, 1] (default: ragft.training.finetune.TrainSettings' 2e-3; with --raft, "
                        "RaftRecipe.lr 1e-3)")
    p.add_argument("--lora-r", type=number(int, "--lora-r", low=1), default=16, help="adapter rank (default: %(default)s)")
    p.add_argument("--lora-alpha", type=number(int, "--lora-alpha", low=1, why=": the adapter is scaled by alpha / r, "
                                                                           "so 0 would switch it off"),
                   default=32, help="adapter scale numerator (default: %(default)s)")
    p.add_argument("--model", default=DEFAULT_LLM, help="base LLM by registry name (default: %(default)s)")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines of --pairs instead of stopping")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    """Train (or load from the cache) the adapter; print its folder on stdout and what the run took on stderr."""
    if args.pairs and Path(args.pairs).is_dir():
        raise CliError(f"--pairs {args.pairs} is a folder: give a JSONL file of prompt/completion pairs")
    if args.pairs and not Path(args.pairs).is_file():
        raise CliError(f"no such pairs file: {args.pairs}")
    pairs, report = load_train_pairs(args.pairs or task_pairs_path(), on_error="skip" if args.skip_bad_lines else "raise")
    if not pairs:
        raise CliError(f"no usable pairs in {args.pairs or 'the built-in set'}")
    for where, why in report.problems:
        print(f"ragft: skipped {where}: {why}", file=sys.stderr)
    train = finetune.TrainSettings(steps=args.steps, **({"lr": args.lr} if args.lr is not None else {}))
    if args.raft:  # the RAFT arm's settings (systems.ArmSettings): one pair per example, longer prompts
        arm = ArmSettings(answer=AnswerSettings(llm=args.model),
                          training=TrainingSettings(lora_r=args.lora_r, lora_alpha=args.lora_alpha, train_steps=args.steps),
                          recipe=RaftRecipe(**({"no_oracle_target": args.no_oracle_target} if args.no_oracle_target else {})))
        pairs = raft_data(pairs, arm, None if args.pairs else "task", show_progress=not args.quiet)
        train = replace(arm.raft_train(), **({"lr": args.lr} if args.lr is not None else {}))
    lora = finetune.LoraSettings(lora_r=args.lora_r, lora_alpha=args.lora_alpha)
    if args.quiet:  # transformers' "Loading weights" bar too (imported here: it takes a second, see _load_model)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    path = finetune.train_or_load_adapter(pairs, lora, train, model_name=args.model, show_progress=not args.quiet,
                                          verbose=not args.quiet)
    log = finetune.read_training_log(path)
    print(f"{len(pairs)} pairs, {log['steps']} steps, {log['seconds_per_step']:.1f} s/step when trained; "
          f"loss {log['losses'][0]:.3f} -> {log['losses'][-1]:.3f}", file=sys.stderr)
    print(path)
    return 0


SUBCOMMANDS = [register_index, register_update, register_search, register_ask, register_train]


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="ragft", description="Index, update and search documents with ragft.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    return ap


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning as `ragft: warning: ...`, without the source line Python adds (it names our code, not the input)."""
    print(f"ragft: warning: {message}", file=sys.stderr)


def _os_error(e: OSError) -> str:
    """A system error as one line naming the file, and what to do about a full disk."""
    where = e.filename or "a file"
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"no space left on the device writing {where}: free some space or choose another --out, then run "
                "again (the index on disk is unchanged)")
    return f"{where}: {e.strerror or e}"


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # a refused argument (one line printed) is a status like any other bad input; --help exits
        if e.code == EXIT_USAGE:
            return EXIT_USAGE
        raise
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            warnings.simplefilter("ignore", DeprecationWarning)  # libraries' notes to their callers, as Python's default
            return args.func(args)
    except (CliError, DataError, IndexLoadError, FileNotFoundError, ValueError, KeyError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"ragft: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"ragft: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ragft: interrupted (the index on disk is unchanged: writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
