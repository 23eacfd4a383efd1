"""Turning a task's items into prompts: few-shot examples, delimiters, the text to score.

    prompt = prefix + shot_1 + example_delimiter + ... + shot_k + example_delimiter + item

A shot is an example with its answer filled in:

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

from dataclasses import dataclass

import numpy as np

from mixtune.errors import UserError
from mixtune.eval.tasks import Task


@dataclass
class Prompt:
    """What to score for one item. Multiple choice: one context, a continuation per choice.
    Schema: a context per option, one continuation. Language modelling: one of each.
    Generative QA: a context and the accepted answers."""

    contexts: list[str]
    continuations: list[str]
    gold: int = 0
    answers: list[str] | None = None
    choice_texts: list[str] | None = None
    """The choices without delimiter, which lm-eval's acc_norm divides by (characters)."""


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
    spec, item = task.spec, task.items[index]
    d = spec.continuation_delimiter
    head = spec.prefix + "".join(
        _answered(spec.format, shot, d) + spec.example_delimiter
        for shot in shots_for(task, index, k, seed)
    )
    fmt = spec.format
    if fmt == "multiple_choice":
        return Prompt([head + item["query"]], [d + c for c in item["choices"]], item["gold"],
                      choice_texts=list(item["choices"]))
    if fmt == "schema":
        return Prompt([head + o for o in item["context_options"]], [d + item["continuation"]],
                      item["gold"])
    if fmt == "language_modeling":
        return Prompt([head + item["context"]], [d + item["continuation"]])
    return Prompt([head + item["context"]], [d + item["answers"][0]], answers=list(item["answers"]))


def _answered(fmt: str, ex: dict, d: str) -> str:
    if fmt == "multiple_choice":
        return ex["query"] + d + ex["choices"][ex["gold"]]
    if fmt == "schema":
        return ex["context_options"][ex["gold"]] + d + ex["continuation"]
    if fmt == "language_modeling":
        return ex["context"] + d + ex["continuation"]
    return ex["context"] + d + ex["answers"][0]
