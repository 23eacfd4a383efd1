"""The online mixer interface: the built-in methods through it, and a new method added from here.

`test-schedule` below is a complete mixture method defined in this test file: registering it is
all it takes for the training loop (unchanged) to train with it, checkpoint it and resume it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from mixtune.config import train_config
from mixtune.data.store import open_dataset
from mixtune.distributed import Dist
from mixtune.mixing import MIXERS
from mixtune.mixing.base import MixerContext, OnlineMixer
from mixtune.mixing.doremi import DoReMiConfig, DoReMiState, proxy_loss_weights
from mixtune.mixing.static import StaticConfig
from mixtune.model.build import build_model
from mixtune.model.loss import per_domain_sum, token_losses
from mixtune.train.run_dir import save_final
from mixtune.train.step import train_step

REPO = Path(__file__).parents[2]


@MIXERS.register
@dataclass
class ScheduleConfig:
    """Every step samples one domain only, the domains in turn; counts the tokens it has seen."""

    method: ClassVar[str] = "test-schedule"
    every: int = 1
    """Steps per domain."""

    def build(self, ctx: MixerContext) -> "Schedule":
        return Schedule(len(ctx.dataset.domains), self.every)


class Schedule(OnlineMixer):
    def __init__(self, k: int, every: int):
        self.k, self.every, self.seen = k, every, np.zeros(k)

    def sampling_weights(self, step):
        w = np.zeros(self.k)
        w[(step // self.every) % self.k] = 1.0
        return w

    def loss_factors(self, scores, token_counts):
        return torch.full_like(token_counts, 1.0 / float(token_counts.sum()))

    def observe(self, loss_sums, token_counts):
        self.seen = self.seen + token_counts

    def metrics(self):
        return {"domain_seen": self.seen}

    def state_dict(self):
        return {"seen": self.seen.tolist()}

    def load_state_dict(self, state):
        self.seen = np.array(state["seen"])


def rows(run_dir):
    return [r for r in map(json.loads, open(run_dir / "metrics.jsonl")) if r["kind"] == "train"]


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


# -- a method added in this file, trained end to end, killed and resumed ----------------------

SCRIPT = """
import sys, json
sys.path.insert(0, {repo!r})
import tests.mixing.test_mixers  # registers test-schedule
from mixtune.config import train_config
from mixtune.train.loop import run
run(train_config(**json.loads({kw!r})))
"""


def schedule_run(data, out, steps):
    return dict(data=str(data), out=str(out), method="test-schedule", every=2, steps=steps,
                batch_size=8, checkpoint_every=10, eval_max_tokens_per_domain=64, seed=1)


def test_a_new_method_trains_and_resumes_exactly_after_a_kill(synthetic_dataset, tmp_path):
    from mixtune.train.loop import run

    whole = run(train_config(**schedule_run(synthetic_dataset, tmp_path / "whole", 300)))
    domains = open_dataset(synthetic_dataset).domains
    for r in rows(whole):  # every sequence of step s came from domain (s // 2) mod k
        assert r["domain_sequences"][domains[((r["step"] - 1) // 2) % 5]] == 8
    assert sum(rows(whole)[-1]["domain_seen"].values()) == 300 * 8 * 32

    kw = json.dumps(schedule_run(synthetic_dataset, tmp_path / "killed", 300))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(repo=str(REPO), kw=kw)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while not (checkpoints.is_dir() and any(checkpoints.glob("step-*"))):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists()
    resumed = run(train_config(**json.loads(kw)))
    assert [r["loss"] for r in rows(resumed)] == [r["loss"] for r in rows(whole)]
    assert rows(resumed)[-1]["domain_seen"] == rows(whole)[-1]["domain_seen"]
    shutil.rmtree(tmp_path / "killed")
