"""Measuring answers and retrieval against the QA set's mechanically derived truth.

Answer metrics: fact accuracy (required facts present), stale-answer rate (stale facts used), abstention precision and
recall, groundedness (cited API names occur in the retrieved passages), format compliance (the house parser), latency.
Retrieval metrics: recall@k, MRR, nDCG@k, and the calibration of a retriever's abstention threshold. These are string checks of facts, not a judge model: cheap, reproducible, and
blind to paraphrase (a correct answer that never names the fact counts as wrong).
Introduced in notebooks/03_rag.ipynb.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..core import house
from ..core.paths import CURRENT_VERSION
from ..data.corpus import MIGRATION_VERSIONS, split_doc_id
from ..data.datasets import CHANGED_KINDS, KINDS, ONE_RELEASE_KINDS
from .stats import proportion_ci

# --- answer metrics ---------------------------------------------------------------------------------------------------
_USED_AS_GONE = re.compile(r"remov(?:ed|al)|deprecat|no longer|instead|replace|gone|expired|raises|AttributeError", re.I)
_API_NAME = re.compile(r"\b(?:np|numpy)\.[A-Za-z_][\w.]*[A-Za-z0-9_]")


def normalize(text: str) -> str:
    """`numpy.linalg.norm` and `np.linalg.norm` read the same. `"numpy.float64" -> "np.float64"`."""
    return re.sub(r"\bnumpy\.", "np.", text)


def fact_present(answer: str, fact: str) -> bool:
    """Is `fact` stated in `answer`? For an API name `np.X`: `np.X`, `numpy.X`, `` `X` `` or a call `X(`; else a whole word.

    >>> fact_present("Use `float64` instead.", "np.float64"), fact_present("use them all", "np.all")
    (True, False)
    """
    text = normalize(answer)
    if fact.startswith("np."):
        leaf = re.escape(fact[3:])
        pat = rf"(?<![\w.])np\.{leaf}(?![\w])|`{leaf}`|(?<![\w.]){leaf}\("
    else:
        pat = rf"(?<![\w.]){re.escape(fact)}(?![\w])"
    return re.search(pat, text) is not None


def stale_present(answer: str, stale_facts: Sequence[str]) -> bool:
    """Does the answer USE a stale API? In its code example if it has one; otherwise in a sentence that does not say
    the name is removed/deprecated/replaced. `stale_present("x = np.float_(1)", ["np.float_"]) -> True`."""
    parsed = house.parse(answer)
    code = parsed.code or "\n".join(re.findall(r"```\w*\n(.*?)(?:```|$)", answer, re.S))
    for fact in stale_facts:
        leaf = re.escape(fact.removeprefix("np."))
        pat = re.compile(rf"(?<![\w.])(?:np\.)?{leaf}(?![\w])" if fact.startswith("np.") else rf"(?<![\w.]){leaf}(?![\w])")
        if code:
            if pat.search(normalize(code)):
                return True
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", normalize(answer)):
            if pat.search(sentence) and not _USED_AS_GONE.search(sentence):
                return True
    return False


def cited_names(answer: str) -> set[str]:
    """API names an answer cites: `np.X` names in its text plus the ids on its `Source:` line (normalized to np.)."""
    names = {m.group(0) for m in _API_NAME.finditer(normalize(answer))}
    names |= {normalize(s).removeprefix("removed:") for s in house.parse(answer).sources}
    return {n.rstrip(".") for n in names if n.startswith("np.")}


def groundedness(answer: str, passages: Sequence[str]) -> float | None:
    """Share of the answer's cited API names that occur in the retrieved passages; None if it cites none.

    >>> groundedness("Use np.float64. Source: numpy.float64", ["numpy.float64(x)..."])
    1.0
    """
    names = cited_names(answer)
    if not names:
        return None
    context = normalize("\n".join(passages))
    return sum(1 for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", context)) / len(names)


def facts_present(item, answer: str) -> bool:
    """Every required fact in the answer, or, for an item with `accepted_facts` (one of several right answers), any one
    of those."""
    accepted = getattr(item, "accepted_facts", None)
    if accepted:
        return any(fact_present(answer, f) for f in accepted)
    return all(fact_present(answer, f) for f in item.required_facts)


def score_answer(item, answer: str, passages: Sequence[str] | None = None) -> dict:
    """Every per-answer metric for one QA item (an object with kind, required_facts, stale_facts, answerable)."""
    parsed = house.parse(answer)
    answerable = item.kind != "unanswerable"
    facts_ok = answerable and not parsed.abstained and facts_present(item, answer)
    return {
        "id": item.id, "kind": item.kind,
        "correct": facts_ok if answerable else parsed.abstained,  # for unanswerable items the correct answer IS abstaining
        "fact_ok": facts_ok if answerable else None,
        "stale": stale_present(answer, item.stale_facts) if item.stale_facts else None,
        "abstained": parsed.abstained,
        "compliant": parsed.compliant,
        "grounded": groundedness(answer, passages) if passages is not None else None,
    }


def summarize(rows: Sequence[dict]) -> dict:
    """Aggregate `score_answer` rows (plus optional `latency_s`) into the headline metrics of one system."""

    def mean(xs):
        xs = [float(x) for x in xs if x is not None]
        return sum(xs) / len(xs) if xs else float("nan")

    answerable = [r for r in rows if r["kind"] != "unanswerable"]
    unanswerable = [r for r in rows if r["kind"] == "unanswerable"]
    abstained = [r for r in rows if r["abstained"]]
    return {
        "n": len(rows),
        "accuracy": mean(r["correct"] for r in rows),
        "fact_accuracy": mean(r["fact_ok"] for r in answerable),
        "stale_rate": mean(r["stale"] for r in rows),
        "abstention_precision": (sum(r["kind"] == "unanswerable" for r in abstained) / len(abstained)) if abstained else float("nan"),
        "abstention_recall": mean(r["abstained"] for r in unanswerable),
        "format_compliance": mean(r["compliant"] for r in rows),
        "groundedness": mean(r.get("grounded") for r in rows),
        "latency_s": mean(r.get("latency_s") for r in rows),
    }


# --- retrieval metrics ------------------------------------------------------------------------------------------------
# A ranking is a list of hits (anything with a .doc_id) or of doc_ids, best first; gold is a set of doc_ids. A hit counts
# when its doc_id is gold, and each gold document counts once, at its first position (several chunks of one document do
# not inflate a score). k counts positions in the ranking: the top_k chunks a RAG prompt would receive.
# In an index of several versions (corpus.migration_corpus) ids are tagged "numpy.sort@1.26.4" while the QA set's gold
# ids stay plain: a tagged id counts as its plain id, for the gold of its own version when a `version` is given.
# Introduced in notebooks/01_chunking.ipynb.


def _doc_ids(ranking) -> list[str]:
    return [h if isinstance(h, str) else h.doc_id for h in ranking]


def _gold_key(doc_id: str, gold: set, version: str | None) -> str | None:
    """The gold id that doc_id stands for, or None: itself, or its plain id if it is tagged with `version` (any
    version when None)."""
    if doc_id in gold:
        return doc_id
    plain, tag = split_doc_id(doc_id)
    if tag is not None and plain in gold and (version is None or tag == version):
        return plain
    return None


def gold_found(gold, ranking, version: str | None = None) -> set[str]:
    """The gold documents among a ranking's doc_ids (hits or ids). A version-tagged id counts for the gold of its own
    version only, when `version` (whose gold this is) is given: a 1.26.4 chunk is not 2.4.6's gold document.

    >>> gold_found({"numpy.sort"}, ["numpy.sort@1.26.4", "numpy.sort@2.4.6"], "2.4.6")
    {'numpy.sort'}
    >>> gold_found({"numpy.sort"}, ["numpy.sort@1.26.4"], "2.4.6"), gold_found({"numpy.sort"}, ["numpy.sort"], "2.4.6")
    (set(), {'numpy.sort'})
    """
    gold = set(gold)
    return {g for d in _doc_ids(ranking) if (g := _gold_key(d, gold, version)) is not None}


def versions_retrieved(item, ranking, k: int | None = None, versions: Sequence[str] = MIGRATION_VERSIONS,
                       untagged: str = CURRENT_VERSION) -> list[str]:
    """The versions among `versions` whose gold documents for `item` appear in the first k of a ranking. A tagged id
    counts for its own version; an untagged one for `untagged`, the version a one-version index holds.

    >>> versions_retrieved(item, ["numpy.fft.ifft@2.4.6", "numpy.fft.ifft@1.26.4"])  # doctest: +SKIP
    ['1.26.4', '2.4.6']
    """
    ids = _doc_ids(ranking)[:k]
    out = []
    for v in versions:
        gold = item.gold(v)
        mine = [plain for plain, tag in map(split_doc_id, ids) if (tag or untagged) == v]
        if gold and gold & set(mine):
            out.append(v)
    return out


def all_versions_retrieved(item, ranking, k: int | None = None, versions: Sequence[str] = MIGRATION_VERSIONS,
                           untagged: str = CURRENT_VERSION) -> bool:
    """Whether every version of `versions` that has gold documents for `item` has one in the first k (a changed
    parameter's question: both signatures in front of the model). False when no version has gold documents."""
    want = [v for v in versions if item.gold(v)]
    return bool(want) and versions_retrieved(item, ranking, k, versions, untagged) == want


def _first_gold_positions(ranking, gold, k: int | None = None, version: str | None = None) -> list[int]:
    """0-based positions (within the first k) where a gold document appears for the first time."""
    seen, out = set(), []
    for pos, doc_id in enumerate(_doc_ids(ranking)[:k]):
        key = _gold_key(doc_id, gold, version)
        if key is not None and key not in seen:
            seen.add(key)
            out.append(pos)
    return out


def recall_at_k(ranking, gold, k: int, version: str | None = None) -> float:
    """Share of the gold documents found in the first k positions (`version`: see `gold_found`).

    >>> recall_at_k(["a", "b", "a", "c"], {"a", "c"}, k=3)
    0.5
    """
    gold = set(gold)
    if not gold:
        raise ValueError("recall is undefined without gold documents (an unanswerable question?)")
    return len(_first_gold_positions(ranking, gold, k, version)) / len(gold)


def mrr(ranking, gold, k: int | None = None, version: str | None = None) -> float:
    """Reciprocal rank of the first gold hit (1-based), 0 if none within the first k (all positions if k is None).

    >>> mrr(["x", "a", "b"], {"a", "b"})
    0.5
    """
    pos = _first_gold_positions(ranking, set(gold), k, version)
    return 1.0 / (pos[0] + 1) if pos else 0.0


def ndcg_at_k(ranking, gold, k: int = 10, version: str | None = None) -> float:
    """Binary-relevance nDCG@k: DCG of the gold first occurrences over the DCG of all gold documents ranked first.

    >>> round(ndcg_at_k(["x", "a"], {"a"}, k=10), 4)  # 1/log2(3) / (1/log2(2))
    0.6309
    """

    gold = set(gold)
    if not gold:
        raise ValueError("nDCG is undefined without gold documents (an unanswerable question?)")
    dcg = sum(1.0 / math.log2(p + 2) for p in _first_gold_positions(ranking, gold, k, version))
    ideal = sum(1.0 / math.log2(p + 2) for p in range(min(len(gold), k)))
    return dcg / ideal


def retrieval_scores(rankings: Sequence, golds: Sequence, ks: Sequence[int] = (1, 5, 10), ids: Sequence[str] | None = None,
                     version: str | None = None):
    """Per-question recall@k for each k, MRR (over the whole ranking) and nDCG@10, as a DataFrame (one row per question).

    Questions without gold documents are skipped (score abstention separately). `.mean(numeric_only=True)` gives the means.
    version: whose gold `golds` are, so a tagged chunk of another version does not count (see `gold_found`).
    """
    import pandas as pd

    rows = []
    for i, (ranking, gold) in enumerate(zip(rankings, golds, strict=True)):
        gold = set(gold)
        if not gold:
            continue
        row = {"id": ids[i] if ids is not None else i}
        row.update({f"recall@{k}": recall_at_k(ranking, gold, k, version) for k in ks})
        row["mrr"] = mrr(ranking, gold, version=version)
        row["ndcg@10"] = ndcg_at_k(ranking, gold, 10, version)
        row["first_gold_rank"] = (_first_gold_positions(ranking, gold, version=version) or [None])[0]
        rows.append(row)
    return pd.DataFrame(rows)


def evaluate_retrieval(retriever, items, version: str, top_k: int = 10, ks: Sequence[int] = (1, 5, 10)) -> tuple:
    """Run every answerable QA item's question through `retriever` and score it against `item.gold(version)`.

    Returns (per_question DataFrame with kind and question, means dict). Items without gold docs in `version` are skipped.
    """
    items = [it for it in items if it.gold(version)]
    if not items:
        raise ValueError(f"no QA item has gold documents for version {version}")
    results = retriever.search_batch([it.question for it in items], top_k=top_k)
    per_q = retrieval_scores(results, [it.gold(version) for it in items], ks=ks, ids=[it.id for it in items],
                             version=version)
    per_q.insert(1, "kind", [it.kind for it in items])
    per_q["question"] = [it.question for it in items]
    means = per_q.drop(columns=["first_gold_rank"]).mean(numeric_only=True).to_dict()
    means["n"] = len(items)
    return per_q, means


# --- threshold calibration --------------------------------------------------------------------------------------------
# Where a retriever should stop answering: top-1 scores of answerable vs unanswerable questions. Notebook 02.
@dataclass
class ThresholdCalibration:
    """Top-1 scores of answerable and unanswerable questions, and what each threshold would do.

    A question is answered when its top hit scores >= threshold. precision = answerable among answered; recall = answered
    among answerable. `suggested` maximizes F1 unless `min_precision` was asked for.
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    answerable_scores: np.ndarray
    unanswerable_scores: np.ndarray
    suggested: float

    def table(self):
        import pandas as pd

        return pd.DataFrame({"threshold": self.thresholds, "precision": self.precision, "recall": self.recall, "f1": self.f1})


def calibrate_threshold(retriever, answerable: Sequence[str], unanswerable: Sequence[str],
                        min_precision: float | None = None) -> ThresholdCalibration:
    """Sweep thresholds over the observed top-1 scores of answerable vs unanswerable questions."""
    if not answerable or not unanswerable:
        raise ValueError("calibration needs both answerable and unanswerable questions")

    def top1(qs):
        return np.array([h[0].score if h else -np.inf for h in retriever.search_batch(list(qs), top_k=1)])

    pos, neg = top1(answerable), top1(unanswerable)
    ths = np.unique(np.concatenate([pos, neg])[np.isfinite(np.concatenate([pos, neg]))])
    prec, rec = [], []
    for t in ths:
        tp, fp = int((pos >= t).sum()), int((neg >= t).sum())
        prec.append(tp / (tp + fp) if tp + fp else 1.0)
        rec.append(tp / len(pos))
    prec, rec = np.array(prec), np.array(rec)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    if min_precision is not None and (prec >= min_precision).any():
        ok = np.flatnonzero(prec >= min_precision)
        best = ok[np.argmax(rec[ok])]
    else:
        best = int(np.argmax(f1))
    return ThresholdCalibration(ths, prec, rec, f1, pos, neg, float(ths[best]))


# --- tables of scored answers ----------------------------------------------------------------------------------------
def nan_to_none(v):
    """None for a missing value (None or a float NaN, which pandas puts where None was), else the value itself."""
    return None if v is None or (isinstance(v, float) and v != v) else v


def frame_records(df) -> list[dict]:
    """A DataFrame's rows as dicts with NaN turned back into None (`summarize` skips only None, and NaN would also
    count as True where a row's flag is tested)."""
    return [{k: nan_to_none(v) for k, v in r.items()} for r in df.to_dict("records")]


def _share(rows: Sequence[dict], key: str, where=lambda r: True) -> float:
    xs = [r[key] for r in rows if r.get(key) is not None and where(r)]
    return sum(xs) / len(xs) if xs else float("nan")


# The columns of notebook 03's tables (one pipeline, several conditions) and of notebook 05's arms table.
ARM_METRICS = ("n", "accuracy", "fact_accuracy", "stale_rate", "abstention_precision", "abstention_recall",
               "format_compliance", "groundedness", "context_recall", "confidence", "latency_s")
BEHAVIOUR_TABLE = ("n", "format_compliance", "answered_in_format", "abstained", "abstention_recall",
                   "abstention_precision", "stale_rate", "fact_accuracy", "latency_s")
ARMS_TABLE = ("n", "accuracy", "accuracy_low", "accuracy_high", "answerable_accuracy", "one_release_accuracy", "reading_rate", "changed_accuracy", "fact_accuracy", "stale_rate", "format_compliance",
              "abstention_precision", "abstention_recall", "groundedness", "gold_retrieved", "latency_s", "cached")


def summarize_arms(df, by: str = "arm", metrics: Sequence[str] = ARM_METRICS, order: Sequence[str] | None = None):
    """One row of headline metrics per arm (rows in `order`, else as they first appear): `summarize` of its rows plus
    context_recall (a gold doc was in the prompt), confidence (mean, generated answers only), changed_accuracy
    (accuracy on questions whose truth moved from 1.26 to 2.x), gold_retrieved (a gold doc among the passages),
    cached (share read from the answer cache), abstained (share of abstentions, asked for or not) and
    answered_in_format (compliant and not an abstention), answerable_accuracy, one_release_accuracy (accuracy on
    the answerable kinds one release's document answers: removed, added, unchanged), reading_rate (correct when a gold
    document was in the prompt) and accuracy_low / accuracy_high (its 95% Wilson interval). The one summarizer of per-arm metrics; `metrics` picks the
    columns: ARM_METRICS (notebook 03), BEHAVIOUR_TABLE (04), ARMS_TABLE (05)."""
    import pandas as pd

    out = {}
    for arm in order or list(dict.fromkeys(df[by])):
        g = df[df[by] == arm]
        rows = frame_records(g)
        m = summarize(rows)
        m["context_recall"] = _share(rows, "gold_in_context")
        m["confidence"] = _share(rows, "confidence", lambda r: not r.get("abstained_no_context"))
        m["changed_accuracy"] = _share(rows, "correct", lambda r: r["kind"] in CHANGED_KINDS)
        m["gold_retrieved"] = _share(rows, "gold_retrieved")
        m["cached"] = float(g["cached"].mean()) if "cached" in g and len(g) else float("nan")
        m["abstained"] = _share(rows, "abstained")
        m["answerable_accuracy"] = _share(rows, "correct", lambda r: r["kind"] != "unanswerable")
        m["one_release_accuracy"] = _share(rows, "correct", lambda r: r["kind"] in ONE_RELEASE_KINDS)
        m["reading_rate"] = _share(rows, "correct", lambda r: r.get("gold_retrieved") or r.get("gold_in_context"))
        m["accuracy_low"], m["accuracy_high"] = proportion_ci([r["correct"] for r in rows])[1:]
        m["answered_in_format"] = _share([{"x": bool(r["compliant"]) and not r["abstained"]} for r in rows], "x")
        out[arm] = {k: m[k] for k in metrics}
    return pd.DataFrame(out).T


def accuracy_by_kind(df, by: str = "arm", order: Sequence[str] | None = None):
    """Accuracy per arm (rows, in `order` or as they first appear) and question kind (columns, in `KINDS` order), with
    the number of questions of each kind in the column name ("removed (n=16)"): the table that shows which kind of
    question an arm fails, e.g. changed_param, which a single-version index cannot answer."""
    rows = order or list(dict.fromkeys(df[by]))
    kinds = [k for k in KINDS if k in set(df["kind"])] + sorted(set(df["kind"]) - set(KINDS))
    table = df.pivot_table(index=by, columns="kind", values="correct", aggfunc="mean").reindex(index=rows, columns=kinds)
    first = df[df[by] == rows[0]] if rows else df
    counts = first["kind"].value_counts()
    table.columns = [f"{k} (n={int(counts.get(k, 0))})" for k in kinds]
    table.index.name, table.columns.name = by, None
    return table.astype(float)


def records(table, digits: int = 3, index_name: str = "arm") -> list[dict]:
    """A metrics DataFrame as a list of dicts (NaN -> None, floats rounded), the shape the report renders as a table."""
    out = []
    for idx, row in table.iterrows():
        rec = {index_name: idx}
        for k, v in row.items():
            v = nan_to_none(v)
            rec[k] = round(v, digits) if isinstance(v, float) else v
        out.append(rec)
    return out


def version_subsets(old_docs, new_docs, items, old_version: str, new_version: str, n_docs: int | None, seed: int = 0):
    """The same slice of two corpus versions, for a knowledge update that is small but real: the gold documents of
    `items` in both versions plus the same distractors, so `sync` sees the true added/removed/changed documents.

    A name removed in 2.0 is `numpy.X` in the old corpus and `removed:numpy.X` in the new one: both are kept together.
    n_docs None (or at least the corpus size) keeps both corpora whole.
    """
    from ..data.datasets import subset_corpus

    if n_docs is None or n_docs >= max(len(old_docs), len(new_docs)):
        return list(old_docs), list(new_docs)
    gold_old = [d for d in old_docs if any(d.doc_id in it.gold(old_version) for it in items)]
    new = subset_corpus(new_docs, items, new_version, n_docs, seed)
    keep = {d.doc_id for d in new} | {d.doc_id for d in gold_old}
    keep |= {i.removeprefix("removed:") for i in keep} | {f"removed:{i}" for i in keep}
    return [d for d in old_docs if d.doc_id in keep], [d for d in new_docs if d.doc_id in keep]


def _leaf(fact: str) -> str:
    return fact.removeprefix("np.").rsplit(".", 1)[-1]


def plant_fact(hits: Sequence, fact: str, wrong: str) -> list:
    """Copies of `hits` with every whole-word occurrence of `fact`'s last name part replaced by `wrong`'s (in the text
    and the doc_id): a plausible, wrong passage. `plant_fact(hits, "np.inf", "np.nan")` makes the passages say nan."""
    import dataclasses

    old, new = _leaf(fact), _leaf(wrong)
    pat = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(old)}(?![A-Za-z0-9_])")
    return [dataclasses.replace(h, text=pat.sub(new, h.text), doc_id=pat.sub(new, h.doc_id)) for h in hits]


