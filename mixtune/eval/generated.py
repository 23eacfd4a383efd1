"""Downstream tasks generated from a synthetic dataset, in its own vocabulary (`t12 t7 ...`).

Real benchmarks mean nothing to a model trained on generated symbols, and tests must not need a
download; these tasks give both a downstream score that behaves like a real one. For every domain,
from its validation stream (never trained on), two tasks are written into `DATASET/tasks/`:

    continue_<domain>   multiple_choice: 24 symbols, then which of 4 eight-symbol windows comes
                        next (the true one, or windows from elsewhere in the domain)
    complete_<domain>   language_modeling: 24 symbols, then the next 2 exactly

A model that has learned a domain's source picks its true continuation and completes it; on
`noise` nobody can, which makes it the task suite's own control.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mixtune.eval.formats import FORMATS
from mixtune.eval.tasks import FEWSHOT, SPEC, TEST, Source, TaskSpec
from mixtune.io import write_json_atomic, write_text_atomic

CONTEXT, CHOICE, COMPLETE, CHOICES = 24, 8, 2, 4


def write_generated_tasks(dataset_dir: Path, tokens_by_domain: dict[str, np.ndarray], eos_id: int,
                          items: int = 120, pool: int = 20, seed: int = 0) -> list[str]:
    """Write the tasks of every domain under `dataset_dir/tasks/`; return their names."""
    names = []
    for d, (domain, stream) in enumerate(sorted(tokens_by_domain.items())):
        rng = np.random.default_rng([seed, d])
        starts = _starts(stream, eos_id, items + pool, rng)
        if len(starts) < pool + 1:
            continue  # a domain too small for a task: it is left without one
        for fmt, name, make, baseline in (
            ("multiple_choice", f"continue_{domain}", _choice_item, 1 / CHOICES),
            ("language_modeling", f"complete_{domain}", _completion_item, 0.0),
        ):
            rows = [make(stream, s, starts, rng) for s in starts]
            _write(dataset_dir / "tasks" / name, fmt, baseline, rows[pool:], rows[:pool], domain)
            names.append(name)
    return names


def _starts(stream: np.ndarray, eos_id: int, n: int, rng) -> list[int]:
    """Positions whose context and longest answer lie inside one document."""
    span = CONTEXT + CHOICE
    if len(stream) <= span:
        return []
    candidates = rng.permutation(len(stream) - span)[: 20 * n]
    ok = [int(s) for s in candidates if not (stream[s : s + span] == eos_id).any()]
    return sorted(ok[:n])


def _text(ids) -> str:
    return " ".join(f"t{int(i)}" for i in ids)


def _choice_item(stream, s, starts, rng) -> dict:
    true = _text(stream[s + CONTEXT : s + CONTEXT + CHOICE])
    others = [o for o in rng.permutation(starts) if abs(int(o) - s) > CHOICE][: CHOICES - 1]
    choices = [_text(stream[o + CONTEXT : o + CONTEXT + CHOICE]) for o in others]
    gold = int(rng.integers(0, len(choices) + 1))
    choices.insert(gold, true)
    return {"query": _text(stream[s : s + CONTEXT]), "choices": choices, "gold": gold}


def _completion_item(stream, s, starts, rng) -> dict:
    return {"context": _text(stream[s : s + CONTEXT]),
            "continuation": _text(stream[s + CONTEXT : s + CONTEXT + COMPLETE])}


def _write(folder: Path, fmt: str, baseline: float, test: list[dict], fewshot: list[dict],
           domain: str) -> None:
    for i, item in enumerate(test + fewshot):
        FORMATS[fmt].check(item, f"{folder.name} item {i}")
    spec = TaskSpec(
        name=folder.name, format=fmt, shots=0, random_baseline=baseline,
        description=f"generated from the validation stream of domain {domain}",
        n=len(test), fewshot_n=len(fewshot),
        source=Source("mixtune", "generated", f"validation/{domain}.bin",
                      f"{len(fewshot)} items held out as the few-shot pool"),
    )
    write_text_atomic(folder / TEST, "".join(_line(x) for x in test))
    write_text_atomic(folder / FEWSHOT, "".join(_line(x) for x in fewshot))
    write_json_atomic(folder / SPEC, spec.to_json())


def _line(item: dict) -> str:
    return json.dumps(item) + "\n"
