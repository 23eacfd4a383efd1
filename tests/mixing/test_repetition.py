"""The repetition cap and UniMax: each against hand-computed cases, and the cap's invariants."""

import json

import numpy as np
import pytest

from mixtune.errors import UserError
from mixtune.mixing.repetition import DEFAULT_MAX_EPOCHS, cap_repetition, unimax_weights

TOKENS = np.array([10.0, 100.0, 1000.0])


def test_unimax_by_hand():
    # Fewest tokens first: min(1200/3, 4·10) = 40, min(1160/2, 4·100) = 400, then the 760 left.
    assert np.allclose(unimax_weights(TOKENS, 1200, 4), np.array([40, 400, 760]) / 1200)
    assert DEFAULT_MAX_EPOCHS == 4
    assert np.array_equal(unimax_weights(TOKENS, 1200), unimax_weights(TOKENS, 1200, 4))
    # unimax:1: min(200, 10) = 10, min(295, 100) = 100, 490.
    assert np.allclose(unimax_weights(TOKENS, 600, 1), np.array([10, 100, 490]) / 600)
    # A budget every domain can fill evenly is uniform; order of domains does not matter.
    assert np.allclose(unimax_weights(np.array([1000.0, 500.0, 800.0]), 300, 4), [1 / 3] * 3)


def test_unimax_infeasible_is_natural(caplog):
    w = unimax_weights(TOKENS, 10_000, 4)  # 4 epochs of everything is 4440 < 10000
    assert np.allclose(w, TOKENS / TOKENS.sum())
    assert "exceed 4 epochs" in caplog.text


def test_unimax_refuses_bad_inputs():
    with pytest.raises(UserError, match="token budget 0"):
        unimax_weights(TOKENS, 0, 4)
    with pytest.raises(UserError, match="max_epochs"):
        unimax_weights(TOKENS, 100, 0)
    with pytest.raises(UserError, match="0 training tokens"):
        unimax_weights(np.zeros(3), 100, 4)


def test_under_the_caps_weights_come_back_unchanged():
    w = np.array([0.1, 0.3, 0.6])
    c = cap_repetition(w, TOKENS, 100, 4)  # domain 0: 0.1·100/10 = 1 epoch
    assert c.feasible and not c.capped.any()
    assert c.weights.tobytes() == w.tobytes()
    assert np.allclose(c.epochs, [1.0, 0.3, 0.06]) and np.array_equal(c.epochs, c.epochs_before)
    assert c.summary(["a", "b", "c"]) == {"max_epochs": 4.0, "capped": {}, "feasible": True}


def test_a_domain_repeated_20_times_is_capped_at_4_and_the_excess_spread_in_proportion():
    w = np.array([0.5, 0.3, 0.2])
    c = cap_repetition(w, np.array([10.0, 1000.0, 1000.0]), 400)  # domain 0: 0.5·400/10 = 20
    assert np.allclose(c.epochs_before, [20.0, 0.12, 0.08])
    cap0 = 4 * 10 / 400
    assert c.weights[0] == pytest.approx(cap0) and c.epochs[0] == pytest.approx(4.0)
    assert np.allclose(c.weights[1:], (1 - cap0) * np.array([0.3, 0.2]) / 0.5)  # ratios kept
    assert c.weights.sum() == pytest.approx(1.0)
    assert c.capped.tolist() == [True, False, False]
    s = c.summary(["a", "b", "c"])
    assert s["capped"] == {"a": {"epochs_before": pytest.approx(20.0),
                                 "epochs_after": pytest.approx(4.0)}}
    json.dumps(s)


