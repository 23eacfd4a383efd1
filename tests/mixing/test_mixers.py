"""The online mixer interface: the built-in methods through it give the loop's numbers exactly.
(A new online method added from a test file: test_plugin_online.py; an offline one:
test_plugin_offline.py.)"""

import numpy as np
import pytest
import torch

from mixtune.data.store import open_dataset
from mixtune.distributed import Dist
from mixtune.mixing.base import MixerContext
from mixtune.mixing.doremi import DoReMiConfig, DoReMiState, proxy_loss_weights
from mixtune.mixing.static import StaticConfig
from mixtune.model.build import build_model
from mixtune.model.loss import per_domain_sum, token_losses
from mixtune.train.config import train_config
from mixtune.train.run_dir import save_final
from mixtune.train.step import train_step

# -- the built-in methods through the interface give today's numbers ---------------------------

ONE = Dist(0, 1, 0, torch.device("cpu"))


@pytest.fixture(scope="module")
def setting(synthetic_dataset, tmp_path_factory):
    """A dataset, a fixed global batch, and a saved reference model."""
    ds = open_dataset(synthetic_dataset)
    k, T = len(ds.domains), ds.seq_len
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, ds.vocab_size, (8, T + 1), generator=g)
    dom = torch.tensor([0, 0, 1, 2, 2, 2, 4, 4])  # domain 3 absent
    ref_dir = tmp_path_factory.mktemp("ref") / "ref"
    reference = build_model("tiny", ds.vocab_size, T, ds.eos_id, seed=11)
    cfg = train_config(data=str(synthetic_dataset), out=str(ref_dir), steps=1)
    save_final(reference, ds, cfg, ref_dir / "final", T)
    counts = torch.as_tensor(np.bincount(dom.numpy(), minlength=k) * T, dtype=torch.float64)
    return ds, x, dom, counts, reference, ref_dir


def step_through(mixer, ds, x, dom, counts, accum):
    model = build_model("tiny", ds.vocab_size, ds.seq_len, ds.eos_id, seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batches = list(zip(x.chunk(accum), dom.chunk(accum), strict=True))
    result = train_step(model, model, batches, mixer, counts, opt, amp=None, world_size=1,
                        grad_clip=1e9)
    return result, model


def plain_step(ds, x, dom, factors):
    """The computation as the loop wrote it before the interface existed."""
    model = build_model("tiny", ds.vocab_size, ds.seq_len, ds.eos_id, seed=5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = token_losses(model, x, None)
    loss = (losses * factors(losses.detach())[dom][:, None]).sum()
    loss.backward()
    opt.step()
    return float(loss.detach().double()), model


@pytest.mark.parametrize("accum", [1, 2])
def test_static_mixer_is_the_batch_mean(setting, accum):
    ds, x, dom, counts, _, _ = setting
    mixer = StaticConfig("uniform").build(MixerContext(ds, torch.device("cpu")))
    result, model = step_through(mixer, ds, x, dom, counts, accum)
    expected, reference_model = plain_step(
        ds, x, dom, lambda _: torch.full((5,), 1.0 / x[:, 1:].numel()))
    # float32 partial sums: the same to the last bit with one micro-batch, to rounding with two
    assert result.objective == pytest.approx(expected, rel=1e-12 if accum == 1 else 1e-6)
    for a, b in zip(model.parameters(), reference_model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-7)


@pytest.mark.parametrize("accum", [1, 2])
def test_doremi_mixer_matches_algorithm_1(setting, accum):
    ds, x, dom, counts, reference, ref_dir = setting
    cfg = DoReMiConfig(reference=str(ref_dir), eta=0.7, smoothing=0.01)
    mixer = cfg.build(MixerContext(ds, torch.device("cpu")))
    result, model = step_through(mixer, ds, x, dom, counts, accum)

    state = DoReMiState.uniform(5)

    def factors(proxy_losses):
        with torch.no_grad():
            excess = (proxy_losses - token_losses(reference, x, None)).clamp_min(0)
        alpha = state.update(per_domain_sum(excess, dom, 5).numpy(), counts.numpy(), 0.7, 0.01)
        f = proxy_loss_weights(torch.as_tensor(alpha), counts, torch.full((5,), 0.2), "domain")
        return f.float()

    expected, expected_model = plain_step(ds, x, dom, factors)
    assert np.allclose(mixer.doremi.state.alpha, state.alpha, rtol=0, atol=1e-12)
    assert mixer.doremi.state.last_excess[3] == 0  # the absent domain keeps its λ (0 at the start)
    assert result.objective == pytest.approx(expected, rel=1e-6)
    for a, b in zip(model.parameters(), expected_model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert np.array_equal(mixer.result(), state.average)
