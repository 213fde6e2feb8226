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


def test_the_module_examples_hold():
    import doctest

    assert doctest.testmod(stats).failed == 0


def test_holm_matches_the_textbook_and_stays_between_raw_and_bonferroni():
    # Holm (1979) as R's p.adjust(c(0.01, 0.04, 0.03, 0.005), "holm") computes it
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    rng = np.random.default_rng(0)
    ps = list(rng.random(24) ** 3)
    adjusted = stats.holm(ps)
    assert all(p <= a <= min(1.0, 24 * p) for p, a in zip(ps, adjusted, strict=True))  # never below raw, never above Bonferroni
    order = np.argsort(ps)
    assert all(np.diff(np.asarray(adjusted)[order]) >= 0)  # monotone in the raw p
    assert stats.holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert stats.holm([0.03]) == [0.03]  # a family of one is not adjusted
    assert stats.holm([]) == []
    nan_in = stats.holm([0.01, float("nan"), 0.04])  # an untested claim is not in the family: m = 2
    assert nan_in[0] == pytest.approx(0.02) and math.isnan(nan_in[1]) and nan_in[2] == pytest.approx(0.04)
    with pytest.raises(ValueError):
        stats.holm([1.5])


def test_bootstrap_p_is_the_dual_of_the_interval():
    a, b = [1] * 12 + [0] * 28, [0] * 12 + [0] * 28
    assert stats.bootstrap_p(a, b) == stats.bootstrap_p(a, b)  # seeded
    assert stats.bootstrap_p(a, b) < 0.001 and stats.bootstrap_p(a, a) == 1.0
    rng = np.random.default_rng(5)
    for _ in range(20):
        x, y = rng.random(50) < 0.6, rng.random(50) < 0.5
        diff, low, high = stats.paired_bootstrap(x, y)
        p = stats.bootstrap_p(x, y, -0.05)
        if low > -0.05 + 0.01 or high < -0.05 - 0.01:  # clearly outside: p below 0.05, and the reverse
            assert p < 0.05
        elif low < -0.05 - 0.01 < -0.05 + 0.01 < high:
            assert p > 0.05


def test_a_family_keeps_raw_p_and_decides_from_the_adjusted_one():
    # one clear win (10 vs 0 discordant: p = 0.002) and a marginal one (10 vs 2: p = 0.039), among 6 claims
    clear = stats.compare([1] * 10 + [0] * 30, [0] * 40)
    marginal = stats.compare([1] * 10 + [0] * 2 + [1] * 8, [0] * 10 + [1] * 2 + [1] * 8)
    nothing = stats.compare([1, 0] * 10, [0, 1] * 10)
    assert marginal.verdict == "supported" and marginal.p_test == "mcnemar" and marginal.p_raw == marginal.p_mcnemar
    a, b = [1] * 10 + [0] * 2 + [1] * 8, [0] * 10 + [1] * 2 + [1] * 8  # the interval and p are those of the functions
    assert (marginal.diff, *marginal.ci) == stats.paired_bootstrap(a, b) and marginal.p_boundary == stats.bootstrap_p(a, b)
    family = stats.holm_family([clear, marginal] + [nothing] * 4)
    assert [c.family for c in family] == [6] * 6
    assert family[0].verdict == "supported" and family[0].p_adjusted == pytest.approx(6 * clear.p_raw)
    # alone it was supported; Holm over the family: its p is at best doubled, 0.077 >= 0.05
    assert family[1].unadjusted_verdict == "supported" and family[1].verdict == "not separable at this n"
    assert family[1].p_raw == marginal.p_mcnemar and family[1].p_adjusted > 0.05
    assert family[1].as_dict()["p_adjusted"] == family[1].p_adjusted and family[1].as_dict()["unadjusted_verdict"] == "supported"
    # a family of one decides as the claim alone did
    assert stats.holm_family([marginal])[0].verdict == "supported"
    # the other direction needs the adjusted p too
    lost = stats.holm_family([stats.compare([0] * 40, [1] * 10 + [0] * 30)])[0]
    assert lost.verdict == "contradicted"


def test_a_keeps_claim_is_tested_at_its_margin_not_by_mcnemar():
    a, b = [1] * 29 + [0] * 11, [1] * 30 + [0] * 10  # one question worse of 40
    keeps = stats.compare(a, b, margin=0.1)
    assert keeps.verdict == "supported" and keeps.p_test == "bootstrap" and keeps.boundary == -0.1
    assert keeps.p_mcnemar == 1.0 and keeps.p_raw < 0.05  # McNemar says "no difference"; the margin claim holds
    assert stats.holm_family([keeps])[0].verdict == "supported"
    scores = stats.compare([0.5, 0.7, 0.9] * 5, [0.4, 0.6, 0.8] * 5)  # scores: the bootstrap's p at 0
    assert scores.p_test == "bootstrap" and scores.p_raw == scores.p_boundary


def test_decide_adjusted_needs_the_interval_and_the_adjusted_p():
    assert stats.decide_adjusted(0.05, 0.3, 0.0, 0.01, 40) == "supported"
    assert stats.decide_adjusted(-0.3, -0.05, 0.0, 0.01, 40) == "contradicted"
    assert stats.decide_adjusted(-0.1, 0.3, 0.0, 0.01, 40) == "not separable at this n"
    assert stats.decide_adjusted(0.05, 0.3, 0.0, 0.06, 40) == "not separable at this n"
    assert stats.decide_adjusted(0.05, 0.3, 0.0, float("nan"), 40) == "not separable at this n"
    assert stats.decide_adjusted(0.05, 0.3, 0.0, 0.001, 5) == "not separable at this n"  # too few questions