def wrong_facts(items) -> dict[str, str]:
    """For each answerable item, a required fact of ANOTHER item to plant instead of its own: {item.id: wrong_fact}.

    Deterministic: the next item of the same kind (cyclic), else the next one whose fact has the same shape (an API
    name `np.X` for an API name, a parameter name for a parameter name). Items with no such partner are left out.
    """
    pool = [it for it in items if it.kind != "unanswerable" and it.required_facts]
    out = {}
    for i, it in enumerate(pool):
        mine = it.required_facts[0]
        ring = pool[i + 1:] + pool[:i]
        same_kind = [o for o in ring if o.kind == it.kind]
        same_shape = [o for o in ring if o.kind != it.kind and o.required_facts[0].startswith("np.") == mine.startswith("np.")]
        for other in same_kind + same_shape:
            if _leaf(other.required_facts[0]) != _leaf(mine):
                out[it.id] = other.required_facts[0]
                break
    return out


# --- the expected story, decided by paired comparisons -----------------------------------------------------------------
# Each claim compares two arms on the SAME questions (per-question 0/1 results, paired by question id) and is decided by
# the paired bootstrap interval of the difference (`stats.compare`): "supported" only when the interval excludes the
# claimed boundary. "keeps" claims allow a margin: the first arm may be at most MARGIN worse.
MARGIN = 0.05
_SUBSETS = {"changed": lambda kind: kind in CHANGED_KINDS, "all": lambda kind: True,
            "unanswerable": lambda kind: kind == "unanswerable", "answerable": lambda kind: kind != "unanswerable",
            "one_release": lambda kind: kind in ONE_RELEASE_KINDS}
