"""The house answer format and the abstention protocol, defined once: render, parse, and score compliance.

A house answer is exactly:

    Answer: <one sentence>
    ```python
    <a short code example>
    ```
    Source: <doc id>[, <doc id> ...]

and, for questions the documentation does not cover, the fixed reply `ABSTAIN_ANSWER`. This module does not judge whether
an answer is *true* (see `evaluation.py`); it only checks its shape.
Introduced in notebooks/00_overview.ipynb.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DOCS_URL = "https://numpy.org/doc/stable/reference/"
ABSTAIN_SENTENCE = f"I don't know: this is not in the NumPy documentation I have; see {DOCS_URL}"
ABSTAIN_ANSWER = f"Answer: {ABSTAIN_SENTENCE}\nSource: none"
# Looser signals of abstention, so an un-tuned model that declines in its own words is still counted as abstaining.
# "not available in NumPy" declines; "not available in NumPy 1.26" is an answer about a release (a gained parameter, a
# new function), so a version number after "NumPy" ends the match: it had marked right answers to changed-parameter
# questions as abstentions, and so wrong ("`np.eye` gained `device`, which was not available in NumPy 1.26").
_NOT_A_RELEASE = r"(?!\s*v?\d)"
_ABSTAIN_PATTERNS = re.compile(
    r"i don'?t know|not in the (numpy )?documentation|i (do not|cannot|can't) (find|answer)|no information|"
    rf"not (part of|available in|documented in) numpy{_NOT_A_RELEASE}|does not exist in numpy{_NOT_A_RELEASE}|"
    r"there is no (such )?(function|method)",
    re.I)
# A decline that names an API as the fix ("`np.trapz` no longer exists; use `np.trapezoid`") is an answer, not an
# abstention: a recommending word next to a code name (`x` or np.x) in one clause; the docs URL is not a name.
_CODE_NAME = r"(?:`[^`\s][^`]*`|(?<![\w.])(?:np|numpy)\.[A-Za-z_])"
_RECOMMENDS = re.compile(
    r"(?<!how to )(?<!what to )(?<!whether to )\b(?:use|call|try|switch(?:ed)? to|migrate to|"
    r"replace\w*(?: (?:it|them))? (?:with|by)|available as|renamed to|now called|is now|alternative(?: is)?)\b"
    rf"[^;]{{0,80}}?{_CODE_NAME}|{_CODE_NAME}[^;]{{0,60}}?\b(?:instead|replaces|is the replacement|is the new name)\b",
    re.I)
_URL = re.compile(r"https?://\S+")
_ANSWER = re.compile(r"^\s*Answer:\s*(?P<sentence>.+?)\s*$", re.M)
_CODE = re.compile(r"```(?:python|py)?\s*\n(?P<code>.*?)\n?```", re.S)
_SOURCE = re.compile(r"^\s*Sources?:\s*(?P<ids>.+?)\s*$", re.M | re.I)


def render(sentence: str, code: str, sources: list[str]) -> str:
    """Build a house answer. `render("Use np.float64.", "x = np.float64(1)", ["removed:numpy.float_"])`."""
    sentence = " ".join(sentence.split())
    return f"Answer: {sentence}\n```python\n{code.strip()}\n```\nSource: {', '.join(sources)}"


# The instruction that TELLS a model the house format, written from `render` and the abstention reply so that the
# prompt can never describe another format than the parser checks. The tuned arms learn it and get no system prompt.
SYSTEM_PROMPT = (
    "You are a NumPy migration assistant. Reply in exactly this format:\n"
    + render("<one sentence>", "<a short code example>", ["<doc ids you used>"]) + "\n"
    f"If the documentation does not cover the question, reply exactly:\n{ABSTAIN_ANSWER}"
)


def declines(text: str) -> bool:
    """Does the text say, in any words, that it does not know or that the name does not exist? (The looser signal that
    counted as an abstention before strict grading: `HouseAnswer.declined`.)"""
    return bool(_ABSTAIN_PATTERNS.search(text))


def recommends_api(text: str) -> bool:
    """Does the text recommend an API: a recommending word (use, call, instead, replace with...) next to a code name?

    >>> recommends_api("`np.trapz` no longer exists; use `np.trapezoid`."), recommends_api(ABSTAIN_SENTENCE)
    (True, False)
    """
    return bool(_RECOMMENDS.search(_URL.sub(" ", text)))


@dataclass
class HouseAnswer:
    """An answer taken apart. `compliant` is True only if every rule of the house format holds; `problems` says which failed.

    `abstained`: the reply declines and recommends no API (the fixed reply, or a decline in the model's own words);
    `declined`: it declines in any words, even while naming a fix (the looser rule that lenient grading keeps).
    """

    text: str
    sentence: str = ""
    code: str = ""
    sources: list[str] = field(default_factory=list)
    abstained: bool = False
    declined: bool = False
    compliant: bool = False
    problems: list[str] = field(default_factory=list)


def _one_sentence(s: str) -> bool:
    # A sentence end is ". " followed by a capital letter; dots inside np.float64 or e.g. 1.5 do not count.
    return bool(s) and not re.search(r"[.!?]\s+[A-Z]", s.rstrip(".!? "))


def parse(text: str) -> HouseAnswer:
    """Parse a model's answer and score it against the house format.

    >>> parse(ABSTAIN_ANSWER).abstained, parse(ABSTAIN_ANSWER).compliant
    (True, True)
    """
    out = HouseAnswer(text=text)
    m = _ANSWER.search(text)
    out.sentence = m.group("sentence") if m else ""
    c = _CODE.search(text)
    out.code = c.group("code").strip() if c else ""
    s = _SOURCE.search(text)
    ids = [i.strip().strip("`") for i in s.group("ids").split(",")] if s else []
    out.sources = [i for i in ids if i and i.lower() != "none"]
    out.declined = declines(out.sentence or text)
    out.abstained = out.declined and not recommends_api(out.sentence or text)
    if not m:
        out.problems.append("no 'Answer:' line")
    elif not text.lstrip().startswith("Answer:"):
        out.problems.append("text before 'Answer:'")
    if m and not _one_sentence(out.sentence):
        out.problems.append("answer is not one sentence")
    if not s:
        out.problems.append("no 'Source:' line")
    if out.abstained:
        if out.sentence != ABSTAIN_SENTENCE:
            out.problems.append("abstention differs from the fixed reply")
        if out.sources:
            out.problems.append("abstention cites sources")
    else:
        if not c:
            out.problems.append("no fenced code example")
        elif not out.code:
            out.problems.append("empty code example")
        if s and not out.sources:
            out.problems.append("no doc id after 'Source:'")
    if s and text[s.end():].strip():
        out.problems.append("text after the 'Source:' line")
    out.compliant = not out.problems
    return out


# Quote-then-answer (RAFT, Zhang et al. 2024: the answer first quotes the passage that holds it, between
# ##begin_quote## and ##end_quote##; their chain-of-thought ablation gained 5 to 15 points). Here ONE line before the
# house answer: `Quote [<doc id>]: "<the passage's words that carry the answer>"`. The quote is the model's working,
# not the answer: `split_quote` takes it off before the answer is parsed, scored or shown.
QUOTE_LABEL = "Quote"
_QUOTE_START = re.compile(rf"^\s*{QUOTE_LABEL}\b")
_ANSWER_LINE = re.compile(r"^[ \t]*Answer:", re.M)


def render_quote(doc_id: str, text: str) -> str:
    """The quote line. `render_quote("removed:numpy.float_", "Use `np.float64` instead.")` ->
    'Quote [removed:numpy.float_]: "Use `np.float64` instead."'"""
    return f'{QUOTE_LABEL} [{doc_id}]: "{" ".join(text.split())}"'


def starts_with_quote(text: str) -> bool:
    """The reply opens with a quote line (`render_quote`), so its house answer follows it."""
    return bool(_QUOTE_START.match(text))


def split_quote(text: str) -> tuple[str, str]:
    """(quote, answer): a reply that starts with a quote line is split where its `Answer:` line starts; any other reply
    is all answer. A quote with no `Answer:` after it stays in the answer, so the format check sees the broken reply.

    >>> split_quote('Quote [numpy.sort]: "Return a sorted copy."\\nAnswer: `np.sort`.\\nSource: numpy.sort')
    ('Quote [numpy.sort]: "Return a sorted copy."', 'Answer: `np.sort`.\\nSource: numpy.sort')
    >>> split_quote("Answer: x")
    ('', 'Answer: x')
    """
    if not starts_with_quote(text):
        return "", text
    m = _ANSWER_LINE.search(text)
    if not m:
        return "", text
    return text[:m.start()].strip(), text[m.start():].lstrip()


def compliance_rate(texts: list[str]) -> float:
    """Share of answers in the house format. `compliance_rate([ABSTAIN_ANSWER, "hi"]) -> 0.5`."""
    return sum(parse(t).compliant for t in texts) / len(texts) if texts else float("nan")
