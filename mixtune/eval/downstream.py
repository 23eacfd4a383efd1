"""Downstream evaluation: a model scored on tasks and suites (`mixtune eval --tasks`, and every
`eval_every` steps of training with `--eval-tasks`).

    entries  = suites.entries("core" | "extended" | "doremi" | names | paths)
    for each entry: its task's first `limit` items, this rank's share of them
        prompts  (prompts.py: few-shot examples, delimiters; the format's prompt, formats.py)
        tokens   (a continuation is the tokens of context+continuation after the context's, as
                  lm-evaluation-harness cuts them, so merges across the boundary are scored)
        scores   (scoring.py: each context computed once for all its continuations)
        metrics  (the format's, from metrics.py), summed over ranks
    progress: items scored over all entries, on rank 0 (a bar on a terminal, else a log line
              every `progress_every` seconds: nothing for an evaluation shorter than that)
    aggregates: each suite's mean centred accuracy over the entries scored, and the mean gold BPB

Tasks are found by `suites.locate` (a path, the dataset's own tasks, the installed cache).
Nothing is ever downloaded here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mixtune.distributed import all_reduce_sum
from mixtune.eval import suites
from mixtune.eval.config import BATCH_TOKENS
from mixtune.eval.formats import Prompt, TaskFormat
from mixtune.eval.prompts import render
from mixtune.eval.scoring import Group, generate, loglikelihoods
from mixtune.eval.tasks import Task, load_task
from mixtune.progress import EVERY, Progress
from mixtune.records import DownstreamResult, TaskResult

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """Where and how to score: device, precision, this rank's share, batch size."""

    device: torch.device
    amp: torch.dtype | None = None
    rank: int = 0
    world_size: int = 1
    batch_tokens: int = BATCH_TOKENS
    seed: int = 1234
    progress_every: float = EVERY
    """Seconds between progress lines when stderr is not a terminal."""
    nested: bool = False
    """Scored inside another progress bar's pass (training): the bar is erased when done."""


def resolve(spec: suites.TasksSpec, shots: int | None,
            roots: list[Path]) -> list[tuple[suites.Entry, Task]]:
    """The entries `spec` names with their loaded tasks (see suites.locate)."""
    return [(entry, load_task(path)) for entry, path in suites.locate(spec, shots, roots)]


def evaluate_tasks(model, tokenizer, spec: suites.TasksSpec, rt: Runtime, *,
                   limit: int | None = None, shots: int | None = None,
                   roots: list[Path] = ()) -> DownstreamResult:
    return evaluate_resolved(model, tokenizer, resolve(spec, shots, list(roots)), rt, limit)


def evaluate_resolved(model, tokenizer, resolved: list[tuple[suites.Entry, Task]], rt: Runtime,
                      limit: int | None) -> DownstreamResult:
    """Score resolved entries (resolve once, score at every evaluation of a training run)."""
    was_training = model.training
    model.eval()
    results = {}
    progress = Progress("eval", sum(_items(task, limit) for _, task in resolved), unit="item",
                        every=rt.progress_every, show=rt.rank == 0, leave=not rt.nested)
    for entry, task in resolved:
        k = entry.shots if entry.shots >= 0 else task.spec.shots
        results[entry.name] = score_task(model, tokenizer, task, entry, k, limit, rt, progress)
    progress.close()
    model.train(was_training)
    centred = {n: r.acc_centered for n, r in results.items() if r.acc_centered is not None}
    bpb = {n: r.bpb for n, r in results.items() if r.bpb is not None}
    aggregates = {
        name: suites.aggregate(name, centred, bpb).to_json()
        for name, members in suites.SUITES.items()
        if set(members) & set(results)
    }
    return DownstreamResult(results, aggregates, limit)


def _items(task: Task, limit: int | None) -> int:
    return len(task.items) if limit is None else min(limit, len(task.items))


def score_task(model, tokenizer, task: Task, entry: suites.Entry, k: int, limit: int | None,
               rt: Runtime, progress: Progress | None = None) -> TaskResult:
    """One entry's metrics: this rank scores items rank, rank + world, ...; sums are all-reduced.
    `progress` advances by the entry's items (all ranks') as they are scored."""
    fmt = task.format
    n = _items(task, limit)
    prompts = [render(task, i, k, rt.seed) for i in range(rt.rank, n, rt.world_size)]
    done = ItemsDone(progress, entry.name, n)
    per_item = _item_metrics(model, tokenizer, fmt, prompts, rt, done)
    done.finish()
    keys = fmt.metric_names
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=rt.device)
    for m in per_item:
        sums += torch.tensor([m[key] for key in keys] + [1.0], dtype=torch.float64,
                             device=rt.device)
    all_reduce_sum(sums)
    count = float(sums[-1])
    means = {key: float(sums[i]) / count for i, key in enumerate(keys) if count}
    baseline = entry.baseline if entry.kind else task.spec.random_baseline
    value = means.get(fmt.primary)
    centred = None if value is None else (value - baseline) / (1 - baseline)
    return TaskResult(entry.name, task.name, fmt.name, k, int(count), acc_centered=centred,
                      primary=fmt.primary, **means)


