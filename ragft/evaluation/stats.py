"""Uncertainty for the arms table: a Wilson interval for each proportion, and paired comparisons of two arms answered on
the same questions (a seeded paired bootstrap of the difference, an exact McNemar test), turned into a verdict; and
Holm-Bonferroni over a family of claims, so that making many claims does not make a false one likely.

A claim is "supported" only when the paired interval of the difference excludes the claimed boundary, "contradicted"
when it lies wholly on the other side, and otherwise "not separable at this n"; in a family, the claim's p-value must
also pass after Holm's adjustment. This module computes; it does not score answers (see `scoring`) or decide which
claims to make (see `claims`).
Needs only numpy and the standard library (no scipy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

VERDICTS = ("supported", "contradicted", "not separable at this n")


MIN_PAIRS = 10  # fewer paired questions than this decide nothing: the bootstrap of a handful of 0/1 pairs is degenerate


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials; (nan, nan) when n is 0.

    Unlike the normal (Wald) interval it stays inside [0, 1] and does not collapse to a point at 0/n or n/n.
    >>> [round(x, 3) for x in wilson(8, 10)]
    [0.49, 0.943]
    """
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return (float("nan"), float("nan"))
    z = _z(confidence)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at 0/n and n/n the bound is exactly 0 or 1; the formula gives it only up to rounding
    return (0.0 if k == 0 else max(0.0, center - half), 1.0 if k == n else min(1.0, center + half))