CLAIMS = (  # (claim, arm a, arm b, per-question column, questions, margin or None)
    ("RAG beats the base model on current facts (questions whose truth moved in 2.x)", "rag", "base", "correct",
     "changed", None),
    ("after the index sync, RAG beats the fine-tuned arm on current facts (the knowledge update)", "rag", "fine-tuned",
     "correct", "changed", None),
    ("fine-tuning beats RAG on the house format", "fine-tuned", "rag", "compliant", "all", None),
    ("fine-tuning beats the base model on abstaining when it should", "fine-tuned", "base", "abstained", "unanswerable",
     None),
    ("hybrid keeps RAG's current facts", "hybrid", "rag", "correct", "changed", MARGIN),
    ("hybrid keeps fine-tuning's format", "hybrid", "fine-tuned", "compliant", "all", MARGIN),
    ("RAFT (trained with passages) beats plain hybrid on accuracy", "raft", "hybrid", "correct", "all", None),
)


def paired_values(results, a: str, b: str, col: str = "correct", subset: str = "all") -> tuple[list[float], list[float]]:
    """Arm a's and arm b's `col` on the questions both answered (of `subset`: "all", "changed", ...), in one order:
    the inputs of `stats.compare`. A question one arm lacks is left out, never counted."""
    keep = _SUBSETS[subset]

    def values(arm):
        rows = frame_records(results[results["arm"] == arm]) if len(results) else []
        return {r["id"]: float(r[col]) for r in rows if keep(r["kind"]) and r.get(col) is not None}

    va, vb = values(a), values(b)
    ids = [i for i in va if i in vb]
    return [va[i] for i in ids], [vb[i] for i in ids]


