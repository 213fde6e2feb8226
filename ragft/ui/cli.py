"""The `ragft` command: index a folder of your own documents (or a corpus JSONL), keep the index in sync, search it,
ask it questions (as one of the evaluated systems) and train an adapter on your own pairs.

    ragft index SOURCE --out PATH [--chunker structure --chunk-size 200] [--change-notes-since 1.26.4]
    ragft update PATH SOURCE
    ragft search PATH (--query TEXT | --queries FILE.jsonl) [-k 5] [--mode hybrid] [--json]
    ragft ask INDEX "question" [--system raft|hybrid|rag|fine-tuned|base] [--adapter PATH] [--name-check]  (commands_ask.py)
    ragft train [--pairs FILE.jsonl] [--raft [--index PATH]] [--steps 60]  (commands_train.py)
    add `--backend pgvector [--db URL]` to index: the index lives in PostgreSQL and PATH is a small pointer file

Bad input ends with a one-line `ragft: error: ...` and exit status 2, never a traceback, with the files on disk as they
were; numbers are checked at parse time (inputs.py); skipped files are listed. Writers of one hnswlib index queue on its
lock. Each subcommand is one `register_*` function listed in SUBCOMMANDS; the command only parses and prints.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
import time
import warnings
from pathlib import Path

from ..core.io import DataError, recover_folder
from ..core.paths import NUMPY_VERSIONS
from ..data.corpus import MIGRATION_CORPUS, corpus_versions, load_corpus, load_folder, with_change_notes
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
from .cli_common import PATH_FIX, HelpFormatter, add_backend_args, pgvector_target, say_recovered, say_waiting
from .commands_ask import register_ask
from .commands_train import register_train
from .inputs import EXIT_USAGE, CliError, OneLineParser, check_text, number, printable, read_queries

__all__ = ["EXIT_USAGE", "CliError", "build_parser", "main", "read_queries"]

INDEX_EXAMPLES = """Examples:
  ragft index ./my-docs --out my.idx
  ragft index 2.4.6 --change-notes-since 1.26.4 --out numpy.idx
  ragft index numpy-migration --out both.idx --embedder hashing
"""
SEARCH_EXAMPLES = """Examples:
  ragft search my.idx --query "How do I rotate the keys?" -k 3
  ragft search numpy.idx --queries questions.jsonl --json
"""
# the best system in three commands, then your own documents
EXAMPLES = """Examples:
  ragft index 2.4.6 --change-notes-since 1.26.4 --out numpy.idx
  ragft ask numpy.idx "What replaces np.float_ in NumPy 2?" --system raft
  ragft search numpy.idx --query "np.float_" -k 3
  ragft index ./my-docs --out my.idx
  ragft update my.idx ./my-docs
  ragft train --raft --pairs mine.jsonl --index my.idx
  ragft ask my.idx "How do I rotate the keys?" --adapter ADAPTER_DIR
