"""How a mixture method plugs in: online inside one training run, offline across several.

**Online** methods choose the mixture while one model trains. The training step calls a mixer
as follows, on every rank, with global-batch statistics (all micro-batches, all ranks):

    if mixer.wants_losses(step):            # only methods that ask (Aioli): held-out losses
        mixer.observe_losses(step, l, n)    # per domain of the model before this step (all ranks)
    w = mixer.sampling_weights(step)        # the sampler draws this step's global batch from w
    if mixer.scores_batch:                  # statistics of the batch before any backward pass
        s = Σ over micro-batches of mixer.score(x, token_losses, domain_ids); all-reduce s
    f = mixer.loss_factors(s, token_counts) # the loss is Σ_j f[d(j)]·ℓ_j over the global batch
    ... backward, optimizer step ...
    mixer.observe(loss_sums, token_counts)  # the step's per-domain training loss
    mixer.state_dict() / load_state_dict()  # saved in every checkpoint: resume is exact

Static weights (`static.py`), DoReMi's proxy (`doremi.py`) and Aioli (`aioli.py`) are built in.
A method is a config dataclass (its options, with `method` naming it and `build` making the mixer)
registered with `@MIXERS.register`, plus its `OnlineMixer`: one file, no change to the loop.

**Offline** methods plan whole runs (train a reference, then a proxy, ...) and then propose a
mixture: `propose(ctx)` is a generator that yields the pipeline stages it needs, receives each
one's output folder, and returns a `Proposal`. The pipeline trains main models on what they propose.
Registered in `METHODS`; iterated DoReMi (`iterated_doremi.py`) is the one built in.

A method owns its options, its records and its part of the report. In a `mixtune run` YAML,
`mixtures:` names it and a section under its name holds its options (`doremi: {eta: 0.03}`):
the offline method's `Config`, or the online method's config dataclass, whose main models the
pipeline then trains with the mixer itself (`METHOD_OPTIONS`). An offline method's
`Proposal.summary` is kept in summary.json under its name, and `report_section` turns it back
into the report's section on the method.

Nothing here imports torch (config validation must stay fast); tensors appear only at run time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mixtune.records import finite

if TYPE_CHECKING:
    import torch

    from mixtune.data.store import Dataset


class Registry:
    """Classes by the name in their `method` class attribute, in registration order."""

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, cls: type) -> type:
        name = cls.method
        if name in self._classes and self._classes[name] is not cls:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._classes[name] = cls
        return cls

    def get(self, name: str) -> type | None:
        return self._classes.get(name)

    def names(self) -> list[str]:
        return list(self._classes)


MIXERS = Registry("mixture method")
"""Online methods: config dataclasses with `method: ClassVar[str]` and `build(ctx) -> OnlineMixer`."""

METHODS = Registry("offline mixture method")
"""Offline methods: `OfflineMethod` subclasses."""


class MethodOptions:
    """The methods a run's `mixtures:` may name, each with the dataclass of its options section:
    an offline method's `Config`, else an online method's config (its main models are trained
    with its mixer). `static` is no such method: a fixed mixture is named by its weights spec."""

    def get(self, name: str) -> type | None:
        offline = METHODS.get(name)
        if offline is not None:
            return offline.Config
        return MIXERS.get(name) if name != "static" else None

    def names(self) -> list[str]:
        return [n for n in dict.fromkeys(METHODS.names() + MIXERS.names()) if self.get(n)]

    @staticmethod
    def is_offline(name: str) -> bool:
        return METHODS.get(name) is not None


METHOD_OPTIONS = MethodOptions()


@dataclass
class MixerContext:
    """What a mixer may need when it is built for a run."""

    dataset: Dataset
    device: torch.device
    autocast_dtype: torch.dtype | None = None
    budget_tokens: int | None = None
    """The run's training tokens, steps × global batch × seq_len (a `unimax` spec needs them);
    None where no run is planned."""


class OnlineMixer(ABC):
    """Gives the sampling weights and per-domain loss factors of each step; see the module doc."""

    scores_batch: ClassVar[bool] = False
    """Whether `score` must see the step's batch before the factors (then `loss_factors` gets the
    all-reduced sum of the scores; else None)."""

    @abstractmethod
    def sampling_weights(self, step: int) -> np.ndarray:
        """[k] float64 weights (summing to 1) the global batch of `step` is drawn from."""

    def score(self, x: torch.Tensor, token_losses: torch.Tensor, domain_ids: torch.Tensor):
        """[k] float64 statistics of one micro-batch (`x` [b, T+1] windows, `token_losses` [b, T]
        of the model being trained, detached, `domain_ids` [b]); summed over micro-batches and ranks."""
        raise NotImplementedError(f"{type(self).__name__} sets scores_batch but has no score()")

    @abstractmethod
    def loss_factors(self, scores, token_counts: torch.Tensor) -> torch.Tensor:
        """[k] float64 factors f: the step's loss is Σ_j f[d(j)]·ℓ_j over the global batch.
        Called once per optimizer step, before any backward; `token_counts` [k] are the global
        batch's target tokens per domain. It may update the mixer's state (DoReMi's α_t)."""

    def observe(self, loss_sums: np.ndarray, token_counts: np.ndarray) -> None:  # noqa: B027 (optional)
        """The step's global per-domain sums of token losses and token counts, after the step."""

    heldout_tokens: int = 0
    """Target tokens per domain of the held-out text `observe_losses` reports on (the training
    loop's `heldout.feed` picks the text: `mixtune/train/heldout.py`)."""

    def wants_losses(self, step: int) -> bool:
        """Whether to measure the held-out per-domain losses of the model before `step` (trained
        by steps 0..step-1). Default never: a method that does not ask pays nothing."""
        return False

    def observe_losses(self, step: int, losses: np.ndarray, token_counts: np.ndarray) -> None:  # noqa: B027
        """[k] mean token loss per domain on the held-out text (0 where a domain has none) and [k]
        target tokens scored, global over ranks, for a step `wants_losses` asked about; called at
        the top of that step, before `sampling_weights(step)`, on every rank."""

    def metrics(self) -> dict[str, np.ndarray]:
        """Per-domain vectors to add to this step's metrics row, e.g. {"domain_weights": α_t}."""
        return {}

    def history(self) -> np.ndarray | None:
        """The weights to record for this step in weights_history.jsonl (None: no history)."""
        return None

    def result(self) -> np.ndarray | None:
        """The mixture this run proposes (written as domain_weights.json), or None."""
        return None

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:  # noqa: B027 (optional: stateless mixers)
        """Restore `state_dict()`; called on resume, before the first step."""


@dataclass
class Proposal:
    """What an offline method returns to the pipeline."""

    weights: np.ndarray
    """The proposed mixture over the dataset's domains."""
    sources: list[str]
    """The stages whose outputs the weights were computed from (main runs depend on them)."""
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    """Further mixtures worth comparing, by name (e.g. earlier rounds of iterated DoReMi)."""
    summary: dict[str, Any] = field(default_factory=dict)
    """The method's own record (JSON values), kept in summary.json under the method's name and
    given back to `report_section` (e.g. DoReMi's rounds)."""


class OfflineMethod(ABC):
    """Plans training runs as pipeline stages, then proposes a mixture. Built with its options
    (an instance of `Config`, the run YAML's section under its name)."""

    method: ClassVar[str]
    Config: ClassVar[type]
    """The dataclass of its options (checked when the run YAML is loaded)."""
    figures: ClassVar[tuple[str, ...]] = ()
    """The files its report section may draw (the report removes them when the method is gone)."""

    def __init__(self, opts):
        self.opts = opts

    @abstractmethod
    def stage_names(self, cfg) -> list[str]:
        """Every stage name the method may create for run config `cfg` (to check --force)."""

    def mixture_names(self, cfg) -> list[str]:
        """The names of the mixtures it may propose (its own name and its `extra` ones)."""
        return [self.method]

    @abstractmethod
    def propose(self, ctx) -> Generator[Any, Any, Proposal]:
        """Yield stages (`ctx.train_stage(...)`), receive each one's output folder, return the
        proposal. `ctx` is the pipeline's `PlanContext`."""

    def annotate(self, mixtures: dict[str, np.ndarray]) -> dict[str, Any]:
        """Entries to add to its record once every fixed mixture of the run is known (RegMix: its
        predicted target of each); called after `propose`. Default: none."""
        return {}

    @classmethod
    def report_section(cls, record: dict, output: Path, report_dir: Path) -> list[str]:
        """The report's Markdown lines on this method, from its `Proposal.summary` as recorded
        (read leniently: a partial run's record may lack entries). It may draw figures into
        `report_dir` (and must remove its own stale ones). Default: no section."""
        return []

    @classmethod
    def warnings(cls, record: dict) -> list[str]:
        """Plain-text lines `mixtune run` prints when it finishes, where the report's section
        holds a doubt about the proposal the user should not miss. Default: none."""
        return []


def compute_lines(flops) -> list[str]:
    """A method's training compute against one main run's (as the RegMix and DoReMi papers
    report it), from its record's {"method": F, "main_run": F}."""
    flops = flops if isinstance(flops, dict) else {}
    method, main = finite(flops.get("method")), finite(flops.get("main_run"))
    if not (method and main):
        return []
    return [f"Compute: {method:.3g} training FLOPs, {method / main:.1%} of one main run's "
            f"{main:.3g} (6·N per token plus attention).", ""]