def story(results, seed: int = 0, claims: Sequence[tuple] = CLAIMS) -> list[dict]:
    """The project's expected story as claims (`CLAIMS`, or others of the same shape), each decided by a paired
    comparison on the same questions of `results` (the rows of `systems.compare`): claim, the two arms, n, each arm's
    share, the difference with its 95% interval, McNemar's p, and the verdict: "supported", "contradicted", "not
    separable at this n", or "not tested" when an arm is missing or no question is shared."""
    from .stats import compare

    out = []
    for text, a, b, col, subset, margin in claims:
        x, y = paired_values(results, a, b, col, subset)
        row = {"claim": text, "a": a, "b": b, "metric": col, "questions": subset, "margin": margin, "n": len(x)}
        if not x:
            out.append({**row, "verdict": "not tested", "numbers": f"{a} or {b} not run on these questions"})
            continue
        c = compare(x, y, margin=margin, seed=seed)
        row.update({"a_share": c.mean_a, "b_share": c.mean_b, "diff": c.diff, "diff_ci": list(c.ci),
                    "p_mcnemar": c.p_mcnemar, "verdict": c.verdict})
        row["numbers"] = (f"{a} {c.mean_a:.0%} vs {b} {c.mean_b:.0%} on {c.n} questions; difference "
                          f"{c.diff:+.2f} [{c.ci[0]:+.2f}, {c.ci[1]:+.2f}]" + (f", margin {margin}" if margin else ""))
        out.append(row)
    return out


