"""What every `ragft` subcommand shares: the help layout (examples kept as written), the --backend/--db options, how a
PATH names a pgvector index, and the messages about paths and writers.

Does not define a subcommand (cli.py, commands_ask.py, commands_train.py) or check numbers and text (inputs.py).
"""

from __future__ import annotations

import argparse
import sys

from ..retrieval.pgvector.pointer import read_pointer

PATH_FIX = "choose a path whose name is UTF-8 (hnswlib and PostgreSQL take no other)"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's help, with an epilog of examples printed as written (one command a line)."""

    def _fill_text(self, text, width, indent):
        if text.startswith("Example"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_backend_args(p) -> None:
    """--backend and --db, shared by index, update, search and ask."""
    p.add_argument("--backend", default="hnswlib", choices=("hnswlib", "pgvector"),
                   help="hnswlib: an index folder; pgvector: the index lives in PostgreSQL, PATH is a pointer file "
                        "naming it (search, update and ask follow it without --backend) (default: hnswlib)")
    p.add_argument("--db", metavar="URL", default=None, help="PostgreSQL URL for --backend pgvector (default: "
                   "$RAGFT_DATABASE_URL, else an embedded server under the cache)")


def pgvector_target(args, path: str) -> tuple[str, str | None] | None:
    """(index name, database URL) when PATH is a pgvector index: the pointer file `ragft index` wrote there, or, with
    --backend pgvector, PATH itself as the name (an index made before pointer files); None for an hnswlib folder."""
    pointer = read_pointer(path)
    if pointer is not None:
        return pointer["name"], args.db or pointer.get("db")
    return (path, args.db) if getattr(args, "backend", "hnswlib") == "pgvector" else None


def say_waiting(path) -> None:
    print(f"ragft: {path} is being written by another ragft process: waiting for it to finish", file=sys.stderr)


def say_recovered(path, old) -> None:
    if old is not None:
        print(f"ragft: recovered {path} from {old.name}, left by a write killed between its two renames (the index "
              "is as before that write)", file=sys.stderr)
