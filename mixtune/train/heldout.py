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
    split, starts = source(ds, mixer.heldout_tokens, cfg.eval.max_tokens_per_domain)
    with parallel.gathered(model, mode):  # ranks score different windows: FSDP gathers first
        result = evaluate(model, _Tail(ds, starts), seq_len=seq_len,
                          max_tokens_per_domain=mixer.heldout_tokens,
                          batch_size=cfg.eval.batch_size, device=dist.device, autocast_dtype=amp,
                          rank=dist.rank, world_size=dist.world_size, split=split)
    losses = np.array([result.log_ppl[d] or 0.0 for d in ds.domains], dtype=np.float64)
    counts = np.array([result.tokens[d] for d in ds.domains], dtype=np.float64)
    mixer.observe_losses(step, losses, counts)


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