def test_water_filling_cascades_when_the_excess_pushes_another_domain_over():
    # T = 100, E = 1: caps are 0.1, 0.3, 1.0. Domain 0 (0.5) is capped; its 0.4 goes 0.3:0.2 to
    # domains 1 and 2, lifting domain 1 to 0.3 + 0.24 = 0.54 > 0.3: it is capped too, and
    # domain 2 takes the rest, 1 - 0.1 - 0.3 = 0.6.
    c = cap_repetition(np.array([0.5, 0.3, 0.2]), np.array([10.0, 30.0, 100.0]), 100, 1)
    assert np.allclose(c.weights, [0.1, 0.3, 0.6])
    assert c.capped.tolist() == [True, True, False]
    assert np.allclose(c.epochs, [1.0, 1.0, 0.6])
    assert set(c.summary(["a", "b", "c"])["capped"]) == {"a", "b"}


def test_zero_weight_domains_stay_zero_unless_the_rest_cannot_take_the_excess():
    n = np.array([10.0, 1000.0, 1000.0])
    c = cap_repetition(np.array([0.5, 0.5, 0.0]), n, 400)
    assert c.weights[2] == 0.0 and np.allclose(c.weights, [0.1, 0.9, 0.0])
    # Caps 0.1, 0.2, 0.4, 0.6 (E = 1, T = 100): a and b reach theirs (0.3 of the mixture) and
    # the 0.7 left goes to the zero-weight c and d in proportion to their capacity, 0.4 : 0.6.
    n = np.array([10.0, 20.0, 40.0, 60.0])
    c = cap_repetition(np.array([0.5, 0.5, 0.0, 0.0]), n, 100, 1)
    assert np.allclose(c.weights, [0.1, 0.2, 0.7 * 0.4, 0.7 * 0.6])
    assert c.capped.tolist() == [True, True, False, False] and c.feasible


def test_empty_domains_get_nothing():
    c = cap_repetition(np.array([0.2, 0.8]), np.array([0.0, 1000.0]), 100)
    assert c.weights.tolist() == [0.0, 1.0] and c.capped.tolist() == [True, False]
    assert c.summary(["empty", "big"])["capped"]["empty"] == {"epochs_before": None,
                                                              "epochs_after": 0.0}


def test_infeasible_cap_repeats_every_domain_equally():
    # 4 epochs of all 1110 tokens is 4440 < 10000 tokens: the natural mixture, 9 epochs each.
    c = cap_repetition(np.array([0.5, 0.3, 0.2]), TOKENS, 10_000)
    assert not c.feasible
    assert np.allclose(c.weights, TOKENS / TOKENS.sum())
    assert np.allclose(c.epochs, 10_000 / TOKENS.sum())
    assert c.summary(["a", "b", "c"])["feasible"] is False


def test_cap_refuses_bad_inputs():
    with pytest.raises(UserError, match="max_epochs"):
        cap_repetition(np.array([0.5, 0.5]), np.array([1.0, 1.0]), 10, -1)
    with pytest.raises(UserError, match="weights"):
        cap_repetition(np.array([0.0, 0.0]), np.array([1.0, 1.0]), 10)


def test_capped_mixtures_sum_to_one_and_keep_every_cap():
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(2, 8))
        w = rng.dirichlet(np.full(k, 0.5)) * (rng.random(k) < 0.8)
        if w.sum() == 0:
            continue
        w /= w.sum()
        n = rng.integers(0, 1000, size=k).astype(float) * (rng.random(k) < 0.9)
        if n.sum() == 0:
            continue
        budget, e = float(rng.uniform(10, 5000)), float(rng.uniform(0.5, 5))
        c = cap_repetition(w, n, budget, e)
        assert c.weights.sum() == pytest.approx(1.0)
        assert np.all(c.weights >= 0) and np.all(c.weights[n == 0] == 0)
        if c.feasible:
            assert np.all(c.epochs <= e * (1 + 1e-9))
            uncapped = ~c.capped & (w > 0)  # ratios among uncapped positive domains are kept
            if uncapped.sum() > 1:
                ratio = c.weights[uncapped] / w[uncapped]
                assert np.allclose(ratio, ratio[0])
        else:
            assert np.allclose(c.epochs[n > 0], budget / n.sum())
