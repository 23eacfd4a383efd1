"""Per-domain held-out losses of the model being trained, for the mixture methods that ask for
them (`OnlineMixer.wants_losses`; Aioli measures them around each of its sweeps).

Which text: the last `heldout_tokens` target tokens of each domain's validation split, when the
evaluation does not score them (it scores the first `eval_max_tokens_per_domain` of each domain);
else, for every domain alike, the last ones of each domain's train split. Never text the final
evaluation scores: a method that chose its mixture on the very windows it is then judged by would
be flattered against the fixed mixtures it is compared with. The train fallback is text the
sampler may also draw for training (each window about once per epoch of its domain), so on small
datasets trained for several epochs it is not strictly held out; the validation tail is, and it is
what a dataset with validation text to spare (or `eval_max_tokens_per_domain` set lower) gets.

The loss is the token-weighted mean per domain, summed over ranks (each scores a share of the
windows) as the evaluation does: the same numbers on one process or N, with any grad_accum.
"""

from __future__ import annotations

import logging
from functools import cache

import numpy as np

from mixtune.eval.perplexity import evaluate
from mixtune.train import parallel

log = logging.getLogger(__name__)


def feed(mixer, step: int, model, mode, ds, seq_len: int, cfg, dist, amp) -> None:
    """Give the mixer the held-out losses of the model before `step` if it asks for them."""
    if not mixer.wants_losses(step):
        return
    with parallel.gathered(model, mode):  # ranks score different windows: FSDP gathers first
        losses, counts = heldout_losses(
            model, ds, mixer.heldout_tokens, seq_len=seq_len, batch_size=cfg.eval.batch_size,
            device=dist.device, autocast_dtype=amp, rank=dist.rank, world_size=dist.world_size,
            eval_max_tokens=cfg.eval.max_tokens_per_domain)
    mixer.observe_losses(step, losses, counts)


def heldout_losses(model, dataset, tokens: int, *, seq_len: int | None = None,
                   batch_size: int = 8, device=None, autocast_dtype=None, rank: int | None = None,
                   world_size: int | None = None, eval_max_tokens: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """([k] mean token loss, [k] target tokens) per domain of `model` on `tokens` held-out tokens
    of each domain of `dataset` (a path or a `Dataset`): what `Aioli.observe_losses` takes, in a
    loop of your own too. Under torch.distributed each rank scores its share of the windows and
    the sums are all-reduced (every rank must call it). `eval_max_tokens`: the validation tokens
    per domain your final evaluation scores (None: all), which the held-out text avoids."""
    import torch.distributed as td

    from mixtune.data.store import Dataset, open_dataset

    ds = dataset if isinstance(dataset, Dataset) else open_dataset(dataset)
    on = td.is_available() and td.is_initialized()
    rank = (td.get_rank() if on else 0) if rank is None else rank
    world_size = (td.get_world_size() if on else 1) if world_size is None else world_size
    split, starts = source(ds, tokens, eval_max_tokens)
    result = evaluate(model, _Tail(ds, starts), seq_len=seq_len or ds.seq_len,
                      max_tokens_per_domain=tokens, batch_size=batch_size, device=device,
                      autocast_dtype=autocast_dtype, rank=rank, world_size=world_size, split=split)
    losses = np.array([result.log_ppl[d] or 0.0 for d in ds.domains], dtype=np.float64)
    return losses, np.array([result.tokens[d] for d in ds.domains], dtype=np.float64)


def source(ds, tokens: int, eval_max: int | None) -> tuple[str, dict[str, int]]:
    """(split, {domain: first token}) of the held-out text: the tail of `tokens` + 1 tokens."""
    return _source(ds.path, tuple(ds.domains), tuple(ds.counts("validation").values()),
                   tuple(ds.counts("train").values()), tokens, eval_max or 0)


@cache  # decided once per run (and said once): the same every call
def _source(path, domains, validation, train, tokens: int, eval_max: int):
    scored = [n if not eval_max else min(n, eval_max + 1) for n in validation]
    starts = [n - (tokens + 1) for n in validation]
    if all(s >= end for s, end in zip(starts, scored, strict=True)):
        log.info("held-out losses: the last %d tokens of each domain's validation split (the "
                 "evaluation scores the first %s)", tokens, eval_max or "all")
        return "validation", dict(zip(domains, starts, strict=True))
    log.info("held-out losses: the last %d tokens of each domain's train split (%s's validation "
             "split has no %d tokens the evaluation does not score)", tokens, path, tokens)
    return "train", {d: max(0, n - (tokens + 1)) for d, n in zip(domains, train, strict=True)}


class _Tail:
    """The dataset seen from a first token on, per domain: what `evaluate` scores from the start."""

    def __init__(self, ds, starts: dict[str, int]):
        self.ds, self.starts, self.domains = ds, starts, ds.domains

    def tokens(self, split: str, domain: str) -> np.ndarray:
        return self.ds.tokens(split, domain)[self.starts[domain]:]
