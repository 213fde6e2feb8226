"""Grading answers against the QA set's mechanically derived truth: one answer's metrics, and their means for a system.

Strict grading (`correct`): the `Answer:` sentence states an accepted fact and recommends no stale name (nor does the
code call one); the code block and the `Source:` line never count as the answer (`source_ok` scores the Source line, and
`code_runs.py` runs the code). `lenient_correct` keeps the earlier grade (a fact anywhere in the reply), to show how much
a lenient grader flatters. Also stale-answer rate, abstentions, groundedness, format compliance (the house parser).
These are string checks of facts, not a judge model: cheap, reproducible, and blind to paraphrase. It does not rank
passages (see `ranking`), run code (see `code_runs`) or tabulate arms (see `arms`). Introduced in notebooks/03_rag.ipynb.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Sequence

from ..core import house
from ..core.paths import CURRENT_VERSION
from .ranking import gold_found

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


# --- strict grading: what the Answer: sentence claims ---------------------------------------------------------------
# A name mention is "marked gone" when its own clause says so: right before it ("instead of", "replace", "there is no
# function", "not") or right after it ("was removed", "does not exist", "raises"). Clauses end at ; : and sentence ends.
_MENTION = re.compile(r"`+[^`]+?`+|(?<![\w.])(?:np|numpy)\.[A-Za-z_][\w.]*[A-Za-z0-9_]")
_CLAUSE_END = re.compile(r";|:(?!//)|\.\s|\s[-\u2013\u2014]\s")
_GONE_BEFORE = re.compile(
    r"(?:instead of|rather than|in place of|replac\w*(?:\s+(?:for|of))?|formerly|previously|(?:the|an?) (?:old|former|"
    r"removed|deprecated)|no longer|there(?: is|'s) no(?: such)?(?: (?:function|method|attribute|name|alias))?|not|"
    r"neither|nor|no|(?:migrat|mov|switch|renam|port)\w* (?:away )?from)[\s`(]*$", re.I)
_GONE_AFTER = re.compile(
    r"^[\s`'\")]*,?\s*\(?(?:which\s+)?(?:(?:was|were|is|are|has|have|had|got|been)\s+)*(?:(?:now|since|also|fully|"
    r"officially|completely|long)\s+)*(?:removed|deprecated|gone|expired|dropped|deleted|renamed|replaced|no longer|"
    r"not available|unavailable|does not exist|doesn't exist|did not survive|raises|throws|fails|not (?:in|part of))",
    re.I)
_BETWEEN_ALTERNATIVES = re.compile(r"^[\s`()]*(?:,|/|\bor\b|,\s*or\b)[\s`()]*$", re.I)


def answer_sentence(answer: str) -> str:
    """What the answer CLAIMS: its `Answer:` sentence; a reply with no `Answer:` line is read without its code blocks,
    `Source:` line and quote line. `answer_sentence(render("Use np.float64.", "np.float_(1)", ["x"])) -> 'Use np.float64.'`"""
    parsed = house.parse(answer)
    if parsed.sentence:
        return parsed.sentence
    text = re.sub(r"```.*?(?:```|$)", " ", house.split_quote(answer)[1], flags=re.S)
    return re.sub(r"^\s*Sources?:.*$", " ", text, flags=re.M | re.I).strip()


def _leaf_pattern(fact: str) -> re.Pattern:
    leaf = re.escape(fact.removeprefix("np."))
    return re.compile(rf"(?<![\w.])(?:np\.)?{leaf}(?![\w])" if fact.startswith("np.") else rf"(?<![\w.]){leaf}(?![\w])")


def _context(text: str, start: int, end: int) -> tuple[str, str]:
    """The words of a mention's own clause before and after it, up to the next clause end or the next name."""
    spans = [m.span() for m in _MENTION.finditer(text)]
    left = max([e for _, e in spans if e <= start] + [m.end() for m in _CLAUSE_END.finditer(text, 0, start)] + [0])
    right = min([s for s, _ in spans if s >= end] + [m.start() for m in _CLAUSE_END.finditer(text, end)] + [len(text)])
    return text[left:start], text[end:right]


def _mention_spans(text: str, fact: str) -> list[tuple[int, int]]:
    """Where `fact` is named in `text`, each widened to its whole `code span` so the context starts outside it."""
    out = []
    for m in _leaf_pattern(fact).finditer(text):
        span = next(((s, e) for s, e in (x.span() for x in _MENTION.finditer(text)) if s <= m.start() and m.end() <= e), m.span())
        out.append(span)
    return out


def marked_gone(text: str, start: int, end: int) -> bool:
    """Does the clause around text[start:end] say that this name is gone (removed, replaced, no longer there)?

    >>> s = "Use `np.trapezoid` instead of `np.trapz`."
    >>> marked_gone(s, 4, 18), marked_gone(s, 30, 40)
    (False, True)
    """
    before, after = _context(text, start, end)
    return bool(_GONE_BEFORE.search(before) or _GONE_AFTER.search(after))


def states_fact(sentence: str, fact: str, check_gone: bool = True) -> bool:
    """`fact` is named in the sentence and (for an API name, when `check_gone`) not only as a name that is gone."""
    sentence = normalize(sentence)
    if not fact_present(sentence, fact):
        return False
    if not (check_gone and fact.startswith("np.")):
        return True
    spans = _mention_spans(sentence, fact)
    return not spans or not all(marked_gone(sentence, s, e) for s, e in spans)


def recommends_stale(sentence: str, stale_facts: Sequence[str]) -> bool:
    """Does the sentence name a stale API without saying it is gone (so, as something to use)?"""
    sentence = normalize(sentence)
    return any(not marked_gone(sentence, s, e) for f in stale_facts for s, e in _mention_spans(sentence, f))


