"""Fixed mixtures: the trivial online method, the same sampling weights at every step and every
token of the batch weighted equally. The weights come from a spec (`weights.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from mixtune.data.weights import resolve_weights, spec_problem
from mixtune.mixing.base import MIXERS, MixerContext, OnlineMixer
from mixtune.schema import setting


@MIXERS.register
@dataclass
class StaticConfig:
    """A fixed mixture: the same sampling weights at every step."""

    method: ClassVar[str] = "static"
    weights: str = setting("natural", check=spec_problem)
    """Sampling mixture: natural, uniform, temperature:T, unimax[:E] (UniMax for this run's
    token budget, at most E epochs per domain, default 4) or a JSON weights file."""

    def build(self, ctx: MixerContext) -> StaticMixer:
        ds = ctx.dataset
        return StaticMixer(resolve_weights(self.weights, ds.domains, ds.counts("train"),
                                           ctx.budget_tokens))


class StaticMixer(OnlineMixer):
    """Fixed weights; the loss is the plain mean over every target token of the global batch."""

    def __init__(self, weights: np.ndarray):
        self.weights = np.asarray(weights, dtype=np.float64)

    def sampling_weights(self, step: int) -> np.ndarray:
        return self.weights

    def loss_factors(self, scores, token_counts):
        import torch

        return torch.full_like(token_counts, 1.0 / float(token_counts.sum()), dtype=torch.float64)
