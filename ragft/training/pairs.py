"""Training pairs, built mechanically from the documentation: the house-style pair of one document (`house_pair`, the
ONE template every builder uses), the answer shapes of a changed fact that the task pairs share (`removed_answer`,
`param_answer`), the pairs that refresh a tuned model's knowledge to another release (`refresh_pairs`, `update_pairs`,
and `fact_update_pairs`: every changed fact in several train phrasings, with `steps_for` to see each several times),
and RAFT pairs that put retrieved passages in the prompt (`raft_pairs`).

Runtime code: notebooks build these on the fly. It does not train (see `finetune.py`) and does not write data/
(the offline builders `qa_builder.py` and `build_data.py` do, and import their helpers from here).
Introduced in notebooks/04_qlora_finetuning.ipynb; RAFT in notebooks/05_hybrid.ipynb.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from ..core import house
from ..core.cache import seeded_unit, stable_hash
from ..core.paths import CURRENT_VERSION, OLD_VERSION
from ..data.corpus import Document, changed_params, load_corpus
from ..data.datasets import load_qa, phrasings_of
from ..generation.decoding import context_message, cut_passage
from ..retrieval.docstrings import noted_parameter
from ..retrieval.index import Hit, chunks_of
from ..retrieval.retrievers import bm25_idf, bm25_tokens, build_retriever

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


# --- the facts that changed, as the task pairs state them (one copy: `ragft.builders.pairs` writes with these) -------
FACT_KINDS = ("removed", "added", "changed_param")


def first_sentence(text: str) -> str:
    """The first sentence of a text, whitespace collapsed."""
    text = " ".join(text.split())
    m = re.search(r"(?<=[.!?])\s+(?=[A-Z])", text)
    return text[: m.start()] if m else text


def advice_code(advice: str, old: str) -> str:
    """A runnable line for a removal's advice: the replacement it quotes if that is an expression, else a check that
    the old name is gone. `advice_code("Use `-0.0` instead.", "NZERO") -> "x = -0.0"`."""
    ticked = re.findall(r"`+([^`]+)`+", advice)
    if ticked and re.fullmatch(r"[\w.\-()\[\], =]+", ticked[0]):
        return f"x = {ticked[0]}" if not ticked[0].endswith(")") else ticked[0]
    return f'hasattr(np, "{old}")  # False in NumPy 2.x'


def removed_answer(name: str, advice: str) -> tuple[str, str]:
    """(sentence, code) of a removal: `name` is `np.X`, `advice` the first sentence of NumPy's removal notice."""
    old = name.removeprefix("np.")
    return f"`{name}` was removed in NumPy 2.0" + (f": {advice}" if advice else "."), advice_code(advice, old)


def added_sentence(name: str, summ: str) -> str:
    """The sentence of an API new in 2.x: `np.X` (new in NumPy 2.x): its summary."""
    return f"`{name}` (new in NumPy 2.x): {summ}"


def param_answer(name: str, param: str, gained: bool, new_label: str) -> tuple[str, str]:
    """(sentence, code) of a keyword argument that `name` (`np.X`) gained or lost in NumPy `new_label` ("2.x")."""
    if gained:
        return (f"`{name}` gained the `{param}` parameter in NumPy {new_label}.",
                f"{name}(..., {param}=...)  # accepted since NumPy {new_label}")
    return f"`{name}` lost its `{param}` parameter in NumPy {new_label}.", f"{name}(...)  # without {param}= since NumPy {new_label}"


def release_labels(old_version: str, new_version: str) -> tuple[str, str]:
    """How a question names two releases: ("1.26", "2.x") across a major release, ("2.0", "2.4") within one."""
    old, new = old_version.split("."), new_version.split(".")
    return ".".join(old[:2]), (f"{new[0]}.x" if old[0] != new[0] else ".".join(new[:2]))


def _release(docs: Sequence[Document], default: str) -> str:
    return next((v for d in docs if (v := d.metadata.get("version"))), default)


