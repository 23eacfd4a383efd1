import math

import numpy as np
import pytest
import torch

from mixtune.mixing.doremi import (
    DoReMi,
    DoReMiState,
    excess_per_domain,
    proxy_loss_weights,
    step,
)


def test_step_matches_algorithm_1_by_hand():
    alpha = np.array([0.5, 0.3, 0.2])
    lam = np.array([0.1, 0.0, 0.4])
    eta, c = 1.0, 1e-3
    # log α' = log α + η λ, softmax, then smoothing: computed here without the library's tricks.
    raw = [0.5 * math.exp(0.1), 0.3 * math.exp(0.0), 0.2 * math.exp(0.4)]
    z = sum(raw)
    expected = [(1 - c) * r / z + c / 3 for r in raw]
    assert np.allclose(step(alpha, lam, eta, c), expected, rtol=0, atol=1e-15)


def test_step_numbers():
    # Hand-computed: uniform α over 2 domains, λ = (ln 3, 0), η = 1, c = 0 -> softmax(ln 3, 0) = (3/4, 1/4).
    assert np.allclose(
        step(np.array([0.5, 0.5]), np.array([math.log(3), 0.0]), 1.0, 0.0), [0.75, 0.25]
    )
    # With c = 0.2: 0.8·(3/4) + 0.1 = 0.7 and 0.8·(1/4) + 0.1 = 0.3.
    assert np.allclose(
        step(np.array([0.5, 0.5]), np.array([math.log(3), 0.0]), 1.0, 0.2), [0.7, 0.3]
    )


def test_step_torch_in_torch_out_and_stable_for_large_excess():
    a = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float32)
    out = step(a, torch.tensor([1000.0, 0, 0, 0]), eta=1.0, smoothing=1e-3)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert torch.allclose(out, torch.tensor([1 - 3e-3 / 4, 1e-3 / 4, 1e-3 / 4, 1e-3 / 4]))
    assert math.isclose(float(out.sum()), 1.0, rel_tol=1e-6)


def test_absent_domain_keeps_previous_excess():
    lam = excess_per_domain([2.0, 0.0, 3.0], [4, 0, 6], previous=[9.0, 7.0, 9.0])
    assert lam.tolist() == [0.5, 7.0, 0.5]


def test_average_is_mean_of_history():
    s = DoReMiState.uniform(3)
    hist = []
    for t in range(5):
        hist.append(s.update([t, 1.0, 0.0], [1, 1, 1], eta=0.5, smoothing=1e-3).copy())
    assert np.allclose(s.average, np.mean(hist, axis=0))
    restored = DoReMiState.from_state_dict(s.state_dict())
    assert np.array_equal(restored.alpha, s.alpha) and restored.steps == 5


def test_proxy_loss_domain_normalisation():
    # Global batch: domain 0 has tokens with losses [1, 3] (mean 2), domain 1 has [4] (mean 4),
    # domain 2 is absent. Paper: Σ α_i mean_i = 0.5·2 + 0.3·4 = 2.2.
    losses = torch.tensor([1.0, 3.0, 4.0], dtype=torch.float64)
    dom = torch.tensor([0, 0, 1])
    alpha = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    counts = torch.tensor([2.0, 1.0, 0.0])
    f = proxy_loss_weights(alpha, counts, torch.full((3,), 1 / 3), "domain")
    assert math.isclose(float((losses * f[dom]).sum()), 2.2, rel_tol=1e-12)


def test_proxy_loss_token_normalisation():
    # Reference code: Σ_j w_d(j) ℓ_j / Σ_j w_d(j), w = α / sampling (uniform here -> w ∝ α):
    # (0.5·1 + 0.5·3 + 0.3·4) / (0.5 + 0.5 + 0.3) = 3.2 / 1.3.
    losses = torch.tensor([1.0, 3.0, 4.0], dtype=torch.float64)
    dom = torch.tensor([0, 0, 1])
    alpha = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    counts = torch.tensor([2.0, 1.0, 0.0])
    f = proxy_loss_weights(alpha, counts, torch.full((3,), 1 / 3), "token")
    assert math.isclose(float((losses * f[dom]).sum()), 3.2 / 1.3, rel_tol=1e-12)
    # The two forms differ whenever domains have unequal token counts.
    g = proxy_loss_weights(alpha, counts, torch.full((3,), 1 / 3), "domain")
    assert not math.isclose(float((losses * f[dom]).sum()), float((losses * g[dom]).sum()))


