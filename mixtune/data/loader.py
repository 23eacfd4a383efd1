"""The domain-weighted sampler as a PyTorch `IterableDataset`, for training loops of your own.

    batches = DomainBatches("data", weights, batch_size=32, seed=0, grad_accum=2)
    for mb in DataLoader(batches, batch_size=None, num_workers=2):
        mb["input_ids"]   # [b, seq_len + 1] int64 windows: read [:, :-1], predict [:, 1:]
        mb["domain_ids"]  # [b] int64, index into batches.domains (sorted names)

It yields this process's micro-batches of the same global batches `mixtune train` draws (same
data, seed and weights: the same sequences in the same slots), in order: step 0 micro-batches
0..K-1, step 1, ... Each process takes its slice of every global batch (`rank`, `world_size` from
torchrun's environment by default), so what a step sees does not depend on the number of
processes, micro-batches or data-loading workers.

Resuming is O(1) and exact: `state_dict()` is a few integers (the step, each domain's position,
the next micro-batch), and every yielded micro-batch also carries the state *after* it as
`mb["state"]`, so a loop whose loader runs ahead in worker processes still knows exactly where the
batches it has consumed end. With `DataLoader(num_workers=W)` worker w yields micro-batches
w, w+W, ..., which the DataLoader interleaves back into the original order; torchdata's
`StatefulDataLoader` saves and restores each worker's `state_dict()` itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from mixtune.data.sampler import DomainSampler, check_layout, slot_range
from mixtune.data.store import Dataset, open_dataset
from mixtune.data.weights import resolve_weights

Weights = np.ndarray | str | Callable[[int], np.ndarray]


class DomainBatches(torch.utils.data.IterableDataset):
    def __init__(
        self,
        dataset: str | os.PathLike | Dataset,
        weights: Weights = "natural",
        batch_size: int = 32,
        *,
        seed: int = 0,
        seq_len: int | None = None,
        grad_accum: int = 1,
        rank: int | None = None,
        world_size: int | None = None,
        steps: int | None = None,
        split: str = "train",
    ):
        """`weights`: a spec (natural, uniform, temperature:T, unimax[:E], a JSON file), a
        vector over `domains`, or a function of the step giving one (an online method's schedule;
        it must be a pure function of the step, as workers call it independently). `batch_size`
        is the global batch in sequences; `steps` bounds the iteration (None: endless) and, with
        the batch and seq_len, makes the token budget a `unimax` spec is spread over, as
        `mixtune train` does; so `unimax` needs `steps`."""
        self.dataset = dataset if isinstance(dataset, Dataset) else open_dataset(Path(dataset))
        self.domains = self.dataset.domains
        self.rank = int(os.environ.get("RANK", 0)) if rank is None else rank
        self.world_size = int(os.environ.get("WORLD_SIZE", 1)) if world_size is None else world_size
        self.grad_accum, self.steps = grad_accum, steps
        check_layout(batch_size, self.world_size, grad_accum)
        counts = self.dataset.counts(split)
        budget = (steps * batch_size * (seq_len or self.dataset.seq_len)
                  if steps is not None and steps > 0 else None)
        self._weights = (resolve_weights(weights, self.domains, counts, budget)
                         if isinstance(weights, str) else weights)
        first = self._weights(0) if callable(self._weights) else self._weights
        self.sampler = DomainSampler(self.dataset, np.asarray(first, dtype=np.float64), batch_size,
                                     seed, split=split, seq_len=seq_len)
        self.micro = 0  # the next micro-batch of the current step

    @property
    def seq_len(self) -> int:
        return self.sampler.seq_len

    def weights_at(self, step: int) -> np.ndarray:
        return np.asarray(self._weights(step) if callable(self._weights) else self._weights)

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        s = self.sampler
        while self.steps is None or s.step < self.steps:
            step, consumed, first = s.step, s.consumed.copy(), self.micro
            plan = s.plan(step, consumed, self.weights_at(step))
            after = consumed + plan.domain_counts(len(self.domains))
            for m in range(first, self.grad_accum):
                # The state moves past every micro-batch, this worker's or not, before it is
                # yielded: state_dict() taken after a yield (StatefulDataLoader does so in each
                # worker) resumes right after it.
                if m == self.grad_accum - 1:
                    s.step, s.consumed, self.micro = step + 1, after, 0
                else:
                    self.micro = m + 1
                if (step * self.grad_accum + m) % workers != worker:
                    continue  # another worker's: the DataLoader interleaves them back in order
                slots = slot_range(s.batch_size, self.world_size, self.rank, self.grad_accum, m)
                yield {
                    "input_ids": torch.from_numpy(s.tokens(plan, slots)),
                    "domain_ids": torch.from_numpy(plan.domain_ids[slots].copy()),
                    "step": step,
                    "micro": m,
                    "state": self.state_dict(),
                }

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """Where the iteration stands: the step, each domain's position, the next micro-batch."""
        return {"step": self.sampler.step, "consumed": self.sampler.consumed.tolist(),
                "micro": self.micro}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.step = int(state["step"])
        self.sampler.consumed = np.asarray(state["consumed"], dtype=np.int64)
        self.micro = int(state.get("micro", 0))