def _leaders(m, col: str) -> str:
    top = m[col].max()
    best = list(m.index[m[col] == top])
    return f"no arm stands out (all {top:.0%})" if len(best) == len(m) else f"**{', '.join(best)}** ({top:.0%})"


def conclusions(metrics, claims: Sequence[dict], *, header: str, update: Sequence[str] = ()) -> str:
    """Notebook 05's conclusions as Markdown, written from the arms table and the checked claims: who leads on facts,
    format and abstention, then `update` (sentences the notebook writes from its own measurements), then each claim
    with its verdict from `story`. Where a claim is not supported it says so: the numbers win over the story."""
    m = metrics[[c for c in ("changed_accuracy", "format_compliance", "abstention_recall") if c in metrics]].astype(float)
    text = [header,
            f"- Best on current facts: {_leaders(m, 'changed_accuracy')}; best on the house format: "
            f"{_leaders(m, 'format_compliance')}; best at abstaining when it should: {_leaders(m, 'abstention_recall')}.",
            *[f"- {u}" for u in update], "", "The expected story, claim by claim:"]
    for c in claims:
        verdict = c["verdict"] if c["verdict"] == "supported" else f"**{c['verdict']}**"
        text.append(f"- {c['claim']}: {verdict} ({c['numbers']}).")
    if any(c["verdict"] != "supported" for c in claims):
        text.append("\nWhere a claim is not supported, the numbers win: an interval that includes zero means this many "
                    "questions cannot tell the arms apart; read the answers above before trusting the story.")
    return "\n".join(text)


