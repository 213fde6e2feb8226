"""The leak check both offline builders apply: every API name the QA set asks about, and every name a training pair
mentions, so no training pair can teach a test answer by heart.

It only reads and compares names; it builds neither the QA set (see `qa`) nor the pairs (see `pairs`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from ..core import house
from ..core.paths import qa_path
from ..training.pairs import short

_API_NAME = re.compile(r"\b(?:np|numpy)\.[A-Za-z_][\w.]*[A-Za-z0-9_]")


def api_names(text: str) -> set[str]:
    """`np.X` / `numpy.X` names in a text, normalized to `np.X`. `api_names("use numpy.float64") -> {'np.float64'}`."""
    return {"np." + m.group(0).split(".", 1)[1] for m in _API_NAME.finditer(text)}


def doc_name(doc_id: str) -> str:
    """`removed:numpy.float_` -> `np.float_`; `numpy.linalg.norm` -> `np.linalg.norm`."""
    return short(doc_id.removeprefix("removed:"))


def qa_asked_names(qa: Iterable[dict]) -> set[str]:
    """Every API name a QA item asks about: its gold documents in every version and the names in its question."""
    names = set()
    for it in qa:
        for ids in it.get("gold_doc_ids", {}).values():
            names |= {doc_name(i) for i in ids}
        names |= api_names(it["question"])
    return names


def pair_names(pair: dict) -> set[str]:
    """Every API name a training pair mentions in its prompt or completion (code and Source line included) or has as
    its doc_id. This is what the leak check compares against `qa_asked_names`."""
    names = api_names(pair["prompt"]) | api_names(pair["completion"])
    names |= {doc_name(s) for s in house.parse(pair["completion"]).sources if "." in s}
    if pair.get("doc_id"):
        names.add(doc_name(pair["doc_id"]))
    return names


def load_qa_rows(path: Path | None = None) -> list[dict]:
    return [json.loads(line) for line in Path(path or qa_path()).read_text().splitlines() if line.strip()]
