"""The verdict's statistics (report/verdict.py): paired differences, the 90% t-interval, each of
the three sentences on constructed inputs, and one seed, which never makes a win."""

import math

import numpy as np
import pytest

from mixtune.report import verdict
from mixtune.report.verdict import (
    BEATS,
    NO_DATA,
    NONE_BETTER,
    WITHIN_NOISE,
    decide,
    interval,
    seeds_to_resolve,
    sentence,
    t95,
)


def test_t_quantiles():
    assert t95(1) == pytest.approx(6.3138, abs=1e-4) and t95(2) == pytest.approx(2.92, abs=1e-4)
    # Cornish-Fisher beyond the table: scipy.stats.t.ppf(0.95, df) = 1.6839, 1.6602
    assert t95(40) == pytest.approx(1.6839, abs=2e-4) and t95(100) == pytest.approx(1.6602, abs=1e-4)
    assert t95(30) > t95(31) > t95(1000) > 1.6449
    with pytest.raises(ValueError):
        t95(0)


def test_interval_is_mean_plus_minus_t_times_standard_error():
    mean, std, low, high = interval([-0.1, -0.2, -0.3])
    assert (mean, std) == (pytest.approx(-0.2), pytest.approx(0.1))
    half = 2.92 * 0.1 / math.sqrt(3)
    assert (low, high) == (pytest.approx(-0.2 - half, abs=1e-4), pytest.approx(-0.2 + half, abs=1e-4))
    assert interval([0.5]) == (0.5, None, None, None) and interval([]) == (None,) * 4


def test_pairing_by_seed_cancels_the_noise_both_mixtures_share():
    # Seeds move every mixture by up to 0.3; b is 0.01 below a in every seed. Unpaired, the means
    # (5.10 ± 0.15 vs 5.09 ± 0.15) would be within noise; paired, the difference is exact.
    shift = {"s0": 0.0, "s1": 0.3, "s2": 0.1}
    values = {"natural": {s: 5.0 + x for s, x in shift.items()},
              "b": {s: 4.99 + x + 0.001 * i for i, (s, x) in enumerate(shift.items())}}
    v = decide(values, "natural", "average")
    assert v.outcome == BEATS and v.recommended == "b"
    c = v.comparisons[0]
    assert c.diffs == pytest.approx([-0.01, -0.009, -0.008]) and c.high < 0 and c.beats
    text = sentence(v)
    assert text.startswith("**Train on b**: it beats the reference mixture natural on the average "
                           "beyond the seed spread: -0.0090 ± 0.0010 over 3 seeds (90% interval")


def test_within_noise_keeps_the_reference_and_says_how_many_seeds_would_resolve_it():
    values = {"natural": {"0": 1.0, "1": 1.0, "2": 1.0},
              "a": {"0": 0.9, "1": 1.05, "2": 0.95},       # −0.033 ± 0.076: within noise
              "b": {"0": 1.1, "1": 1.12, "2": 1.08}}        # +0.1 ± 0.02: worse beyond it
    v = decide(values, "natural", "average")
    assert v.outcome == WITHIN_NOISE and v.recommended == "natural"
    a, b = v.comparisons
    assert a.mixture == "a" and not a.beats and not a.worse and b.worse
    need = seeds_to_resolve(a.mean, a.std)
    assert need > 3 and t95(need - 1) * a.std / math.sqrt(need) < abs(a.mean)
    assert t95(need - 2) * a.std / math.sqrt(need - 1) >= abs(a.mean)  # the fewest that do
    text = sentence(v, target_text=lambda t: "average log-ppl")
    assert text.startswith("**Keep the reference mixture natural**: the difference is within noise.")
    assert f"about {need} seeds would resolve a difference this size at its spread" in text


def test_none_better_when_every_mixture_is_worse_on_average():
    values = {"natural": {"0": 1.0, "1": 1.1}, "a": {"0": 1.01, "1": 1.2}, "b": {"0": 1.5, "1": 1.6}}
    v = decide(values, "natural", "average")
    assert v.outcome == NONE_BETTER and v.recommended == "natural"
    assert [c.mixture for c in v.comparisons] == ["a", "b"]  # the closest first
    text = sentence(v)
    assert text.startswith("**Keep the reference mixture natural**: no mixture beats it")
    assert "(b worse beyond the spread)" in text


def test_one_seed_never_makes_a_win():
    # a is 0.5 below natural: with one seed, still no win.
    v = decide({"natural": {"0": 2.0}, "a": {"0": 1.5}}, "natural", "average")
    assert v.outcome == WITHIN_NOISE and v.recommended == "natural"
    assert not v.comparisons[0].beats and v.comparisons[0].std is None
    text = sentence(v)
    assert "with one seed (no spread: one seed never makes a win)" in text
    assert "the spread between seeds is unknown: run at least 3 seeds (`seeds: [0, 1, 2]`)" in text
    plain = sentence(v, bold=str, code=str)  # summary.json's, the terminal's, the leaderboard's
    assert "*" not in plain and "`" not in plain and "(seeds: [0, 1, 2])" in plain
    assert plain.startswith("Keep the reference mixture natural: the difference is within noise")