"""


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
                        "'Parameter changes' section saying which, as the evaluated systems' index has; e.g. 1.26.4 "
                        "(default: none)")


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


# ---------------------------------------------------------------------------------------------------------- index
def register_index(sub) -> None:
    p = sub.add_parser("index", help="build an HNSW index from a folder of documents or a corpus JSONL",
                       formatter_class=HelpFormatter, epilog=INDEX_EXAMPLES,
                       description="Chunk, embed (cached) and index SOURCE into the folder PATH.")
    p.add_argument("source", metavar="SOURCE", help="a folder of .txt/.md/.rst/.html files (doc_id = relative path), "
                   "a corpus .jsonl (doc_id, text per line), a NumPy version such as 2.4.6, or several in one index "
                   f"(\"1.26.4,2.4.6\", or {MIGRATION_CORPUS} for 1.26.4 and 2.4.6: doc ids tagged numpy.sort@1.26.4)")
    p.add_argument("--out", required=True, metavar="PATH", help="index folder to write (required)")
    p.add_argument("--chunker", default="structure", choices=STRATEGIES, help="chunking strategy (default: %(default)s)")
    p.add_argument("--chunk-size", type=number(int, "--chunk-size", low=1), default=DEFAULT_CHUNK_SIZE,
                   help="tokens per chunk (default: %(default)s)")
    p.add_argument("--chunk-overlap", type=number(int, "--chunk-overlap", low=0), default=DEFAULT_CHUNK_OVERLAP,
                   help="tokens shared by neighbouring chunks (default: %(default)s)")
    p.add_argument("--embedder", default="minilm", choices=ENCODERS, help="minilm or the weak hashing encoder (default: %(default)s)")
    p.add_argument("--embedding-backend", default="torch", choices=BACKENDS,
                   help="minilm only: torch, onnx / onnx-int8 (the onnx extra) or openvino / openvino-int8 "
                        "(the openvino extra; fastest on 2 cores) (default: %(default)s)")
    p.add_argument("--M", type=number(int, "--M", low=2), default=16, help="HNSW links per node (default: %(default)s)")
    p.add_argument("--ef-construction", type=number(int, "--ef-construction", low=1), default=200,
                   help="HNSW build-time beam width (default: %(default)s)")
    p.add_argument("--ef", type=number(int, "--ef", low=1), default=64, help="HNSW query-time beam width, >= k (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="overwrite an existing index at PATH (default: off)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    add_change_notes_arg(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_index)


def cmd_index(args) -> int:
    out = Path(check_text(args.out, "--out", PATH_FIX))
    if args.backend == "pgvector":
        return _pgvector_index(args)
    say_recovered(out, recover_folder(out))
    if out.exists() and not args.force:
        raise CliError(f"{out} already exists: use `ragft update {out} SOURCE` to sync it, or --force to rebuild")
    skipped: list[tuple[str, str]] = []
    cfg, hnsw, docs = _index_inputs(args, skipped)
    t0 = time.perf_counter()
    embedder = get_encoder(args.embedder, args.embedding_backend) if args.embedder == "minilm" else args.embedder
    index = build_retriever(docs, "dense", cfg, embedder=embedder, show_progress=not args.quiet, hnsw=hnsw)
    with writer_lock(out, on_wait=lambda: say_waiting(out)):
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


# --------------------------------------------------------------------------------------------------------- update
def register_update(sub) -> None:
    p = sub.add_parser("update", help="sync an index to a changed source (re-embeds only what changed)",
                       formatter_class=HelpFormatter, epilog="Example:\n  ragft update my.idx ./my-docs\n",
                       description="Add new documents, drop removed ones, re-index changed ones (by content hash).")
    p.add_argument("path", metavar="PATH", help="index made by `ragft index` (its folder, or its pgvector pointer file)")
    p.add_argument("source", metavar="SOURCE", help="the changed folder or corpus JSONL")
    p.add_argument("--quiet", action="store_true", help="no progress bars (default: off)")
    add_change_notes_arg(p)
    add_backend_args(p)
    p.set_defaults(func=cmd_update)


def cmd_update(args) -> int:
    check_text(args.path, "PATH", PATH_FIX)
    target = pgvector_target(args, args.path)
    if target is not None:  # one transaction in the server: writers queue there
        from ..retrieval.pgvector.store import open_retriever

        docs = _load_noted(args.source, args.change_notes_since)
        with open_retriever(target[0], db_url=target[1]) as index:
            print(index.sync(docs, show_progress=not args.quiet), file=sys.stderr)
        return 0
    path = Path(args.path)
    say_recovered(path, recover_folder(path))
    if not path.is_dir():  # before the lock: a refused update leaves nothing behind, not even a lock file
        raise CliError(f"no index at {path}: build one with `ragft index SOURCE --out {path}`")
    docs = _load_noted(args.source, args.change_notes_since)
    # load, sync and save under the folder's lock: a second writer waits, then syncs from what this one saved, so
    # neither update is lost and each report says what its own save changed
    with writer_lock(path, on_wait=lambda: say_waiting(path)):
        index = DenseIndex.load(path)
        say_recovered(path, index.recovered_from)
        report = index.sync(docs, show_progress=not args.quiet)
        index.save(path)
    print(report, file=sys.stderr)
    return 0


# --------------------------------------------------------------------------------------------------------- search
def register_search(sub) -> None:
    p = sub.add_parser("search", help="search an index; --json prints one JSON line per query",
                       formatter_class=HelpFormatter, epilog=SEARCH_EXAMPLES,
                       description="Print the top k chunks for each query, best first.")
    p.add_argument("path", metavar="PATH", help="index made by `ragft index` (its folder, or its pgvector pointer file)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--query", metavar="TEXT", help="one query (this or --queries is required)")
    q.add_argument("--queries", metavar="FILE.jsonl", help='a JSONL file of {"qid": ..., "query": ...} lines')
    p.add_argument("-k", "--top-k", dest="top_k", type=number(int, "-k", low=1), default=5,
                   help="results per query (default: %(default)s)")
    # hybrid by default: convex fusion beat dense on NumPy's dev questions and on your own documents (docs/decisions.md,
    # search_mode)
    p.add_argument("--mode", default="hybrid", choices=MODES, help="hybrid (dense + BM25), dense (HNSW), "
                   "exact or bm25 (default: %(default)s)")
    p.add_argument("--fusion", default=DEFAULT_FUSION, choices=FUSIONS,
                   help="hybrid on an hnswlib index: convex (min-max normalized scores) or rrf (default: %(default)s)")
    p.add_argument("--fusion-weight", type=number(float, "--fusion-weight", low=0, high=1), default=DEFAULT_FUSION_WEIGHT,
                   help="hybrid convex only: the dense share in [0, 1] (default: %(default)s)")
    p.add_argument("--threshold", type=number(float, "--threshold"), default=None,
                   help="drop hits scoring below it: cosine for dense/exact/hybrid, raw BM25 score for bm25 (default: none)")
    p.add_argument("--ef", type=number(int, "--ef", low=1), default=None,
                   help="HNSW query beam width (default: the index's)")
    p.add_argument("--skip-bad-lines", action="store_true", help="skip malformed --queries lines, listed on stderr (default: off)")
    p.add_argument("--json", action="store_true", help="one JSON object per query on stdout (default: off)")
    add_backend_args(p)
    p.set_defaults(func=cmd_search)


def cmd_search(args) -> int:
    if args.query is not None:
        if not args.query.strip():
            raise CliError("empty query: give some text to search for")
        queries = [{"query": check_text(args.query, "--query")}]
    else:
        queries = read_queries(args.queries, args.skip_bad_lines)
    check_text(args.path, "PATH", PATH_FIX)
    if args.ef is not None and args.ef < args.top_k:
        print(f"ragft: --ef {args.ef} is below -k {args.top_k}; HNSW needs ef >= k, using ef={args.top_k}", file=sys.stderr)
    target = pgvector_target(args, args.path)
    if target is not None:
        from ..retrieval.pgvector.store import open_retriever  # psycopg and the embedded server only when asked for

        index = retriever = open_retriever(target[0], args.mode, target[1])
    else:
        index = DenseIndex.load(args.path)
        say_recovered(args.path, index.recovered_from)
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


SUBCOMMANDS = [register_index, register_update, register_search, register_ask, register_train]


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="ragft", formatter_class=HelpFormatter, epilog=EXAMPLES,
                       description="Index your documents, keep the index in sync, search it, ask it questions as one "
                                   "of the evaluated systems, and train an adapter on your own pairs. "
                                   "`ragft COMMAND --help` gives each command's options and their defaults.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
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
        if os.environ.get("RANK", "0") == "0":  # under a launcher every process fails alike: one line, not one each
            print(f"ragft: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if os.environ.get("RANK", "0") == "0":
            print(f"ragft: error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ragft: interrupted (the index on disk is unchanged: writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
