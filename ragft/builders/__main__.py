"""Rebuild everything under `data/` from the real NumPy wheels: `python -m ragft.builders [corpora|qa|train|all]`.

corpora: extract the public API of NumPy 1.26.4, 2.0.2 and 2.4.6 (pip download, unzip, import in a subprocess).
qa:      derive migration questions from the differences, and keep only those whose truth holds when run under each version.
train:   derive house-format training pairs (with abstentions) from the 1.26 documentation.
Needs network access to PyPI for the wheels (cached in the work folder). Nothing here is hand-written truth.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from ..core.paths import DATA_DIR, NUMPY_VERSIONS
from .corpora import LICENSE_NOTICE, build_numpy_corpus

NUMPY_LICENSE = """Copyright (c) 2005-2025, NumPy Developers.
All rights reserved.

Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are
met:

    * Redistributions of source code must retain the above copyright
       notice, this list of conditions and the following disclaimer.

    * Redistributions in binary form must reproduce the above
       copyright notice, this list of conditions and the following
       disclaimer in the documentation and/or other materials provided
       with the distribution.

    * Neither the name of the NumPy Developers nor the names of any
       contributors may be used to endorse or promote products derived
       from this software without specific prior written permission.

THIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS
"AS IS" AND ANY EXPRESS OR IMPLIED WARRANTIES, INCLUDING, BUT NOT
LIMITED TO, THE IMPLIED WARRANTIES OF MERCHANTABILITY AND FITNESS FOR
A PARTICULAR PURPOSE ARE DISCLAIMED. IN NO EVENT SHALL THE COPYRIGHT
OWNER OR CONTRIBUTORS BE LIABLE FOR ANY DIRECT, INDIRECT, INCIDENTAL,
SPECIAL, EXEMPLARY, OR CONSEQUENTIAL DAMAGES (INCLUDING, BUT NOT
LIMITED TO, PROCUREMENT OF SUBSTITUTE GOODS OR SERVICES; LOSS OF USE,
DATA, OR PROFITS; OR BUSINESS INTERRUPTION) HOWEVER CAUSED AND ON ANY
THEORY OF LIABILITY, WHETHER IN CONTRACT, STRICT LIABILITY, OR TORT
(INCLUDING NEGLIGENCE OR OTHERWISE) ARISING IN ANY WAY OUT OF THE USE
OF THIS SOFTWARE, EVEN IF ADVISED OF THE POSSIBILITY OF SUCH DAMAGE.
"""


def build_corpora(workdir: Path) -> None:
    out_dir = DATA_DIR / "corpora"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "LICENSE-numpy.txt").write_text(NUMPY_LICENSE)
    (out_dir / "NOTICE").write_text(LICENSE_NOTICE + "\nRegenerate with: python -m ragft.builders corpora\n")
    for v in NUMPY_VERSIONS:
        docs = build_numpy_corpus(v, workdir)
        print(f"numpy {v}: {len(docs)} documents, {sum(len(d.text) for d in docs):,} characters")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ragft.builders", description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="all", choices=["corpora", "qa", "train", "all"])
    ap.add_argument("--workdir", help="where wheels are downloaded and unpacked (default: a temporary folder)")
    args = ap.parse_args(argv)
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ragft-numpy-"))
    try:
        if args.what in ("corpora", "all"):
            build_corpora(workdir)
        if args.what in ("qa", "all"):
            from .qa import build_qa

            build_qa(workdir)
        if args.what in ("train", "all"):
            from .qa import build_train

            build_train()
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