def update_facts(old_docs: Sequence[Document], new_docs: Sequence[Document]) -> list[dict]:
    """Every fact that changed from `old_docs` to `new_docs`, read from the documents alone: a removal notice new to
    `new_docs` (removed: the name and NumPy's advice), a public callable new to them with a one-sentence summary no
    other new document shares and that does not name it (added: the name), and each keyword argument a function gained
    or lost (`changed_params`; changed_param: the parameter). Each fact: id, kind, doc_id, facts, completion (house
    format; a summary of several sentences gives its first), ask (what fills its phrasings)."""
    old = {d.doc_id: d for d in old_docs}
    old_label, new_label = release_labels(_release(old_docs, OLD_VERSION), _release(new_docs, CURRENT_VERSION))
    summaries = Counter(summary(d) for d in new_docs if d.doc_id not in old)
    out = []
    for d in sorted(new_docs, key=lambda d: d.doc_id):
        name = short(d.metadata.get("name") or d.doc_id.removeprefix("removed:"))
        if d.metadata.get("kind") == "removal_notice" and d.doc_id not in old:
            advice = first_sentence(d.metadata.get("advice", ""))
            out.append({"id": f"removed:{name}", "kind": "removed", "doc_id": d.doc_id, "answer": removed_answer(name, advice),
                        "facts": re.findall(r"`+([^`]+)`+", advice)[:1], "ask": {"x": name}})
        elif d.doc_id not in old and public_callable(d):
            s = summary(d)
            if s and summaries[s] == 1 and len(s) <= 300 and name.rsplit(".", 1)[-1].lower() not in s.lower():
                one = s if house.parse(house.render(added_sentence(name, s), "x", ["x"])).compliant else first_sentence(s)
                out.append({"id": f"added:{name}", "kind": "added", "doc_id": d.doc_id, "facts": [name],
                            "answer": (added_sentence(name, one), examples(d) or f"{name}  # new in NumPy 2.x"),
                            "ask": {"s": s, "hint": " 2.x"}})
        elif d.doc_id in old and old[d.doc_id].metadata.get("kind") == "function" and public_callable(d):
            gained_, lost = changed_params(old[d.doc_id].metadata.get("signature") or "",
                                           d.metadata.get("signature") or "") or ([], [])
            for p, gained in [(p, True) for p in gained_] + [(p, False) for p in lost]:
                out.append({"id": f"changed_param:{name}{'+' if gained else '-'}{p}", "kind": "changed_param",
                            "doc_id": d.doc_id, "facts": [p], "answer": param_answer(name, p, gained, new_label),
                            "ask": {"x": name, "lost": not gained}, "labels": (old_label, new_label)})
    for f in out:
        f["completion"] = house.render(*f.pop("answer"), [f["doc_id"]])
    return [f for f in out if house.parse(f["completion"]).compliant]


def fact_update_pairs(old_docs: Sequence[Document], new_docs: Sequence[Document], phrasings: int = 3,
                      seed: int = 0) -> list[dict]:
    """The fair fine-tuned arm's update: each fact of `update_facts` asked in up to `phrasings` of its kind's TRAIN
    phrasings (`phrasings_of(kind, seen=True)`, chosen by a seeded hash when there are more; never an unseen one),
    answered in the house format with the task pairs' answer shapes. Paraphrased repetitions are what lets fine-tuning
    absorb a new fact (Ovadia et al. 2023, "Fine-Tuning or Retrieval?"); `steps_for` sees each pair several times.
    Keys as the task pairs': id, kind, source ("fact_update"), prompt, completion, facts, doc_id, version, phrasing,
    plus fact (the fact's id, shared by its phrasings)."""
    if phrasings < 1:
        raise ValueError(f"phrasings must be >= 1, not {phrasings}")
    version = _release(new_docs, CURRENT_VERSION)
    out = []
    for f in update_facts(old_docs, new_docs):
        options = sorted(phrasings_of(f["kind"], seen=True), key=lambda ph: stable_hash(f"{seed}:{f['id']}:{ph.id}"))
        for ph in options[:phrasings]:
            prompt = ph.ask(**f["ask"])
            if "labels" in f:  # the phrasings name 1.26 and 2.x: name the releases compared
                prompt = prompt.replace("NumPy 2.x", f"NumPy {f['labels'][1]}").replace("NumPy 1.26", f"NumPy {f['labels'][0]}")
            out.append({"id": f"fact:{f['id']}#{ph.id}", "kind": f["kind"], "source": "fact_update", "prompt": prompt,
                        "completion": f["completion"], "facts": f["facts"], "doc_id": f["doc_id"], "version": version,
                        "phrasing": ph.id, "fact": f["id"]})
    return out


