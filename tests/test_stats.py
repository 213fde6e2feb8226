"""Intervals and paired tests against values computed by hand or published, and verdicts on clear and unclear cases."""

import math

import numpy as np
import pytest

from ragft.evaluation import stats


def test_wilson_matches_the_closed_form_values():
    low, high = stats.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    # 0 of 10: Wald gives [0, 0]; Wilson's upper bound is z^2 / (n + z^2)
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(1.96**2 / (10 + 1.96**2), abs=1e-3)
    assert stats.wilson(10, 10)[1] == 1.0 and stats.wilson(10, 10)[0] == pytest.approx(1 - high, abs=1e-12)
    assert all(math.isnan(x) for x in stats.wilson(0, 0))
    with pytest.raises(ValueError):
        stats.wilson(11, 10)


def test_wilson_narrows_with_n_and_widens_with_confidence():
    w = lambda k, n, c=0.95: stats.wilson(k, n, c)[1] - stats.wilson(k, n, c)[0]  # noqa: E731
    assert w(80, 100) < w(8, 10)
    assert w(8, 10, 0.99) > w(8, 10, 0.95) > w(8, 10, 0.80)


def test_proportion_ci_skips_missing_values():
    share, low, high = stats.proportion_ci([True, False, None, float("nan"), True, True])
    assert share == 0.75
    assert (low, high) == stats.wilson(3, 4)


def test_mcnemar_exact_p_values():
    # b=10, c=2: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096
    assert stats.mcnemar_p(10, 2) == pytest.approx(2 * 79 / 4096)
    assert stats.mcnemar_p(2, 10) == stats.mcnemar_p(10, 2)
    assert stats.mcnemar_p(5, 5) == 1.0 and stats.mcnemar_p(0, 0) == 1.0
    assert stats.mcnemar_p(6, 0) == pytest.approx(2 / 64)
    a = [1] * 10 + [0] * 2 + [1] * 7 + [0] * 5  # 7 both right and 5 both wrong do not count
    b = [0] * 10 + [1] * 2 + [1] * 7 + [0] * 5
    assert stats.mcnemar_exact(a, b) == (10, 2, pytest.approx(0.0385742, abs=1e-6))


def test_paired_bootstrap_is_seeded_and_centred_on_the_difference():
    rng = np.random.default_rng(1)
    a = rng.random(80) < 0.6
    b = a.copy()
    b[:20] = ~b[:20]  # the arms differ on 20 questions
    one = stats.paired_bootstrap(a, b, seed=3)
    assert one == stats.paired_bootstrap(a, b, seed=3)
    assert one != stats.paired_bootstrap(a, b, seed=4)
    diff, low, high = one
    assert diff == pytest.approx(a.mean() - b.mean())
    assert low < diff < high
    # the bootstrap SE of a mean difference is close to sd(d) / sqrt(n); 95% interval ~ +-1.96 SE
    d = a.astype(float) - b.astype(float)
    se = d.std() / np.sqrt(d.size)
    assert high - low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_pairing_is_what_narrows_the_interval():
    """Two arms that agree on most questions: the paired interval is far narrower than an unpaired one would be."""
    rng = np.random.default_rng(0)
    base = rng.random(60) < 0.5
    better = base.copy()
    better[np.flatnonzero(~base)[:8]] = True  # 8 more right, nothing else changes
    _, low, high = stats.paired_bootstrap(better, base)
    unpaired_width = 2 * 1.96 * np.sqrt(better.var() / 60 + base.var() / 60)
    assert high - low < 0.6 * unpaired_width and low > 0


def test_verdicts():
    a, b = [1] * 30 + [0] * 10, [0] * 30 + [0] * 10
    assert stats.verdict(a, b) == "supported"
    assert stats.verdict(b, a) == "contradicted"
    assert stats.verdict([1, 0, 1, 0, 1, 0], [0, 1, 1, 0, 0, 0]) == "not separable at this n"
    # one question worse of 40 cannot be told apart; "a keeps b's level" within a margin of 0.1 is supported, and
    # 12 questions worse is outside that margin
    close = [1] * 29 + [0] * 11
    assert stats.verdict(close, a) == "not separable at this n"
    assert stats.verdict(close, a, margin=0.1) == "supported"
    assert stats.verdict([1] * 18 + [0] * 22, a, margin=0.1) == "contradicted"
    # five questions decide nothing, whatever the bootstrap says (its interval of 5 identical pairs is [1, 1])
    assert stats.verdict([1] * 5, [0] * 5) == stats.verdict([1] * 5, [0] * 5, margin=0.05) == "not separable at this n"


def test_compare_reports_everything_behind_the_verdict():
    c = stats.compare([1] * 10 + [0] * 2 + [1] * 8, [0] * 10 + [1] * 2 + [1] * 8)
    assert (c.n, c.n10, c.n01) == (20, 10, 2)
    assert c.diff == pytest.approx(0.4) and c.mean_a == pytest.approx(0.9) and c.mean_b == pytest.approx(0.5)
    assert c.p_mcnemar == pytest.approx(2 * 79 / 4096)
    assert c.verdict == "supported" and c.ci[0] > 0
    assert c.as_dict()["diff_ci"] == list(c.ci)
    scores = stats.compare([0.5, 0.7, 0.9], [0.4, 0.6, 0.8])  # non-binary scores: no McNemar
    assert math.isnan(scores.p_mcnemar) and scores.diff == pytest.approx(0.1)


def test_inputs_must_be_paired():
    with pytest.raises(ValueError):
        stats.paired_bootstrap([1, 0], [1, 0, 1])
    with pytest.raises(ValueError):
        stats.compare([], [])
    with pytest.raises(ValueError):
        stats.compare([1, float("nan")], [1, 0])