def test_proxy_loss_unknown_normalisation():
    with pytest.raises(ValueError):
        proxy_loss_weights(torch.ones(2), torch.ones(2), torch.ones(2), "bogus")


# -- the public API: DoReMi.add / update / loss ------------------------------------------------


def batch(seed, b=6, t=4, k=3):
    g = torch.Generator().manual_seed(seed)
    losses = torch.rand(b, t, generator=g) * 3
    ref = torch.rand(b, t, generator=g) * 3
    dom = torch.randint(0, k, (b,), generator=g)
    return losses, ref, dom


def test_api_step_is_algorithm_1_on_the_whole_batch():
    losses, ref, dom = batch(0)
    doremi = DoReMi(["a", "b", "c"])
    # Two micro-batches of three rows: α_t must equal the update on the whole batch.
    for rows in (slice(0, 3), slice(3, 6)):
        doremi.add(losses[rows], ref[rows], dom[rows])
    alpha = doremi.update()
    excess = (losses - ref).clamp_min(0).sum(1).double()  # row sums as per_domain_sum takes them
    lam = np.zeros(3)
    for i in range(3):
        n = int((dom == i).sum()) * 4
        lam[i] = float(excess[dom == i].sum()) / n if n else 0.0
    assert np.allclose(alpha, step(np.full(3, 1 / 3), lam), rtol=0, atol=1e-12)
    assert np.allclose(doremi.weights, alpha) and doremi.steps == 1
    # The loss over the micro-batches is Σ_i α_i · mean loss of domain i.
    total = sum(doremi.loss(losses[r], dom[r]) for r in (slice(0, 3), slice(3, 6)))
    means = [float(losses[dom == i].mean()) if (dom == i).any() else 0.0 for i in range(3)]
    assert float(total) == pytest.approx(float(np.dot(alpha, means)), rel=1e-6)


def test_api_mask_counts_only_target_tokens():
    losses, ref, dom = batch(1)
    mask = torch.ones_like(losses)
    mask[:, 2:] = 0  # padding: must not count, whatever its losses
    masked, cut = DoReMi("abc"), DoReMi("abc")
    masked.add(losses, ref, dom, mask)
    cut.add(losses[:, :2], ref[:, :2], dom)
    assert np.allclose(masked.update(), cut.update(), rtol=0, atol=1e-15)
    assert float(masked.loss(losses, dom, mask)) == pytest.approx(float(cut.loss(losses[:, :2], dom)))


def test_api_loss_is_scaled_for_data_parallel_averaging():
    losses, ref, dom = batch(2)
    one, two = DoReMi("abc", world_size=1), DoReMi("abc", world_size=2)
    for d in (one, two):
        d.add(losses, ref, dom)
        d.update()
    assert float(two.loss(losses, dom)) == pytest.approx(2 * float(one.loss(losses, dom)))


def test_api_misuse_and_state_round_trip():
    doremi = DoReMi("abc")
    with pytest.raises(RuntimeError, match="call update"):
        doremi.loss(*batch(0)[::2])
    with pytest.raises(RuntimeError, match="no micro-batch"):
        doremi.update()
    for s in range(3):
        losses, ref, dom = batch(s)
        doremi.add(losses, ref, dom)
        doremi.update()
    again = DoReMi("abc")
    again.load_state_dict(doremi.state_dict())
    losses, ref, dom = batch(9)
    for d in (doremi, again):
        d.add(losses, ref, dom)
    assert np.array_equal(doremi.update(), again.update())
    assert np.array_equal(doremi.average, again.average)
    with pytest.raises(ValueError, match="3 domains, this run 2"):
        DoReMi("ab").load_state_dict(doremi.state_dict())