def test_one_paired_seed_borrows_the_spread_the_run_shows_elsewhere():
    # natural has 3 seeds (std 0.1), a only one: the unpaired spread √2·0.1 sizes the seeds.
    v = decide({"natural": {"0": 2.0, "1": 2.1, "2": 1.9}, "a": {"0": 1.9}}, "natural", "average")
    c = v.comparisons[0]
    assert c.n == 1 and c.seeds_needed == seeds_to_resolve(-0.1, math.sqrt(2) * 0.1)
    assert f"about {c.seeds_needed} seeds would resolve a difference this size at the run's " \
           "unpaired spread" in sentence(v)


def test_no_data_without_the_reference_or_a_paired_seed():
    assert decide({"a": {"0": 1.0}}, "natural", "average").outcome == NO_DATA
    v = decide({"natural": {"0": 1.0}, "a": {"1": 0.5}}, "natural", "average")
    assert v.outcome == NO_DATA and v.recommended is None
    assert sentence(v).startswith("No verdict yet")


def test_the_verdict_is_json_with_its_evidence():
    v = decide({"natural": {"0": 1.0, "1": 1.0}, "a": {"0": 0.5, "1": 0.6}}, "natural",
               {"x": 1.0}, predicted={"a": 0.4})
    obj = v.to_json()
    assert obj["outcome"] == BEATS and obj["target"] == {"x": 1.0}
    assert obj["comparisons"][0] | {"diffs": None} == obj["comparisons"][0] | {
        "mixture": "a", "n": 2, "beats": True, "worse": False, "predicted": 0.4, "diffs": None}
    assert np.isfinite(obj["comparisons"][0]["low"]) and obj["reference_value"] == 1.0


def test_among_winners_within_noise_of_each_other_the_cheapest_is_recommended():
    # a, b, c all beat natural; a and b are within noise of each other (paired), c is worse than
    # a beyond the spread. b costs nothing (a fixed mixture), a 30% of a main run.
    values = {"natural": {"0": 1.0, "1": 1.1, "2": 1.2},
              "a": {"0": 0.80, "1": 0.90, "2": 1.01},
              "b": {"0": 0.81, "1": 0.89, "2": 1.00},
              "c": {"0": 0.95, "1": 1.05, "2": 1.16}}
    v = decide(values, "natural", "average", costs={"a": 0.3, "b": 0.0, "c": 0.0, "natural": 0.0})
    assert v.outcome == BEATS and v.comparisons[0].beats
    assert v.tied == [m for m in ("a", "b") if m != v.comparisons[0].mixture]
    assert v.recommended == "b"
    text = sentence(v)
    assert text.startswith("**Train on b**: it beats the reference mixture natural")
    assert "a beats it too, within noise of b, which costs least (no method's runs in this run)" in text
    assert "; c also beats it, by less beyond the spread." in text
    assert verdict._beat(["u", "v", "w"], "also ") == "u, v and w also beat"
    # without costs the best on average stays the recommendation, and the sentence says why
    unknown = decide(values, "natural", "average")
    assert unknown.recommended == v.comparisons[0].mixture
    assert "the best on average; their costs are unknown" in sentence(unknown)


def test_a_lower_mean_within_noise_is_named_beside_the_pick():
    """a beats natural beyond the spread; b has the lower mean but a spread that does not
    separate it from natural: the sentence says so rather than let a look best on average."""
    values = {"natural": {"0": 1.0, "1": 1.1, "2": 1.2},
              "a": {"0": 0.97, "1": 1.07, "2": 1.17},
              "b": {"0": 0.80, "1": 1.15, "2": 1.05}}
    text = sentence(decide(values, "natural", "average"))
    assert text.startswith("**Train on a**")
    assert text.endswith("; b is lower on average, but within noise of natural.")


def test_a_mixture_that_is_the_reference_is_named_so_not_compared():
    """RegMix falling back to the token-share prior trains natural's own models (linked runs):
    not 'the closest, +0.0000 ± 0.0000', but the reference itself."""
    values = {"natural": {"0": 1.0, "1": 1.1, "2": 1.2}, "regmix": {"0": 1.0, "1": 1.1, "2": 1.2},
              "b": {"0": 1.10, "1": 1.15, "2": 1.25}}
    v = decide(values, "natural", "average")
    text = sentence(v)
    assert v.outcome == NONE_BETTER and "the closest, b, is +0.0667" in text
    assert text.endswith("; regmix is natural itself (the same weights, so the same models).")
    alone = sentence(decide({m: values[m] for m in ("natural", "regmix")}, "natural", "average"))
    assert alone == ("**Keep the reference mixture natural**: no other mixture to compare; regmix "
                     "is natural itself (the same weights, so the same models).")
