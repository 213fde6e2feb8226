"""Training pairs, built mechanically from the documentation: the house-style pair of one document (`house_pair`, the
ONE template every builder uses), the pairs that refresh a tuned model's knowledge to another release
(`refresh_pairs`, `update_pairs`), and RAFT pairs that put retrieved passages in the prompt (`raft_pairs`).

Runtime code: notebooks build these on the fly. It does not train (see `finetune.py`) and does not write data/
(the offline builders `qa_builder.py` and `build_data.py` do, and import their helpers from here).
Introduced in notebooks/04_qlora_finetuning.ipynb; RAFT in notebooks/05_hybrid.ipynb.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from . import house
from .cache import seeded_unit
from .corpus import Document, load_corpus
from .generation import context_message
from .index import Hit, chunks_of
from .paths import OLD_VERSION
from .retrievers import build_retriever

# The public, callable APIs whose docs become training pairs: functions, ufuncs and classes of these namespaces.
TOP_LEVEL_PREFIXES = ("numpy.", "numpy.linalg.", "numpy.fft.", "numpy.random.", "numpy.strings.", "numpy.char.",
                      "numpy.ma.", "numpy.ndarray.")
MAX_SUMMARY_CHARS = 200  # a longer first paragraph rarely fits the house format's one sentence


# --- one document, one pair -------------------------------------------------------------------------------------------
def short(name: str) -> str:
    """`numpy.linalg.norm` -> `np.linalg.norm`."""
    return "np." + name.removeprefix("numpy.")


def summary(doc: Document) -> str:
    """The docstring's first paragraph as one line ('' if the docstring is empty)."""
    for para in doc.text.split("\n\n")[1:4]:
        line = " ".join(para.split())
        # Cython functions repeat their signature as the docstring's first paragraph; the summary is the next one.
        if re.match(r"^[\w.]+\(.*\)( -> .*)?$", line) or len(line.split()) < 3:
            continue
        return line
    return ""


def examples(doc: Document, max_lines: int = 3) -> str:
    """The first statements of the docstring's Examples section, prompts removed; '' if there are none."""
    lines, out = doc.text.splitlines(), []
    for line in lines:
        s = line.strip()
        if s.startswith(">>> "):
            code = s[4:]
            if code.startswith("import numpy") or code.startswith("np.random.seed"):
                continue
            if len(out) >= max_lines:
                break
            out.append(code)
        elif s.startswith("... ") and out:
            out.append(s[4:])
    return "\n".join(out)


def public_callable(doc: Document) -> bool:
    """A function, ufunc or class of a public namespace, not an alias of another name."""
    return doc.metadata.get("kind") in ("function", "ufunc", "class") and doc.doc_id.startswith(TOP_LEVEL_PREFIXES) \
        and not doc.metadata.get("alias_of")


def house_pair(doc: Document | None, kind: str = "answer") -> dict | None:
    """The house-style pair of one document: "What does `np.X` do?" -> its summary, examples and doc id in the house
    format; None when the document cannot teach the format (not a public callable, no one-sentence summary of at most
    MAX_SUMMARY_CHARS, no example).
    >>> house_pair(doc)["completion"].splitlines()[0]  # doctest: +SKIP
    'Answer: `np.sort`: Return a sorted copy of an array.'
    """
    if doc is None or not public_callable(doc):
        return None
    s, code = summary(doc), examples(doc)
    if not s or not code or len(s) > MAX_SUMMARY_CHARS:
        return None
    name = short(doc.doc_id)
    completion = house.render(f"`{name}`: {s}", code, [doc.doc_id])
    if not house.parse(completion).compliant:  # a multi-sentence summary cannot teach a one-sentence format
        return None
    return {"prompt": f"What does `{name}` do?", "completion": completion, "kind": kind, "doc_id": doc.doc_id}


# --- knowledge updates for the fine-tuned arm -------------------------------------------------------------------------
def refresh_pairs(pairs: Sequence[dict], version: str) -> tuple[list[dict], dict]:
    """The training pairs rebuilt from another release's documentation with `house_pair`, and what that took: counts
    of pairs unchanged, rewritten (the docs changed the answer), dropped (the API is gone or no longer yields a pair)
    and abstentions (kept as they are).

    This is the data half of changing a tuned model's knowledge; here it is mechanical only because the answers were
    derived mechanically. Pairs without a `doc_id` are treated as abstentions.
    """
    docs = {d.doc_id: d for d in load_corpus(version)}
    out, counts = [], {"unchanged": 0, "rewritten": 0, "dropped": 0, "abstentions": 0}
    for p in pairs:
        doc_id = p.get("doc_id")
        if not doc_id:
            counts["abstentions"] += 1
            out.append(p)
            continue
        new = house_pair(docs.get(doc_id))
        if new is None:
            counts["dropped"] += 1
        elif new["completion"] == p["completion"]:
            counts["unchanged"] += 1
            out.append(p)
        else:
            counts["rewritten"] += 1
            out.append({**p, "completion": new["completion"]})
    return out, counts


