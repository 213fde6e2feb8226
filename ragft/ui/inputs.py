"""The checks on what a user types into `ragft`, made before anything loads: numbers finite and in range (argparse
types, so a bad one is refused at parse time), text that is valid UTF-8, a --queries file read line by line (a bad
line is named and can be skipped), and a parser whose every error is one line.
Also how a name read from disk is shown on one line (`printable`).

Does not run a subcommand, read an index or a model, or decide what a subcommand does with its inputs (see `cli.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

EXIT_USAGE = 2


class CliError(Exception):
    """A problem with the user's input; printed as `ragft: error: <message>`."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, with an error printed as ONE line `ragft: error: ...` (no usage block) and exit status 2."""

    def error(self, message: str):
        m = re.fullmatch(r"argument ([^:]+): (.*)", message, re.S)
        if m and any(m.group(2).startswith(opt) for opt in m.group(1).split("/")):
            message = m.group(2)  # our own checks name the option already: no "argument -k/--top-k: -k must ..."
        print(f"ragft: error: {' '.join(message.split())} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def number(kind: type, name: str, low: float | None = None, high: float | None = None, above: float | None = None,
           why: str = ""):
    """An argparse `type` for option `name`: an int or a finite float, at least `low`, above `above`, at most `high`;
    `why` ends the message (say what the bound protects)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name} takes {'a whole number' if kind is int else 'a number'}, not {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{name} must be a finite number, got {text}")
        if low is not None and high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be in [{low:g}, {high:g}], got {text}{why}")
        if low is not None and value < low:
            raise argparse.ArgumentTypeError(f"{name} must be at least {low:g}, got {text}{why}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"{name} must be above {above:g}, got {text}{why}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{name} must be at most {high:g}, got {text}{why}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def not_utf8(text: str) -> str | None:
    """Why `text` cannot be written as UTF-8 (a byte the terminal or a file gave that is not UTF-8, arriving as a lone
    surrogate), or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        code = ord(text[e.start])
        what = f"byte 0x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"lone surrogate {ascii(text[e.start])}"
        return f"{what} at character {e.start + 1}"
    return None


def check_text(text: str, what: str, fix: str = "retype it, or set a UTF-8 locale (e.g. LANG=C.UTF-8)") -> str:
    """`text` if it is valid UTF-8; else CliError naming `what` and what to change (`fix`)."""
    problem = not_utf8(str(text))
    if problem:
        raise CliError(f"{what} \"{printable(str(text))}\" is not valid UTF-8 ({problem}): {fix}")
    return text


def printable(text: str) -> str:
    """`text` on one line: newlines, tabs and other control characters escaped (\\n), and a byte that was not UTF-8
    (a lone surrogate from the file system or argv) shown as the byte (\\xff)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else ascii(c)[1:-1]
                   for c in text)


def read_queries(path: str, skip_bad: bool = False) -> list[dict]:
    """{"qid", "query"} rows of a JSONL file; malformed lines raise CliError listing their numbers (or are skipped)."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"--queries {path} is a folder: give a JSONL file of {{\"qid\": ..., \"query\": ...}} lines")
    if not p.is_file():
        raise CliError(f"no such queries file: {path}")
    rows, bad = [], []
    # line by line from bytes: one line that is not UTF-8 is that line's problem (named, skippable), not the file's
    for lineno, raw in enumerate(p.read_bytes().split(b"\n"), 1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as e:
            bad.append(f"{printable(p.name)}:{lineno}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})")
            continue
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            bad.append(f"{printable(p.name)}:{lineno}: not valid JSON ({e.msg})")
            continue
        if not isinstance(row, dict) or "qid" not in row or not isinstance(row.get("query"), str) or not row["query"].strip():
            bad.append(f"{printable(p.name)}:{lineno}: expected an object with \"qid\" and a non-empty \"query\" string")
            continue
        problem = not_utf8(json.dumps(row, ensure_ascii=False))
        if problem:  # a "\udcff" escape in the JSON: a lone surrogate no encoder or terminal takes
            bad.append(f"{printable(p.name)}:{lineno}: not valid UTF-8 text ({problem})")
            continue
        rows.append({"qid": row["qid"], "query": row["query"]})
    if len(bad) == 1 and not skip_bad:
        raise CliError(f"{bad[0]} (fix the line, or --skip-bad-lines to skip it)")
    if bad and not skip_bad:
        raise CliError(f"{len(bad)} malformed line(s) in {path} (use --skip-bad-lines to skip them):\n  " + "\n  ".join(bad[:50]))
    for b in bad:
        print(f"ragft: skipped {b}", file=sys.stderr)
    if not rows:
        raise CliError(f"no usable queries in {path}")
    return rows