def steps_for(n_pairs: int, batch_size: int, repeats: int, grad_accumulation: int = 1, held_out: int = 0) -> int:
    """Optimizer steps for every training pair to be seen at least `repeats` times: training draws each epoch as a
    fresh permutation (`finetune.batch_indices`), so `repeats` epochs of the n_pairs - held_out pairs it trains on.
    With `fact_update_pairs`, each fact is then seen `repeats` times in each of its phrasings.
    >>> steps_for(1000, 4, 3)
    750
    """
    if min(n_pairs, batch_size, repeats, grad_accumulation) < 1:
        raise ValueError("n_pairs, batch_size, repeats and grad_accumulation must be >= 1")
    n_train = n_pairs - held_out if 2 * held_out <= n_pairs else n_pairs  # as `finetune.split_pairs` holds out
    return math.ceil(n_train * repeats / (batch_size * grad_accumulation))


# --- the RAFT-style arm: training pairs WITH retrieved passages -------------------------------------------------------
NO_ORACLE_TARGETS = ("answer", "abstain")
UNANSWERABLE_KINDS = ("abstain", "unanswerable")  # house-style pairs say "abstain", task pairs "unanswerable"


@dataclass(frozen=True)
class RaftSettings:
    """How RAFT pairs are built (Zhang et al. 2024, "RAFT: Adapting Language Model to Domain Specific RAG", with the
    abstention protocol on top).

    p_oracle: share of answerable pairs whose passages include the gold document (the paper's P; it found P = 0.8 best
    on most of its datasets). top_k passages per pair in all, so an oracle pair has top_k - 1 distractors.
    no_oracle_target: what a pair WITHOUT its gold passage is trained to say. "answer": the real answer, as published
    (the model must then answer from what it learned, which the paper finds makes it robust to bad retrieval);
    "abstain": the abstention reply (this project's first recipe: "the documentation I have" is the passages). Pairs
    of unanswerable questions always target the abstention.
    """

    top_k: int = 3
    p_oracle: float = 0.8
    passage_chars: int | None = 600
    seed: int = 0
    no_oracle_target: str = "abstain"
    # quote-then-answer (the paper's chain-of-thought answers): an oracle pair's target starts with a quote line
    # (`house.render_quote`) holding the gold passage's words that carry the answer (`quote_for`); pairs without the
    # gold passage answer (or abstain) without one. False: the plain house answer.
    quote: bool = False
    # A changed-parameter pair's gold passage: True, the chunk the index holds for that parameter when the structure
    # chunker made it a version-noted entry of its own (`chunking.noted_parameter`: "numpy.eye | Parameters | device:
    # added in NumPy 2.0.0"), as RAFT's oracle is the document retrieval would return; False (or no such chunk): the
    # pair's own passages, both releases' signatures, which a one-release index never shows at answer time.
    entry_gold: bool = True

    def __post_init__(self):
        if not 0 <= self.p_oracle <= 1:
            raise ValueError(f"p_oracle must be in [0, 1], not {self.p_oracle}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, not {self.top_k}")
        if self.no_oracle_target not in NO_ORACLE_TARGETS:
            raise ValueError(f"no_oracle_target must be one of {NO_ORACLE_TARGETS}, not {self.no_oracle_target!r}")


def version_hit(doc_id: str, text: str, version: str | None) -> Hit:
    """A gold passage given by a pair itself; with a version, headed by it ("NumPy 1.26.4:") so that a changed-parameter
    pair can show both releases' signatures."""
    return Hit(doc_id, doc_id, float("nan"), (f"NumPy {version}:\n" if version else "") + text, -1,
               {"version": version} if version else {})


