"""Building the NumPy corpora offline: download each version's wheel, run the extraction script under it, and write
`data/corpora/numpy-<version>.jsonl`; `run_under_numpy` also runs the QA set's verification code.

The runtime never needs this: it reads the written corpora (`ragft.data.corpus.load_corpus`). Run through
`python -m ragft.builders corpora`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ..core.io import write_jsonl
from ..core.paths import corpus_path
from ..data.corpus import Document

LICENSE_NOTICE = (
    "Text extracted from NumPy's docstrings and signatures. Copyright (c) 2005-2025, NumPy Developers. "
    "BSD-3-Clause; see data/corpora/LICENSE-numpy.txt."
)


def api_document(rec: dict, version: str) -> Document:
    """Turn one record of `_scripts/extract_numpy_api.py` into a Document (header line with the signature, then the docstring)."""
    name = rec["name"]
    if rec["kind"] == "removal_notice":
        short = name.removeprefix("numpy.")
        advice = rec["advice"].strip() or "NumPy gives no replacement."
        text = (f"{name} (np.{short}) was removed from NumPy's main namespace in NumPy 2.0. "
                f"Accessing it raises AttributeError. NumPy's advice: {advice}")
        return Document(doc_id=f"removed:{name}", text=text, title=f"{name} (removed in 2.0)",
                        metadata={"name": name, "kind": "removal_notice", "signature": "", "version": version,
                                  "advice": rec["advice"]})
    header = f"{name}{rec['signature']}" if rec["signature"] else name
    alias = f"\n\n{name} is an alias of {rec['alias_of']}." if rec.get("alias_of") else ""
    text = f"{header}\n\n{rec['docstring']}{alias}".strip()
    return Document(doc_id=name, text=text, title=name,
                    metadata={"name": name, "kind": rec["kind"], "signature": rec["signature"], "version": version,
                              "alias_of": rec.get("alias_of")})


def numpy_site(version: str, workdir: str | os.PathLike) -> Path:
    """Download NumPy `version`'s wheel for this Python with pip and unzip it; return the folder to put on PYTHONPATH."""
    workdir = Path(workdir)
    site = workdir / f"site-{version}"
    if (site / "numpy").is_dir():
        return site
    wheels = workdir / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", f"numpy=={version}",
           "-d", str(wheels)]
    subprocess.run(cmd, check=True)
    (wheel,) = [w for w in wheels.glob(f"numpy-{version}-*.whl")]
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    return site


def run_under_numpy(version: str, args: list[str], workdir: str | os.PathLike, stdin: str | None = None) -> str:
    """Run `python args...` with NumPy `version` (and nothing of ragft's environment) first on the path; return stdout."""
    site = numpy_site(version, workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run([sys.executable, "-s", *args], input=stdin, env=env, cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"running under numpy {version} failed:\n{out.stderr[-2000:]}")
    return out.stdout


def build_numpy_corpus(version: str, workdir: str | os.PathLike, out: str | os.PathLike | None = None) -> list[Document]:
    """Extract NumPy `version`'s public API into `data/corpora/numpy-<version>.jsonl` (written atomically)."""
    script = Path(__file__).parent / "_scripts" / "extract_numpy_api.py"
    stdout = run_under_numpy(version, [str(script)], workdir)
    docs = [api_document(json.loads(line), version) for line in stdout.splitlines() if line.strip()]
    write_jsonl(out or corpus_path(version), (d.to_json() for d in docs))
    return docs
