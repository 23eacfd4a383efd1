"""Turning a task's items into prompts: few-shot examples, delimiters, the text to score.

    prompt = prefix + shot_1 + example_delimiter + ... + shot_k + example_delimiter + item

A shot is an example with its answer filled in, as its format writes it (`formats.py`):

    multiple_choice    query + continuation_delimiter + choices[gold]
    schema             context_options[gold] + continuation_delimiter + continuation
    language_modeling  context + continuation_delimiter + continuation
    generative_qa      context + continuation_delimiter + answers[0]

Shots are drawn without replacement from the task's few-shot pool (never scored), by a generator
seeded with (seed, item index): the same item gets the same shots in every run and on every rank,
and different items get different ones. A task without a pool (a user's single file) draws from
its other items, never the item itself.
"""

from __future__ import annotations

import numpy as np

from mixtune.errors import UserError
from mixtune.eval.formats import Prompt
from mixtune.eval.tasks import Task


def shots_for(task: Task, index: int, k: int, seed: int) -> list[dict]:
    if k == 0:
        return []
    pool = task.fewshot
    if task.fewshot_from_items:
        pool = [item for j, item in enumerate(task.items) if j != index]
    if len(pool) < k:
        raise UserError(
            f"task {task.name}: {k} shots asked for, but its few-shot pool has {len(pool)} items; "
            "ask for fewer with --shots."
        )
    picked = np.random.default_rng([seed, index]).choice(len(pool), size=k, replace=False)
    return [pool[int(j)] for j in picked]


def render(task: Task, index: int, k: int, seed: int = 1234) -> Prompt:
    """The prompt for item `index` of `task` with `k` shots."""
    spec, fmt = task.spec, task.format
    d = spec.continuation_delimiter
    head = spec.prefix + "".join(
        fmt.answered(shot, d) + spec.example_delimiter for shot in shots_for(task, index, k, seed)
    )
    return fmt.prompt(task.items[index], head, d)