def noted_entries(chunks: Sequence) -> dict[tuple[str, str], object]:
    """(doc_id, parameter) -> the chunk holding that parameter's version-noted entry (header "... | Parameters |
    <name>: added in NumPy <version>"), for every such chunk the structure chunker made."""
    out = {}
    for c in chunks:
        if (name := noted_parameter(c)) is not None:
            out.setdefault((c.doc_id, name), c)
    return out


def gold_hits(pair: dict, first_chunk: dict, noted: dict | None = None) -> list[Hit]:
    """The passages that hold a pair's answer: for a changed parameter, its version-noted entry chunk when `noted`
    (`noted_entries`) has one; else the pair's own passage(s) when it carries them (task pairs; both versions for a
    changed parameter), else the gold document's first chunk in the retriever (house-style pairs)."""
    if noted and pair.get("kind") == "changed_param":
        c = next((noted[(pair["doc_id"], f)] for f in pair.get("facts") or () if (pair["doc_id"], f) in noted), None)
        if c is not None:
            return [Hit(c.doc_id, c.chunk_id, float("nan"), c.embed_text, -1, {})]
    if pair.get("passage"):
        hits = [version_hit(pair["doc_id"], pair["old_passage"], pair.get("old_version"))] if pair.get("old_passage") else []
        return hits + [version_hit(pair["doc_id"], pair["passage"], pair.get("version") if hits else None)]
    c = first_chunk.get(pair["doc_id"])
    return [Hit(c.doc_id, c.chunk_id, float("nan"), c.embed_text, -1, {})] if c else []


_WORD = re.compile(r"[A-Za-z_][\w.]*\w|\d+(?:\.\d+)+")


def _words(text: str) -> set[str]:
    """Content words: lower-cased, `numpy.` read as `np.`, words of 4+ characters or holding `_` / `.` (names)."""
    return {w for w in _WORD.findall(text.lower().replace("numpy.", "np.")) if len(w) >= 4 or "_" in w or "." in w}


def _mentions(text: str, name: str) -> bool:
    """`text` names `name` (`np.cumprod`, `out`) whole, or its last dotted part (`cumprod`)."""
    text = text.lower().replace("numpy.", "np.")
    return any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", text)
               for n in {name.lower(), name.lower().rsplit(".", 1)[-1]} if n)


