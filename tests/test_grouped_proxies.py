"""benchmarks/grouped_proxies.py: the grouped model it times is the G proxies, and its clipping
is each proxy's own."""

import importlib.util
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from mixtune.model.build import build_model

_spec = importlib.util.spec_from_file_location(
    "grouped_proxies", Path(__file__).parents[1] / "benchmarks" / "grouped_proxies.py")
gp = importlib.util.module_from_spec(_spec)
sys.modules["grouped_proxies"] = gp
_spec.loader.exec_module(gp)


def test_grouped_model_gives_each_proxys_logits_and_gradients():
    models = [build_model("tiny", 64, 16, 0, seed) for seed in range(3)]
    x = torch.randint(0, 64, (3, 2, 17))
    weights = gp.stack(models)
    logits = gp.grouped_logits(weights, x[:, :, :-1], models[0].config)
    losses = F.cross_entropy(logits.flatten(0, 2), x[:, :, 1:].flatten(),
                             reduction="none").view(3, -1).mean(1)
    losses.sum().backward()
    for i, m in enumerate(models):
        own = m(input_ids=x[i, :, :-1]).logits
        torch.testing.assert_close(logits[i], own)
        F.cross_entropy(own.flatten(0, 1), x[i, :, 1:].flatten()).backward()
        torch.testing.assert_close(weights["0.o"].grad[i], m.model.layers[0].self_attn.o_proj.weight.grad)
        torch.testing.assert_close(weights["embed"].grad[i], m.model.embed_tokens.weight.grad)


def test_clipping_scales_each_proxy_by_its_own_norm():
    a = torch.nn.Parameter(torch.zeros(2, 3, 4))
    b = torch.nn.Parameter(torch.zeros(2, 5))
    a.grad = torch.stack([torch.full((3, 4), 3.0), torch.full((3, 4), 0.01)])
    b.grad = torch.stack([torch.full((5,), 4.0), torch.zeros(5)])
    gp.clip_per_proxy([a, b], 1.0)  # proxy 0's norm is sqrt(12·9 + 5·16) ≈ 13.7
    clipped = torch.cat([a.grad[0].flatten(), b.grad[0]])
    assert abs(clipped.norm().item() - 1.0) < 1e-5
    torch.testing.assert_close(clipped / clipped[0], torch.tensor([1.0] * 12 + [4 / 3] * 5))
    torch.testing.assert_close(a.grad[1], torch.full((3, 4), 0.01))  # under the limit: untouched
