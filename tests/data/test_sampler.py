import numpy as np
import pytest

from mixtune.data.sampler import DomainSampler, check_layout, permute, slot_range
from mixtune.data.store import open_dataset
from mixtune.errors import UserError


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_permute_is_a_bijection(n):
    out = permute(np.arange(n), n, seed=1, domain=2, epoch=3)
    assert sorted(out.tolist()) == list(range(n))


def test_permute_depends_on_seed_domain_epoch():
    n = 500
    base = permute(np.arange(n), n, 0, 0, 0)
    assert not np.array_equal(base, np.arange(n))
    for args in [(1, 0, 0), (0, 1, 0), (0, 0, 1)]:
        assert not np.array_equal(base, permute(np.arange(n), n, *args))
    assert np.array_equal(base, permute(np.arange(n), n, 0, 0, 0))


def make(ds, weights=None, batch=16, seed=0):
    k = len(ds.domains)
    w = np.full(k, 1 / k) if weights is None else np.asarray(weights, float)
    return DomainSampler(ds, w, batch, seed)


def test_batches_are_deterministic_and_seeded(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    a, b, c = make(ds), make(ds), make(ds, seed=1)
    for _ in range(5):
        pa, pb, pc = a.next(), b.next(), c.next()
        assert np.array_equal(pa.domain_ids, pb.domain_ids) and np.array_equal(
            pa.seq_ids, pb.seq_ids
        )
        assert np.array_equal(a.tokens(pa), b.tokens(pb))
    assert not np.array_equal(a.tokens(pa), c.tokens(pc))


def test_resume_from_state_equals_uninterrupted(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    full = make(ds)
    plans = [full.next() for _ in range(40)]
    first = make(ds)
    for _ in range(17):
        first.next()
    resumed = make(ds)
    resumed.load_state_dict(first.state_dict())  # O(1): a step counter and k positions
    for p in plans[17:]:
        q = resumed.next()
        assert q.step == p.step
        assert np.array_equal(q.domain_ids, p.domain_ids) and np.array_equal(q.seq_ids, p.seq_ids)


def test_without_replacement_within_an_epoch(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    k = len(ds.domains)
    w = np.zeros(k)
    w[0] = 1.0
    s = make(ds, weights=w, batch=8)
    n = int(s.num_seqs[0])
    seen = np.concatenate([s.next().seq_ids for _ in range(-(-3 * n // 8))])
    for e in range(3):
        epoch = seen[e * n : (e + 1) * n]
        assert sorted(epoch.tolist()) == list(range(n)), f"epoch {e} repeats or misses sequences"
    assert not np.array_equal(seen[:n], seen[n : 2 * n]), "each epoch has a fresh order"


def test_tokens_are_the_packed_windows(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    s = make(ds)
    plan = s.next()
    x = s.tokens(plan)
    L = ds.seq_len
    assert x.shape == (16, L + 1)
    for row, d, i in zip(x, plan.domain_ids, plan.seq_ids, strict=True):
        raw = ds.tokens("train", ds.domains[d])
        assert np.array_equal(row, raw[i * L : i * L + L + 1])


@pytest.mark.parametrize("world,accum", [(1, 1), (2, 1), (1, 2), (2, 2), (4, 4)])
def test_layout_slices_cover_the_global_batch(synthetic_dataset, world, accum):
    ds = open_dataset(synthetic_dataset)
    plan = make(ds).next()
    ref = make(ds)
    whole = ref.tokens(ref.next())
    parts = [
        make(ds).tokens(plan, slot_range(16, world, r, accum, m))
        for r in range(world)
        for m in range(accum)
    ]
    assert np.array_equal(np.concatenate(parts), whole)


def test_layout_must_divide_batch():
    assert check_layout(16, 2, 4) == 2
    with pytest.raises(UserError, match="not divisible"):
        check_layout(10, 2, 2)


def test_empirical_frequencies_match_weights(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    w = np.array([0.5, 0.25, 0.15, 0.1, 0.0])
    s = make(ds, weights=w, batch=64)
    counts = sum(s.next().domain_counts(5) for _ in range(300))
    freq = counts / counts.sum()
    # 19,200 draws: the binomial std of each frequency is below 0.004; allow 4 sigma.
    assert np.all(np.abs(freq - w) < 0.016), freq
    assert counts[4] == 0, "a zero-weight domain is never sampled"


def test_state_mismatch_is_refused(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    a = make(ds)
    a.next()
    with pytest.raises(UserError, match="batch_size"):
        make(ds, batch=8).load_state_dict(a.state_dict())
    with pytest.raises(UserError, match="weights"):
        make(ds, weights=[1, 0, 0, 0, 0]).load_state_dict(a.state_dict())