def update_pairs(old_docs: Sequence, new_docs: Sequence) -> list[dict]:
    """House-style pairs that teach what changed from `old_docs` to `new_docs` (the fine-tuned arm's only way to learn it).

    New or changed documents give their `house_pair`; removal notices give NumPy's advice with a check that runs.
    """
    old = {d.doc_id: d.content_hash for d in old_docs}
    pairs = []
    for d in new_docs:
        if old.get(d.doc_id) == d.content_hash:
            continue
        if d.metadata.get("kind") == "removal_notice":
            name = short(d.metadata.get("name") or d.doc_id.removeprefix("removed:"))
            advice = " ".join(d.metadata.get("advice", "").split()).rstrip(".")
            sentence = f"`{name}` was removed in NumPy 2.0" + (f"; {advice[0].lower()}{advice[1:]}." if advice else ".")
            completion = house.render(sentence, f'hasattr(np, "{name.removeprefix("np.")}")  # False in NumPy 2.x', [d.doc_id])
            if house.parse(completion).compliant:
                pairs.append({"prompt": f"What does `{name}` do?", "completion": completion, "kind": "update_removed",
                              "doc_id": d.doc_id})
        elif pair := house_pair(d, "update_added" if d.doc_id not in old else "update_changed"):
            pairs.append(pair)
    return pairs


# --- the RAFT-style arm: training pairs WITH retrieved passages -------------------------------------------------------
@dataclass(frozen=True)
class RaftSettings:
    """How RAFT pairs are built (Zhang et al. 2024, adapted to an abstention protocol).

    p_oracle: share of answerable pairs whose passages include the gold document (the rest get distractors only, and
    the target becomes the abstention: "the documentation I have" is the passages). top_k passages per pair in all.
    """

    top_k: int = 3
    p_oracle: float = 0.8
    passage_chars: int | None = 600
    seed: int = 0

    def __post_init__(self):
        if not 0 <= self.p_oracle <= 1:
            raise ValueError(f"p_oracle must be in [0, 1], not {self.p_oracle}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, not {self.top_k}")


def raft_pairs(pairs: Sequence[dict], retriever, settings: RaftSettings | None = None,
               show_progress: bool = False) -> list[dict]:
    """House-style pairs turned into RAFT pairs: prompt = `context_message(question, passages)`, built mechanically.

    For an answerable pair (kind "answer", with its doc_id): with probability p_oracle (a hash of the prompt decides)
    the passages are the retriever's top_k with the gold document's first chunk guaranteed among them (inserted at a
    hash-chosen place if retrieval missed it), target = the pair's answer; otherwise top_k distractors (no chunk of the
    gold document), target = the abstention. Abstention pairs keep their target and get the retrieved passages. When
    retrieval returns too few distractors, random chunks (chosen by hash) fill the context, as in RAFT.
    Extra keys: raft = "oracle" | "distractors" | "abstain", gold_retrieved (did retrieval alone find the gold doc).
    """
    s = settings or RaftSettings()
    chunks = chunks_of(retriever)
    first_chunk = {}
    for c in chunks:
        first_chunk.setdefault(c.doc_id, c)
    out = []
    for p in tqdm(pairs, desc="RAFT pairs", disable=not show_progress):
        gold = p.get("doc_id")
        hits = list(retriever.search(p["prompt"], top_k=s.top_k + 5))
        if len([h for h in hits if h.doc_id != gold]) < s.top_k:  # too few retrieved: add random chunks as distractors
            seen = {h.chunk_id for h in hits}
            extra = sorted((c for c in chunks if c.doc_id != gold and c.chunk_id not in seen),
                           key=lambda c: seeded_unit(s.seed, p["prompt"] + c.chunk_id))[: s.top_k]
            hits += [Hit(c.doc_id, c.chunk_id, 0.0, c.embed_text, len(hits) + i, {}) for i, c in enumerate(extra)]
        base = {k: v for k, v in p.items() if k not in ("prompt", "completion")}
        if p.get("kind") != "answer" or not gold:
            ctx, target, mode, found = hits[: s.top_k], house.ABSTAIN_ANSWER, "abstain", None
        else:
            found = any(h.doc_id == gold for h in hits[: s.top_k])
            distractors = [h for h in hits if h.doc_id != gold]
            if gold in first_chunk and seeded_unit(s.seed, "oracle:" + p["prompt"]) < s.p_oracle:
                gold_hit = next((h for h in hits[: s.top_k] if h.doc_id == gold), None)
                if gold_hit is None:
                    c = first_chunk[gold]
                    gold_hit = Hit(c.doc_id, c.chunk_id, float("nan"), c.embed_text, -1, {})
                ctx = distractors[: s.top_k - 1]
                ctx.insert(int(seeded_unit(s.seed, "pos:" + p["prompt"]) * (len(ctx) + 1)), gold_hit)
                target, mode = p["completion"], "oracle"
            else:
                ctx, target, mode = distractors[: s.top_k], house.ABSTAIN_ANSWER, "distractors"
        out.append({"prompt": context_message(p["prompt"], ctx, s.passage_chars), "completion": target, **base,
                    "raft": mode, "gold_retrieved": found, "passage_ids": [h.doc_id for h in ctx]})
    return out


def raft_training_set(pairs: Sequence[dict], n_pairs: int | None, settings: RaftSettings | None = None,
                      version: str = OLD_VERSION, show_progress: bool = False) -> list[dict]:
    """The RAFT arm's training pairs as notebooks 05 and 06 build them (same inputs, so the adapter cache is shared):
    the first n_pairs house-style pairs (the file is shuffled), each given BM25 passages from the whole `version` corpus,
    the one the pairs were written from. BM25 needs no embeddings and finds hard, lexically similar distractors."""
    source = list(pairs[:n_pairs] if n_pairs else pairs)
    retriever = build_retriever(load_corpus(version), mode="bm25")
    return raft_pairs(source, retriever, settings, show_progress=show_progress)
