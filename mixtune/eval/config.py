"""The settings of evaluation, next to it: which downstream tasks are scored (a training run's
evaluations and a run YAML's `eval:` share `TaskSelection`), and `mixtune eval`'s own options.
No torch and no task data are imported here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mixtune.model.device import DeviceOptions
from mixtune.progress import EVERY
from mixtune.schema import at_least, positive, setting

EVAL_BATCH_SIZE = 8
"""Sequences per forward pass of the per-domain evaluation, in training and in `mixtune eval`."""
BATCH_TOKENS = 8192
"""Padded context tokens per forward pass of downstream scoring (memory bound)."""


def tasks_problem(spec: str | list[str]) -> str | None:
    from mixtune.eval.suites import tasks_problem as problem  # lazy: numpy, never torch

    return problem(spec)


@dataclass(kw_only=True)
class TaskSelection:
    """Downstream tasks scored at every evaluation of a model (and shown in the report)."""

    tasks: str | list[str] | None = setting(None, check=tasks_problem)
    """dataset (the dataset's generated tasks), core, extended, doremi, task names or task files,
    comma-separated or as a list (none: only per-domain log-ppl)."""
    limit: int | None = setting(200, check=at_least(1))
    """Items of each task scored (none: all)."""
    shots: int | None = setting(None, check=at_least(0))
    """Few-shot examples per item (none: each task's suite setting)."""

    def joined(self) -> str | None:
        """`tasks` as one comma-separated string: a list and its string are the same setting (and
        give a training stage the same identity)."""
        return ",".join(self.tasks) if isinstance(self.tasks, list) else self.tasks


@dataclass
class EvalOptions(DeviceOptions):
    """mixtune eval MODEL."""

    tasks: str | list[str] | None = None
    """What to score: domains (per-domain validation log-ppl), core, extended, doremi, dataset
    (the dataset's generated tasks), task names or task files, comma-separated (none: domains for a
    run folder; downstream tasks are added to it)."""
    limit: int | None = setting(None, check=at_least(1))
    """Score the first N items of each task (none: all; a training run's evaluations take 200)."""
    shots: int | None = setting(None, check=at_least(0))
    """Few-shot examples per item (none: each task's suite setting)."""
    out: str | None = None
    """JSON file of the results (none: RUN/eval.json for a run folder; else only the table)."""
    harness: Literal["mixtune", "lm-eval"] = "mixtune"
    """Score downstream tasks with mixtune or with lm-evaluation-harness on the same local data
    (pip install 'mixtune[lm-eval]')."""
    data: str | None = None
    """Dataset folder for domains (none: the one the run was trained on)."""
    max_tokens_per_domain: int | None = setting(None, check=at_least(0))
    """Validation tokens per domain (0 or none: all)."""
    batch_size: int = setting(EVAL_BATCH_SIZE, check=at_least(1))
    """Sequences per forward pass of the per-domain evaluation."""
    batch_tokens: int = setting(BATCH_TOKENS, check=at_least(64))
    """Padded context tokens per forward pass of downstream scoring (memory bound)."""
    progress_every: float = setting(EVERY, check=positive)
    """Seconds between progress lines when stderr is not a terminal (a log file, a batch job)."""