def code_names(code: str) -> str:
    """The code with its strings and comments blanked out: `hasattr(np, "float_")  # gone` names no API."""
    try:
        toks = [t for t in tokenize.generate_tokens(io.StringIO(code).readline)
                if t.type not in (tokenize.STRING, tokenize.COMMENT)]
        return " ".join(t.string for t in toks if t.string.strip())
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return re.sub(r"#.*$|'[^'\n]*'|\"[^\"\n]*\"", " ", code, flags=re.M)


def stale_in_code(code: str, stale_facts: Sequence[str]) -> bool:
    """Does the code CALL a stale API (np.X / numpy.X, or `from numpy import X`), outside strings and comments?"""
    names = normalize(re.sub(r"\s*\.\s*", ".", code_names(code)))
    for fact in stale_facts:
        leaf = re.escape(fact.removeprefix("np."))
        if re.search(rf"(?<![\w.])np\.{leaf}(?![\w])", names) or re.search(rf"from (?:np|numpy)\S* import [^\n]*\b{leaf}\b", names):
            return True
    return False


def _alternatives(sentence: str, item) -> list[str]:
    """Names the sentence offers, joined by or / a comma / a slash: API names (np.X) for API questions, bare `names`
    (parameters) for changed_param questions; names the question itself asks about and names marked gone are left out."""
    sentence, question = normalize(sentence), normalize(getattr(item, "question", ""))
    offered = []
    for m in _MENTION.finditer(sentence):
        name = re.sub(r"\(.*$", "", m.group(0).strip("`").strip())
        is_api = name.startswith("np.")
        if (item.kind == "changed_param") == is_api or not re.fullmatch(r"[A-Za-z_][\w.]*", name):
            continue
        if (is_api and re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", question)) or marked_gone(sentence, *m.span()):
            continue
        offered.append((m.start(), m.end(), name))
    joined = set()
    for (_, e1, a), (s2, _, b) in zip(offered, offered[1:], strict=False):
        if _BETWEEN_ALTERNATIVES.match(sentence[e1:s2]):
            joined |= {a, b}
    return sorted(joined)


def hedged(sentence: str, item) -> bool:
    """Does the sentence offer the right name AND a wrong one as alternatives ("use `np.trapezoid` or `np.cumsum`")?
    A name that the item's reference (NumPy's own advice) also offers is not wrong."""
    facts = list(getattr(item, "accepted_facts", None) or item.required_facts)
    reference = normalize(getattr(item, "reference", "") or "")
    names = _alternatives(sentence, item)
    right = [n for n in names if any(fact_present(n if n.startswith("np.") else f"`{n}`", f) for f in facts)]
    wrong = [n for n in names if n not in right and not fact_present(reference, n)]
    return bool(right) and bool(wrong)


def strict_facts(item, sentence: str) -> bool:
    """`facts_present` on the sentence alone, with API names that the sentence marks as gone not counting."""
    check = item.kind != "changed_param"  # "`np.corrcoef` lost `bias`": a parameter question's fact is often the gone one
    accepted = getattr(item, "accepted_facts", None)
    if accepted:
        return any(states_fact(sentence, f, check) for f in accepted)
    return all(states_fact(sentence, f, check) for f in item.required_facts)


def source_ok(item, answer: str, version: str = CURRENT_VERSION) -> bool | None:
    """Does the `Source:` line cite a gold document of `version`? None when the item has none (unanswerable)."""
    gold = item.gold(version) if hasattr(item, "gold") else set()
    return bool(gold_found(gold, house.parse(answer).sources, version)) if gold else None


def score_answer(item, answer: str, passages: Sequence[str] | None = None) -> dict:
    """Every per-answer metric for one QA item (an object with kind, question, required_facts, stale_facts).

    `correct` is the strict grade; `lenient_correct` the earlier one (an accepted fact anywhere, code and Source line
    included; a decline in any words counts as an abstention); `stale`: a stale name recommended in the sentence or
    called in the code. Pure and fast: running the code is `code_runs.add_code_runs`, a separate column.
    """
    parsed = house.parse(answer)
    answerable = item.kind != "unanswerable"
    sentence = answer_sentence(answer)
    stale = (recommends_stale(sentence, item.stale_facts) or stale_in_code(parsed.code, item.stale_facts)
             if item.stale_facts else None)
    facts_ok = answerable and not parsed.abstained and strict_facts(item, sentence)
    lenient_ok = answerable and not parsed.declined and facts_present(item, answer)
    return {
        "id": item.id, "kind": item.kind,
        # for unanswerable items the correct answer IS abstaining
        "correct": facts_ok and not stale and not hedged(sentence, item) if answerable else parsed.abstained,
        "lenient_correct": lenient_ok if answerable else parsed.declined,
        "fact_ok": facts_ok if answerable else None,
        "stale": stale,
        "abstained": parsed.abstained,
        "compliant": parsed.compliant,
        "grounded": groundedness(answer, passages) if passages is not None else None,
        "source_ok": source_ok(item, answer),
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
        "lenient_accuracy": mean(r.get("lenient_correct") for r in rows),
        "fact_accuracy": mean(r["fact_ok"] for r in answerable),
        "stale_rate": mean(r["stale"] for r in rows),
        "abstention_precision": (sum(r["kind"] == "unanswerable" for r in abstained) / len(abstained)) if abstained else float("nan"),
        "abstention_recall": mean(r["abstained"] for r in unanswerable),
        "format_compliance": mean(r["compliant"] for r in rows),
        "groundedness": mean(r.get("grounded") for r in rows),
        "source_accuracy": mean(r.get("source_ok") for r in rows),
        "code_runs": mean(r.get("code_runs") for r in rows),
        "latency_s": mean(r.get("latency_s") for r in rows),
    }