def _item_metrics(model, tokenizer, fmt: TaskFormat, prompts: list[Prompt],
                  rt: Runtime, done: ItemsDone) -> list[dict]:
    """Each prompt's metrics: every context with its continuations scored in one batched pass
    (a schema item has a group per option), then greedy answers if the format needs them."""
    enc = Encoder(tokenizer)
    groups = [Group(*enc.pairs(context, p.continuations))
              for p in prompts for context in p.contexts]
    max_len = getattr(model.config, "max_position_embeddings", 2048)
    done.expect(len(groups) * (2 if fmt.max_new_tokens else 1))
    scored = loglikelihoods(model, groups, device=rt.device, amp=rt.amp, max_len=max_len,
                            batch_tokens=rt.batch_tokens, advance=done)
    generated: list[str] = []
    if fmt.max_new_tokens:
        answers = generate(model, [g.context for g in groups], max_new_tokens=fmt.max_new_tokens,
                           eos_id=enc.eos_id, device=rt.device, amp=rt.amp, max_len=max_len,
                           advance=done)
        generated = tokenizer.batch_decode(answers, skip_special_tokens=True)
    out, at = [], 0
    for p in prompts:
        span = slice(at, at + len(p.contexts))
        out.append(fmt.item_metrics(p, scored[span], generated[span]))
        at = span.stop
    return out


class ItemsDone:
    """Advances `progress` through an entry's `items` as its passes report their batches done.
    Batches hold contexts sorted by length, not whole items, so the count shown is the share of
    the work done (this rank's contexts, once per pass), in items; each rank scores an equal
    share at the same pace, so rank 0's share stands for all ranks' items."""

    def __init__(self, progress: Progress | None, name: str, items: int):
        self.progress, self.name, self.items = progress, name, items
        self.work = self.done = self.shown = 0

    def expect(self, work: int) -> None:
        """The contexts the passes ahead will report, in all."""
        self.work = work

    def __call__(self, n: int) -> None:
        self.done += n
        self._show(self.items * min(self.done, self.work) // max(self.work, 1))

    def finish(self) -> None:
        self._show(self.items)

    def _show(self, at: int) -> None:
        if self.progress is not None and at > self.shown:
            self.progress.update(at - self.shown, task=self.name)
            self.shown = at


class Encoder:
    """Token ids of contexts and continuations, cut as lm-evaluation-harness cuts them."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.eos_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0

    def ids(self, texts: list[str]) -> list[list[int]]:
        return self.tok(texts, add_special_tokens=False)["input_ids"] if texts else []

    def pairs(self, context: str, continuations: list[str]) -> tuple[list[int], list[list[int]]]:
        """(context ids, continuation ids): trailing spaces of the context move to the
        continuations, and a continuation is what tokenizing context + continuation adds after
        the context's own tokens. An empty context is the end-of-text token."""
        stripped = context.rstrip(" ")
        spaces, context = context[len(stripped):], stripped
        ctx = self.ids([context])[0] if context else []
        wholes = self.ids([context + spaces + c for c in continuations])
        conts = [w[len(ctx):] or self.ids([spaces + c])[0] for w, c in zip(wholes, continuations,
                                                                           strict=True)]
        return (ctx or [self.eos_id]), conts


class DuringTraining:
    """Downstream tasks scored at every evaluation of a training run, with the dataset's
    tokenizer. The tasks are resolved when the run starts: a missing one fails before training.
    Progress as training's own: lines at `rt.progress_every` (none for a shorter evaluation),
    or on a terminal a bar under training's, erased when the evaluation ends."""

    def __init__(self, spec: suites.TasksSpec, limit: int | None, shots: int | None, dataset,
                 rt: Runtime):
        from transformers import AutoTokenizer

        self.resolved = resolve(spec, shots, [dataset.path / "tasks"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(dataset.tokenizer_dir))
        self.limit, self.rt = limit, replace(rt, nested=True)

    def __call__(self, model) -> DownstreamResult:
        return evaluate_resolved(model, self.tokenizer, self.resolved, self.rt, self.limit)
