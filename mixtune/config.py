"""`mixtune eval`'s settings (to move next to it, into eval/). Every other group of settings
lives next to its component: data/config.py, process/config.py, train/config.py,
pipeline/config.py; executors.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mixtune.schema import at_least, setting
from mixtune.train.config import device_problem


@dataclass
class EvalOptions:
    """mixtune eval MODEL."""

    tasks: str | None = None
    """What to score: domains (per-domain validation log-ppl), core, extended, doremi, dataset
    (the dataset's generated tasks), task names or task files, comma-separated (none: domains for a
    run folder; downstream tasks are added to it)."""
    limit: int | None = setting(None, check=at_least(1))
    """Score the first N items of each task (none: all)."""
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
    batch_size: int = setting(8, check=at_least(1))
    """Sequences per forward pass of the per-domain evaluation."""
    batch_tokens: int = setting(8192, check=at_least(64))
    """Padded context tokens per forward pass of downstream scoring (memory bound)."""
    device: str = setting("auto", check=device_problem)
    """auto, cpu, cuda or cuda:N."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that supports it, else fp32."""


# Until tests/eval imports it from train/config.py (being edited in parallel): not an API.
from mixtune.train.config import train_config  # noqa: E402, F401