def proportion_ci(values: Sequence, confidence: float = 0.95) -> tuple[float, float, float]:
    """(share, low, high) of the true values among those that are not None/NaN (a metric column of per-question flags).

    >>> [round(x, 3) for x in proportion_ci([True, True, False, None])]
    [0.667, 0.208, 0.939]
    """
    xs = [bool(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not xs:
        return (float("nan"), float("nan"), float("nan"))
    low, high = wilson(sum(xs), len(xs), confidence)
    return (sum(xs) / len(xs), low, high)


def _paired(a: Sequence, b: Sequence) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired arms need equal-length 1-d results on the same questions, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no questions to compare")
    if np.isnan(x).any() or np.isnan(y).any():
        raise ValueError("missing results: drop the questions either arm did not answer before comparing")
    return x, y


def paired_bootstrap(a: Sequence, b: Sequence, n_boot: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> tuple[float, float, float]:
    """(mean of a - b, low, high): a percentile bootstrap over QUESTIONS, resampling the same questions for both arms,
    so what the arms share (easy and hard questions) cancels. Seeded: the same inputs give the same interval.

    >>> paired_bootstrap([1, 1, 1, 1], [0, 0, 0, 0])
    (1.0, 1.0, 1.0)
    """
    x, y = _paired(a, b)
    d = x - y
    low, high = _interval(_bootstrap_means(d, n_boot, seed), confidence)
    return (float(d.mean()), low, high)


def _bootstrap_means(d: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(n_boot, d.size))
    return d[idx].mean(axis=1)


def _interval(means: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _p_at(means: np.ndarray, boundary: float) -> float:
    tail = min(int((means <= boundary).sum()), int((means >= boundary).sum()))
    return min(1.0, 2 * (tail + 1) / (means.size + 1))


def bootstrap_p(a: Sequence, b: Sequence, boundary: float = 0.0, n_boot: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of "the mean of a - b equals `boundary`" from the same seeded resamples as `paired_bootstrap`
    (its dual: the 95% interval excludes the boundary about when p < 0.05); add-one counted, so never 0.

    The p-value of a claim McNemar cannot test: "a keeps b's level" (boundary -margin), or scores that are not 0/1.
    >>> round(bootstrap_p([1] * 20, [0] * 20), 6), bootstrap_p([1, 0] * 10, [1, 0] * 10)
    (0.0002, 1.0)
    """
    x, y = _paired(a, b)
    return _p_at(_bootstrap_means(x - y, n_boot, seed), boundary)


def mcnemar_exact(a: Sequence, b: Sequence) -> tuple[int, int, float]:
    """Exact McNemar test on paired right/wrong results: (n10, n01, p), where n10 = questions a got right and b wrong,
    n01 = the reverse, p = the two-sided binomial p-value of n10 vs n01 under p = 1/2.

    >>> mcnemar_exact([1] * 10 + [0] * 2, [0] * 10 + [1] * 2)[2]  # b=10, c=2
    0.03857421875
    """
    x, y = _paired(a, b)
    x, y = x.astype(bool), y.astype(bool)
    n10, n01 = int((x & ~y).sum()), int((~x & y).sum())
    return (n10, n01, mcnemar_p(n10, n01))


def mcnemar_p(n10: int, n01: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts: 2 * P(X <= min) for X ~ Binomial(n10 + n01, 1/2),
    capped at 1. `mcnemar_p(10, 2) -> 0.0386`; no discordant pairs -> 1.0."""
    n = n10 + n01
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(n10, n01) + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Comparison:
    """Two arms on the same n questions: mean a, mean b, their difference with its paired bootstrap interval, McNemar's
    discordant counts and p-value, and the verdict on the claim (`claim`: "a > b" or "a >= b - margin").

    `boundary` is what the difference must exceed (0, or -margin) and `p_boundary` the bootstrap p-value there; `p_raw`
    is the claim's own p-value (McNemar's for "a > b" on 0/1 results, else `p_boundary`). After `holm_family`,
    `p_adjusted` is its Holm-adjusted p over `family` claims and `verdict` comes from it (`unadjusted_verdict` was the
    claim's verdict alone); before, `family` is 0 and `p_adjusted` NaN.
    """

    n: int
    mean_a: float
    mean_b: float
    diff: float
    ci: tuple[float, float]
    n10: int
    n01: int
    p_mcnemar: float
    claim: str
    verdict: str
    boundary: float = 0.0
    p_boundary: float = float("nan")
    p_adjusted: float = float("nan")
    family: int = 0
    unadjusted_verdict: str = ""

    @property
    def p_test(self) -> str:
        """Which test gave `p_raw`: "mcnemar" (a beats b, 0/1 results) or "bootstrap" (a margin, or scores)."""
        return "mcnemar" if self.claim == "a > b" and not math.isnan(self.p_mcnemar) else "bootstrap"

    @property
    def p_raw(self) -> float:
        return self.p_mcnemar if self.p_test == "mcnemar" else self.p_boundary

    def as_dict(self) -> dict:
        return {"n": self.n, "mean_a": self.mean_a, "mean_b": self.mean_b, "diff": self.diff, "diff_ci": list(self.ci),
                "a_only": self.n10, "b_only": self.n01, "p_mcnemar": self.p_mcnemar, "claim": self.claim,
                "verdict": self.verdict, "boundary": self.boundary, "p_raw": self.p_raw, "p_test": self.p_test,
                "p_adjusted": self.p_adjusted, "family": self.family,
                "unadjusted_verdict": self.unadjusted_verdict or self.verdict}


def decide(low: float, high: float, boundary: float = 0.0) -> str:
    """The verdict on "the difference exceeds `boundary`" from its interval [low, high].

    >>> decide(0.05, 0.30), decide(-0.30, -0.05), decide(-0.10, 0.20)
    ('supported', 'contradicted', 'not separable at this n')
    """
    if low > boundary:
        return VERDICTS[0]
    if high < boundary:
        return VERDICTS[1]
    return VERDICTS[2]


def compare(a: Sequence, b: Sequence, *, margin: float | None = None, n_boot: int = 10_000, confidence: float = 0.95,
            seed: int = 0) -> Comparison:
    """Compare arm a with arm b on the same questions (per-question 0/1 or scores, in the same order).

    margin None tests "a beats b" (the interval of a - b lies above 0; for 0/1 results McNemar's exact test must also
    reject at the same level); a margin m >= 0 tests "a keeps b's level" (the interval lies above -m: a is at most m
    worse). McNemar is reported for 0/1 results alongside.
    """
    if margin is not None and margin < 0:
        raise ValueError(f"margin must be >= 0, not {margin}")
    x, y = _paired(a, b)
    means = _bootstrap_means(x - y, n_boot, seed)  # one set of resamples: the interval and the p at the boundary
    diff, (low, high) = float((x - y).mean()), _interval(means, confidence)
    binary = bool(np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all())
    n10, n01, p = mcnemar_exact(x, y) if binary else (0, 0, float("nan"))
    boundary = 0.0 if margin is None else -margin
    claim = "a > b" if margin is None else f"a >= b - {margin:g}"
    verdict = decide(low, high, boundary)
    # With a handful of questions the bootstrap interval collapses (2 of 2 discordant pairs give [1, 1]): below
    # MIN_PAIRS no verdict is given, and for 0/1 results a "beats" verdict also needs McNemar's exact test to reject.
    if x.size < MIN_PAIRS or (binary and margin is None and verdict != VERDICTS[2] and not p < 1 - confidence):
        verdict = VERDICTS[2]
    return Comparison(int(x.size), float(x.mean()), float(y.mean()), diff, (low, high), n10, n01, p, claim, verdict,
                      boundary, _p_at(means, boundary))


def verdict(a: Sequence, b: Sequence, *, margin: float | None = None, n_boot: int = 10_000, confidence: float = 0.95,
            seed: int = 0) -> str:
    """"supported" | "contradicted" | "not separable at this n" for the claim that arm a beats arm b (or, with a
    margin, keeps b's level), from the paired bootstrap interval of a - b on the same questions.

    >>> verdict([1] * 30 + [0] * 10, [0] * 30 + [0] * 10)
    'supported'
    """
    return compare(a, b, margin=margin, n_boot=n_boot, confidence=confidence, seed=seed).verdict


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given: the i-th smallest of m p-values (i from 0) is multiplied
    by m - i, never falls below the one before it, and is capped at 1. A claim whose adjusted p < alpha is rejected with
    the chance of ANY false rejection in the family held at alpha (Holm 1979), more often than Bonferroni's m * p.
    NaN (a claim not tested) stays NaN and does not count in m.

    >>> holm([0.01, 0.04, 0.03, 0.005])  # R: p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm")
    [0.03, 0.06, 0.06, 0.02]
    """
    ps = [float(p) for p in p_values]
    if any(not math.isnan(p) and not 0 <= p <= 1 for p in ps):
        raise ValueError(f"p-values must lie in [0, 1], got {ps}")
    tested = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    out = [float("nan")] * len(ps)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))  # monotone: a smaller p never gets a larger adjustment
        out[i] = running
    return out


def decide_adjusted(low: float, high: float, boundary: float, p_adjusted: float, n: int, alpha: float = 0.05) -> str:
    """The verdict on one claim of a family: the interval [low, high] gives the direction, the adjusted p whether it
    counts. "supported" (or "contradicted") needs the interval wholly above (below) `boundary` AND p_adjusted < alpha;
    otherwise, or with fewer than MIN_PAIRS questions, "not separable at this n".

    >>> decide_adjusted(0.05, 0.30, 0.0, 0.01, 40), decide_adjusted(0.05, 0.30, 0.0, 0.2, 40)
    ('supported', 'not separable at this n')
    """
    if n < MIN_PAIRS or not p_adjusted < alpha:  # NaN compares False: no p-value, no verdict
        return VERDICTS[2]
    return decide(low, high, boundary)


def holm_family(comparisons: Sequence[Comparison], alpha: float = 0.05) -> list[Comparison]:
    """The same comparisons decided as ONE family: each keeps its raw p-value (`p_raw`), gets its Holm-adjusted one
    (`p_adjusted`), and its verdict comes from the adjusted one (`decide_adjusted`); `unadjusted_verdict` keeps the
    verdict it had alone. A single claim is a family of one: its verdict may only get stricter (its p must pass alpha).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")
    adjusted = holm([c.p_raw for c in comparisons])
    family = sum(not math.isnan(p) for p in adjusted)
    return [replace(c, p_adjusted=p, family=family, unadjusted_verdict=c.unadjusted_verdict or c.verdict,
                    verdict=decide_adjusted(c.ci[0], c.ci[1], c.boundary, p, c.n, alpha))
            for c, p in zip(comparisons, adjusted, strict=True)]