def quote_for(question: str, completion: str, golds: Sequence[Hit], facts: Sequence[str] = (),
              passage_chars: int | None = 600, max_chars: int = 120) -> str:
    """The words of the gold passage(s) that carry a pair's answer, for its quote line. Of the passages' sentences
    (as the prompt shows them, cut to passage_chars; wrapped lines joined, a signature is one sentence), the one
    naming most of the pair's `facts` (the parameter or API it asks for), then sharing most content words with the
    answer sentence that the question does not already hold; ties: the later passage (a changed parameter's new
    release), then the earlier sentence. A long sentence is cut to max_chars around the first fact it names.

    >>> quote_for("`np.product` is gone. What should I call instead?",
    ...           "Answer: `np.product` was removed by NumPy 2.0; use `np.prod` instead.\\nSource: x",
    ...           [Hit("d", "d", 0.0, "numpy.product(*args)\\n\\nReturn the product.\\n\\n``product`` is deprecated "
    ...                "and will be\\nremoved in NumPy 2.0. Please use `prod` instead.", 0, {})], facts=["np.prod"])
    'Please use `prod` instead.'
    """
    new = _words(house.parse(completion).sentence or completion) - _words(question)
    best, best_key = "", None
    for g_i, g in enumerate(golds):
        text = cut_passage(g.text, passage_chars).removesuffix(" ...")
        paragraphs = [" ".join(par.split()) for par in re.split(r"\n\s*\n", text)]
        pieces = [p for par in paragraphs for p in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", par)]
        for p_i, piece in enumerate(pieces):
            if not piece or re.fullmatch(r"[-=~]+", piece):
                continue
            key = (sum(_mentions(piece, f) for f in facts), len(new & _words(piece)), g_i, -p_i)
            if best_key is None or key > best_key:
                best, best_key = piece, key
    if len(best) <= max_chars:
        return best
    lower = best.lower().replace("numpy.", "np.")
    at = min((i for i in (lower.find(f.lower().rsplit(".", 1)[-1]) for f in facts) if i >= 0), default=0)
    start = max(0, min(at - max_chars // 2, len(best) - max_chars))
    return ("..." if start else "") + best[start:start + max_chars].strip() + ("..." if start + max_chars < len(best) else "")


def raft_pairs(pairs: Sequence[dict], retriever, settings: RaftSettings | None = None,
               show_progress: bool = False, exclude_docs: Collection[str] = ()) -> list[dict]:
    """Training pairs turned into RAFT pairs: prompt = `context_message(question, passages)`, built mechanically.

    For an answerable pair (any kind but "abstain"/"unanswerable", with its doc_id): with probability p_oracle (a hash
    of the prompt decides) the passages are the gold passage(s) (`gold_hits`) at hash-chosen places among the best
    retrieved distractors, top_k passages in all, target = the pair's answer; otherwise top_k distractors (no chunk of
    the gold document), target = the answer or the abstention (`no_oracle_target`). Unanswerable pairs keep their
    target and get the retrieved passages. Distractors never come from `exclude_docs` (e.g. the documents the QA set
    asks about, so that no test fact enters training through a passage); when retrieval returns too few, random chunks
    (chosen by hash) fill the context, as in RAFT.
    Extra keys: raft = "oracle" | "distractors" | "abstain", gold_retrieved (did retrieval alone find the gold doc).
    """
    s = settings or RaftSettings()
    exclude = set(exclude_docs)
    chunks = [c for c in chunks_of(retriever) if c.doc_id not in exclude]
    first_chunk = {}
    for c in chunks:
        first_chunk.setdefault(c.doc_id, c)
    noted = noted_entries(chunks) if s.entry_gold else None
    out = []
    for p in tqdm(pairs, desc="RAFT pairs", disable=not show_progress):
        gold = p.get("doc_id")
        hits = [h for h in retriever.search(p["prompt"], top_k=s.top_k + (25 if exclude else 5))
                if h.doc_id not in exclude or h.doc_id == gold]
        if len([h for h in hits if h.doc_id != gold]) < s.top_k:  # too few retrieved: add random chunks as distractors
            seen = {h.chunk_id for h in hits}
            extra = sorted((c for c in chunks if c.doc_id != gold and c.chunk_id not in seen),
                           key=lambda c: seeded_unit(s.seed, p["prompt"] + c.chunk_id))[: s.top_k]
            hits += [Hit(c.doc_id, c.chunk_id, 0.0, c.embed_text, len(hits) + i, {}) for i, c in enumerate(extra)]
        base = {k: v for k, v in p.items() if k not in ("prompt", "completion", "passage", "old_passage")}
        if p.get("kind") in UNANSWERABLE_KINDS or not gold:
            ctx, target, mode, found = hits[: s.top_k], house.ABSTAIN_ANSWER, "abstain", None
        else:
            found = any(h.doc_id == gold for h in hits[: s.top_k])
            distractors = [h for h in hits if h.doc_id != gold]
            golds = gold_hits(p, first_chunk, noted)
            if golds and seeded_unit(s.seed, "oracle:" + p["prompt"]) < s.p_oracle:
                retrieved = next((h for h in hits[: s.top_k] if h.doc_id == gold), None)
                if retrieved is not None and not p.get("passage"):
                    golds = [retrieved]  # the chunk retrieval found, as it will be found at answer time
                ctx = distractors[: max(s.top_k - len(golds), 0)]
                at = int(seeded_unit(s.seed, "pos:" + p["prompt"]) * (len(ctx) + 1))
                ctx[at:at] = golds  # together (old version first), at a hash-chosen place
                target, mode = p["completion"], "oracle"
                if s.quote:
                    quote = quote_for(p["prompt"], target, golds, p.get("facts") or (), s.passage_chars)
                    target = house.render_quote(gold, quote) + "\n" + target
            else:
                target = p["completion"] if s.no_oracle_target == "answer" else house.ABSTAIN_ANSWER
                ctx, mode = distractors[: s.top_k], "distractors"
        out.append({"prompt": context_message(p["prompt"], ctx, s.passage_chars), "completion": target, **base,
                    "raft": mode, "gold_retrieved": found, "passage_ids": [h.doc_id for h in ctx]})
    return out


def qa_documents() -> set[str]:
    """Every document the QA set names as gold, in any split and release: RAFT distractors never come from these."""
    return {d for it in load_qa(split=None) for ids in it.gold_doc_ids.values() for d in ids}


def raft_training_set(pairs: Sequence[dict], n_pairs: int | None, settings: RaftSettings | None = None,
                      version: str = OLD_VERSION, show_progress: bool = False,
                      exclude_docs: Collection[str] = ()) -> list[dict]:
    """The RAFT arm's training pairs as notebooks 05 and 06 build them (same inputs, so the adapter cache is shared):
    the first n_pairs pairs (the files are shuffled), each given BM25 passages from the whole `version` corpus, the one
    the pairs were written from. BM25 needs no embeddings and finds hard, lexically similar distractors."""
    source = list(pairs[:n_pairs] if n_pairs else pairs)
    retriever = build_retriever(load_corpus(version), mode="bm25")
    return raft_pairs(source, retriever, settings, show_progress=show_progress, exclude_docs=exclude_docs)


# --- in-context demonstrations ----------------------------------------------------------------------------------------
class Demonstrations:
    """Worked examples put in the prompt instead of training (in-context learning; Brown et al. 2020): for each
    question, the k training pairs whose questions share the most words with it (idf-weighted overlap of `bm25_tokens`:
    nearest-neighbour example selection, Liu et al. 2022, "What Makes Good In-Context Examples for GPT-3?"), each shown
    as an earlier user turn (its gold passage only, `raft_pairs` with top_k 1 and P = 1, so in the layout the answer
    will be asked in) and an assistant turn (its house answer). A `System` with `examples` set sends them before its
    question; the answer cache keys them through the messages.

    What one example teaches SmolLM2-135M is the question's shape, not its answer (docs/decisions.md, demonstrations).

    >>> demos = Demonstrations(task_pairs, retriever_2_4_6, k=1)  # doctest: +SKIP
    >>> System("rag + 1 example", retriever=index, examples=demos)  # doctest: +SKIP
    """

    def __init__(self, pairs: Sequence[dict], retriever, k: int = 1, passage_chars: int | None = 300,
                 exclude_docs: Collection[str] = ()):
        """pairs: training pairs (prompt, completion, kind, doc_id, ...); retriever: the corpus their gold passages and
        an unanswerable pair's passage come from (a BM25 retriever over the release the pairs were written from);
        exclude_docs: documents never shown (the QA set's, as for RAFT distractors)."""
        if k < 1:
            raise ValueError(f"k must be >= 1, not {k}")
        if not pairs:
            raise ValueError("no pairs to take demonstrations from")
        self.k = k
        self.pairs = raft_pairs(pairs, retriever, RaftSettings(top_k=1, p_oracle=1.0, passage_chars=passage_chars,
                                                               no_oracle_target="answer"), exclude_docs=exclude_docs)
        self.questions = [p["prompt"] for p in pairs]  # raft_pairs keeps the order, one pair out per pair in
        self._tokens = [set(bm25_tokens(q)) for q in self.questions]
        df = Counter(t for toks in self._tokens for t in toks)
        self._idf = {t: bm25_idf(len(self._tokens), n) for t, n in df.items()}

    def select(self, question: str) -> list[dict]:
        """The k pairs nearest to `question`, nearest first (ties: the earlier pair)."""
        words = set(bm25_tokens(question))
        scores = [sum(self._idf[t] for t in words & toks) for toks in self._tokens]
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        return [self.pairs[i] for i in order[: self.k]]

    def messages(self, question: str) -> list[dict]:
        """The chat turns to put before `question`: user / assistant per example, the nearest one last."""
        turns = []
        for p in reversed(self.select(question)):
            turns += [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": p["completion"]}]
        return turns
