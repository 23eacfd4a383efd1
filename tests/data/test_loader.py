"""DomainBatches: the CLI's global batches through torch's DataLoader, on any layout, resumable."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixtune.data.loader import DomainBatches
from mixtune.data.sampler import DomainSampler
from mixtune.data.store import open_dataset
from mixtune.errors import UserError

BATCH, STEPS = 16, 5


def cli_batches(ds, weights, steps=STEPS, seed=0):
    """What `mixtune train` draws: the whole global batch of each step, in slot order."""
    sampler = DomainSampler(ds, weights, BATCH, seed)
    out = []
    for _ in range(steps):
        plan = sampler.next()
        out.append((sampler.tokens(plan), plan.domain_ids))
    return out


def gather(batches_by_rank, grad_accum):
    """Reassemble global batches from each rank's micro-batches (slots: rank-major, then micro)."""
    steps = len(batches_by_rank[0]) // grad_accum
    out = []
    for s in range(steps):
        parts = [rank[s * grad_accum + m] for rank in batches_by_rank for m in range(grad_accum)]
        assert all(p["step"] == s for p in parts)
        out.append((torch.cat([p["input_ids"] for p in parts]).numpy(),
                    torch.cat([p["domain_ids"] for p in parts]).numpy()))
    return out


def test_two_ranks_two_workers_yield_the_cli_global_batch(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    w = np.array([0.1, 0.4, 0.2, 0.2, 0.1])
    expected = cli_batches(ds, w)
    by_rank = []
    for rank in range(2):
        batches = DomainBatches(ds, w, BATCH, seed=0, grad_accum=2, rank=rank, world_size=2,
                                steps=STEPS)
        loader = DataLoader(batches, batch_size=None, num_workers=2)
        by_rank.append(list(loader))
    assert [mb["micro"] for mb in by_rank[0]] == [0, 1] * STEPS  # in order despite two workers
    for (x, d), (ex, ed) in zip(gather(by_rank, 2), expected, strict=True):
        assert x.shape == (BATCH, ds.seq_len + 1)
        assert np.array_equal(x, ex) and np.array_equal(d, ed)


def test_weights_spec_and_env_layout(synthetic_dataset, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    batches = DomainBatches(synthetic_dataset, "uniform", BATCH, steps=1)
    assert (batches.rank, batches.world_size) == (1, 4)
    (mb,) = list(batches)
    ds = open_dataset(synthetic_dataset)
    (x, _), = cli_batches(ds, np.full(5, 0.2), steps=1)
    assert np.array_equal(mb["input_ids"].numpy(), x[4:8])  # rank 1's quarter of the batch


def test_bad_layout_is_refused(synthetic_dataset):
    with pytest.raises(UserError, match="not divisible by world size 3"):
        DomainBatches(synthetic_dataset, "uniform", BATCH, world_size=3, rank=0)


def test_step_dependent_weights(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    only = [np.eye(5)[s % 5] for s in range(STEPS)]  # step s draws domain s only
    batches = DomainBatches(ds, lambda s: only[s], BATCH, steps=STEPS)
    assert [set(mb["domain_ids"].tolist()) for mb in batches] == [{s} for s in range(STEPS)]


@pytest.mark.parametrize("cut", [3, 4])  # mid-step (micro-batch 1 of step 1) and on a step boundary
def test_resume_from_state_of_a_consumed_micro_batch(synthetic_dataset, cut):
    ds = open_dataset(synthetic_dataset)
    full = list(DomainBatches(ds, "natural", BATCH, grad_accum=2, steps=STEPS))
    # Workers run ahead of the loop; the state the loop saves is the last consumed batch's.
    loader = iter(DataLoader(DomainBatches(ds, "natural", BATCH, grad_accum=2, steps=STEPS),
                             batch_size=None, num_workers=2))
    consumed = [next(loader) for _ in range(cut)]
    resumed = DomainBatches(ds, "natural", BATCH, grad_accum=2, steps=STEPS)
    resumed.load_state_dict(consumed[-1]["state"])
    rest = list(resumed)
    assert len(rest) == len(full) - cut
    for a, b in zip(rest, full[cut:], strict=True):
        assert (a["step"], a["micro"]) == (b["step"], b["micro"])
        assert torch.equal(a["input_ids"], b["input_ids"])


def test_stateful_dataloader_saves_and_restores_workers(synthetic_dataset):
    sdl = pytest.importorskip("torchdata.stateful_dataloader")
    ds = open_dataset(synthetic_dataset)

    def loader():
        return sdl.StatefulDataLoader(DomainBatches(ds, "uniform", BATCH, grad_accum=2, steps=STEPS),
                                      batch_size=None, num_workers=2)

    full = [mb["input_ids"] for mb in loader()]
    first = loader()
    it = iter(first)
    head = [next(it)["input_ids"] for _ in range(5)]
    state = first.state_dict()
    second = loader()
    second.load_state_dict(state)
    tail = [mb["input_ids"] for mb in second]
    assert len(head) + len(tail) == len(full)
    assert all(torch.equal(a, b) for a, b in zip(head + tail, full, strict=True))