# --- failure taxonomy -------------------------------------------------------------------------------------------------
# Why a retrieval arm got a question wrong: did retrieval fail (the gold document never reached the prompt) or did
# reading fail (it was there and the model did not use it)? Retrieval causes are checked first, since a model cannot
# read a passage it was never shown. Issue 13's stacked bars per arm are counts of these labels.
FAILURE_KINDS = ("gold not retrieved", "gold cut by the token budget", "gold in prompt, abstained",
                 "stale name used", "format broken", "gold in prompt, wrong name", "should have abstained")


def failure_kind(item, answer: str, retrieved: Sequence[str], in_prompt: Sequence[str] | None = None,
                 version: str | None = None) -> str | None:
    """The failure label of one answer of a retrieval arm; None if the answer is correct.

    retrieved: doc_ids the retriever returned; in_prompt: those that fit into the prompt (default: all of them; the
    rest were cut by the token budget); version: whose gold documents count (default: the item's current version).
    Answerable items, in order: "gold not retrieved" | "gold cut by the token budget" (retrieved, not in the prompt) |
    "gold in prompt, abstained" | "stale name used" (the removed name, used as if it worked) | "format broken" (not in
    the house format and the facts missing) | "gold in prompt, wrong name" (well-formed, wrong fact). An unanswerable item
    answered instead of abstained is "should have abstained".

    >>> failure_kind(item, "Answer: use np.float32 ...", retrieved=["removed:numpy.float_"])  # doctest: +SKIP
    'gold in prompt, wrong name'
    """
    score = score_answer(item, answer)
    if score["correct"]:
        return None
    if item.kind == "unanswerable":
        return FAILURE_KINDS[6]
    version = version or CURRENT_VERSION
    gold = item.gold(version)
    if not gold_found(gold, retrieved if in_prompt is None else in_prompt, version):
        return FAILURE_KINDS[1] if gold_found(gold, retrieved, version) else FAILURE_KINDS[0]
    if score["abstained"]:
        return FAILURE_KINDS[2]
    if item.stale_facts and stale_present(answer, item.stale_facts):
        return FAILURE_KINDS[3]
    if not score["compliant"]:
        return FAILURE_KINDS[4]
    return FAILURE_KINDS[5]


def failure_table(df, items, version: str | None = None, by: str = "arm"):
    """Counts of `failure_kind` per arm (rows) and label (columns, in FAILURE_KINDS order) for the wrong answers in an
    answers table with columns id, answer and the doc_ids in the prompt ("sources" or "doc_ids"); a "retrieved" column,
    when present, holds every retrieved doc_id (so budget cuts are seen). Give it retrieval arms only."""
    import pandas as pd

    by_id = {it.id: it for it in items}
    counts: dict[str, dict[str, int]] = {}
    for r in frame_records(df):
        item = by_id.get(r["id"])
        if item is None:
            continue
        prompt_ids = list(r.get("sources") if r.get("sources") is not None else r.get("doc_ids") or [])
        retrieved = list(r["retrieved"]) if r.get("retrieved") is not None else prompt_ids
        label = failure_kind(item, r["answer"], retrieved, prompt_ids, version)
        row = counts.setdefault(r[by], dict.fromkeys(FAILURE_KINDS, 0))
        if label is not None:
            row[label] += 1
    return pd.DataFrame.from_dict(counts, orient="index", columns=list(FAILURE_KINDS)).fillna(0).astype(int)
