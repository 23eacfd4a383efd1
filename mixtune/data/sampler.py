"""The domain-weighted sampler: global batches that are a pure function of (seed, step, state).

At step `s` the global batch of `B` slots is drawn as follows:

1. the domain of each slot is drawn i.i.d. from the step's weights (fixed, or given per step by an
   online mixture method) with a generator seeded by `(seed, s)` (counter-based, so step `s` needs
   no replay of steps `0..s-1`);
2. the slots of domain `d` take the next positions `consumed[d], consumed[d]+1, ...` of that
   domain's stream, in slot order; position `p` is sequence `perm_{d,e}(p mod N_d)` of epoch
   `e = p // N_d`, where `perm_{d,e}` is a seeded bijection of `0..N_d-1` (without replacement
   within an epoch, a fresh order each epoch).

The only state is `consumed` (one integer per domain) and the step, so a checkpoint stores a few
numbers and resuming is O(1) (per-step weights are the mixture method's state, checkpointed with it). Every rank draws the same global batch and takes its own slice
(`slot_range`), so the data seen does not depend on the number of ranks or micro-batches.
The permutation is a Feistel network with cycle-walking: O(1) memory however large the domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mixtune.data.store import Dataset, num_sequences
from mixtune.errors import UserError

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a cheap, well-mixed hash of uint64 values (wraps on overflow)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _round_keys(seed: int, domain: int, epoch: int, rounds: int = 6) -> list[np.uint64]:
    ss = np.random.SeedSequence([seed, domain, epoch, 0x5EED])
    return [np.uint64(k) for k in ss.generate_state(rounds, dtype=np.uint64)]


def permute(positions: np.ndarray, n: int, seed: int, domain: int, epoch: int) -> np.ndarray:
    """Map positions in [0, n) through a seeded bijection of [0, n) (vectorised Feistel network)."""
    positions = np.asarray(positions, dtype=np.uint64)
    if n <= 1:
        return positions.astype(np.int64)
    bits = max(2, int(n - 1).bit_length())
    bits += bits % 2  # balanced halves; the domain 2^bits is < 4n, so cycle-walking stays short
    half = np.uint64(bits // 2)
    low = np.uint64((1 << (bits // 2)) - 1)
    keys = _round_keys(seed, domain, epoch)

    def feistel(x: np.ndarray) -> np.ndarray:
        left, right = x >> half, x & low
        for k in keys:
            left, right = right, left ^ (_mix64(right ^ k) & low)
        return (left << half) | right

    out = feistel(positions)
    # Cycle-walking: re-apply until the value lands inside [0, n); a bijection on [0, 2^bits)
    # restricted this way is a bijection on [0, n).
    outside = out >= np.uint64(n)
    while outside.any():
        out[outside] = feistel(out[outside])
        outside = out >= np.uint64(n)
    return out.astype(np.int64)


@dataclass
class GlobalBatch:
    """Which sequences make up the global batch of one step (every rank holds the whole plan)."""

    step: int
    domain_ids: np.ndarray  # [B] int64, index into the sorted domain list
    seq_ids: np.ndarray  # [B] int64, sequence index within the domain

    def domain_counts(self, num_domains: int) -> np.ndarray:
        return np.bincount(self.domain_ids, minlength=num_domains)


def slot_range(batch_size: int, world_size: int, rank: int, grad_accum: int, micro: int) -> slice:
    """The slots of the global batch that rank `rank` uses in micro-batch `micro`."""
    per = batch_size // (world_size * grad_accum)
    start = (rank * grad_accum + micro) * per
    return slice(start, start + per)


def check_layout(batch_size: int, world_size: int, grad_accum: int) -> int:
    parts = world_size * grad_accum
    if batch_size % parts:
        raise UserError(
            f"--batch-size {batch_size} is not divisible by world size {world_size} × "
            f"--grad-accum {grad_accum} = {parts}; the global batch must split evenly."
        )
    return batch_size // parts


class DomainSampler:
    """Draws global batches over a dataset split; `weights` are the default for steps given none."""

    def __init__(
        self,
        dataset: Dataset,
        weights: np.ndarray,
        batch_size: int,
        seed: int,
        split: str = "train",
        seq_len: int | None = None,
    ):
        self.dataset, self.split = dataset, split
        self.domains = dataset.domains
        self.seq_len = seq_len or dataset.seq_len
        self.weights = np.asarray(weights, dtype=np.float64)
        self.batch_size, self.seed = int(batch_size), int(seed)
        tokens = dataset.counts(split)
        self.num_seqs = np.array([num_sequences(tokens[d], self.seq_len) for d in self.domains])
        self._cum_for, self._cum = None, None
        self._cumulative(self.weights)  # checks the weights now rather than at the first step
        self._tokens = {}
        self.step = 0
        self.consumed = np.zeros(len(self.domains), dtype=np.int64)

    def _cumulative(self, weights: np.ndarray) -> np.ndarray:
        """The weights' CDF, for inverse-CDF draws (cached: most runs keep their weights)."""
        if self._cum_for is not None and np.array_equal(weights, self._cum_for):
            return self._cum
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(self.domains),) or abs(weights.sum() - 1) > 1e-6:
            raise ValueError(f"sampling weights must be {len(self.domains)} numbers summing to 1")
        empty = [
            d
            for d, w, n in zip(self.domains, weights, self.num_seqs, strict=True)
            if w > 0 and n == 0
        ]
        if empty:
            raise UserError(
                f"domain(s) {', '.join(empty)} have weight > 0 but fewer than seq_len + 1 = "
                f"{self.seq_len + 1} {self.split} tokens; give them weight 0 or use a shorter --seq-len."
            )
        cum = np.cumsum(weights)
        cum[-1] = 1.0  # guard against rounding: every uniform draw must land in a domain
        self._cum_for, self._cum = weights.copy(), cum
        return cum

    # -- the plan -------------------------------------------------------------------------------

    def plan(self, step: int, consumed: np.ndarray, weights: np.ndarray | None = None) -> GlobalBatch:
        """The global batch at `step` given the per-domain positions consumed before it."""
        cum = self._cumulative(self.weights if weights is None else weights)
        rng = np.random.default_rng([self.seed, step])
        domain_ids = np.searchsorted(cum, rng.random(self.batch_size), side="right")
        domain_ids = np.minimum(domain_ids, len(self.domains) - 1).astype(np.int64)
        seq_ids = np.empty(self.batch_size, dtype=np.int64)
        for d in np.unique(domain_ids):
            slots = np.flatnonzero(domain_ids == d)
            pos = consumed[d] + np.arange(len(slots), dtype=np.int64)
            n = int(self.num_seqs[d])
            epochs = pos // n
            for e in np.unique(epochs):  # a batch can straddle an epoch boundary
                sel = epochs == e
                seq_ids[slots[sel]] = permute(pos[sel] % n, n, self.seed, int(d), int(e))
        return GlobalBatch(step, domain_ids, seq_ids)

    def next(self, weights: np.ndarray | None = None) -> GlobalBatch:
        """The plan for the current step (drawn from `weights`, default the sampler's); advances."""
        batch = self.plan(self.step, self.consumed, weights)
        self.consumed = self.consumed + batch.domain_counts(len(self.domains))
        self.step += 1
        return batch

    # -- the tokens -----------------------------------------------------------------------------

    def tokens(self, batch: GlobalBatch, slots: slice = slice(None)) -> np.ndarray:
        """The `[b, seq_len + 1]` int64 token windows of the chosen slots of a global batch."""
        dom, seq = batch.domain_ids[slots], batch.seq_ids[slots]
        out = np.empty((len(dom), self.seq_len + 1), dtype=np.int64)
        offsets = np.arange(self.seq_len + 1)
        for d in np.unique(dom):
            rows = np.flatnonzero(dom == d)
            data = self._domain_tokens(int(d))
            # One fancy-indexing gather per domain from the memmap: only the pages touched are read.
            out[rows] = data[seq[rows, None] * self.seq_len + offsets]
        return out

    def _domain_tokens(self, d: int) -> np.ndarray:
        if d not in self._tokens:
            self._tokens[d] = self.dataset.tokens(self.split, self.domains[d])
        return self._tokens[d]

    # -- checkpointing --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "consumed": self.consumed.tolist(),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "weights": self.weights.tolist(),
            "domains": list(self.domains),
        }

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (
            ("seed", self.seed),
            ("batch_size", self.batch_size),
            ("domains", list(self.domains)),
        ):
            if state[key] != mine:
                raise UserError(
                    f"checkpoint sampler {key} is {state[key]!r} but this run has {mine!r}; "
                    "resume with the same settings or start a new output folder."
                )
        if not np.allclose(state["weights"], self.weights, rtol=0, atol=1e-12):
            raise UserError(
                "checkpoint sampler weights differ from this run's weights; resume with the same "
                "--weights or start a new output folder."
            )
        self.step = int(state["step"])
        self.consumed = np.asarray(state["consumed"], dtype=np.int64)
