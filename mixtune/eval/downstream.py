"""Downstream evaluation: a model scored on tasks and suites (`mixtune eval --tasks`, and every
`eval_every` steps of training with `--eval-tasks`).

    entries  = suites.entries("core" | "extended" | "doremi" | names | paths)
    for each entry: its task's first `limit` items, this rank's share of them
        prompts  (prompts.py: few-shot examples, delimiters)
        tokens   (a continuation is the tokens of context+continuation after the context's, as
                  lm-evaluation-harness cuts them, so merges across the boundary are scored)
        scores   (scoring.py: each context computed once for all its continuations)
        metrics  (metrics.py), summed over ranks
    aggregates: each suite's mean centred accuracy over the entries scored, and the mean gold BPB

Tasks are found by `suites.locate` (a path, the dataset's own tasks, the installed cache).
Nothing is ever downloaded here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from mixtune.distributed import all_reduce_sum
from mixtune.eval import metrics, suites
from mixtune.eval.prompts import Prompt, render
from mixtune.eval.scoring import Group, generate, loglikelihoods
from mixtune.eval.tasks import Task, load_task
from mixtune.records import DownstreamResult, TaskResult

log = logging.getLogger(__name__)

QA_MAX_NEW_TOKENS = 20  # the DoReMi reference harness's answer length


@dataclass
class Runtime:
    """Where and how to score: device, precision, this rank's share, batch size."""

    device: torch.device
    amp: torch.dtype | None = None
    rank: int = 0
    world_size: int = 1
    batch_tokens: int = 8192
    seed: int = 1234


def resolve(spec: str, shots: int | None, roots: list[Path]) -> list[tuple[suites.Entry, Task]]:
    """The entries `spec` names with their loaded tasks (see suites.locate)."""
    return [(entry, load_task(path)) for entry, path in suites.locate(spec, shots, roots)]


def evaluate_tasks(model, tokenizer, spec: str, rt: Runtime, *, limit: int | None = None,
                   shots: int | None = None, roots: list[Path] = ()) -> DownstreamResult:
    return evaluate_resolved(model, tokenizer, resolve(spec, shots, list(roots)), rt, limit)


def evaluate_resolved(model, tokenizer, resolved: list[tuple[suites.Entry, Task]], rt: Runtime,
                      limit: int | None) -> DownstreamResult:
    """Score resolved entries (resolve once, score at every evaluation of a training run)."""
    was_training = model.training
    model.eval()
    results = {}
    for entry, task in resolved:
        k = entry.shots if entry.shots >= 0 else task.spec.shots
        results[entry.name] = score_task(model, tokenizer, task, entry, k, limit, rt)
    model.train(was_training)
    centred = {n: r.acc_centered for n, r in results.items() if r.acc_centered is not None}
    aggregates = {
        name: suites.aggregate(name, centred).to_json()
        for name, members in suites.SUITES.items()
        if set(members) & set(results)
    }
    return DownstreamResult(results, aggregates, limit)


def score_task(model, tokenizer, task: Task, entry: suites.Entry, k: int, limit: int | None,
               rt: Runtime) -> TaskResult:
    """One entry's metrics: this rank scores items rank, rank + world, ...; sums are all-reduced."""
    n = len(task.items) if limit is None else min(limit, len(task.items))
    prompts = [render(task, i, k, rt.seed) for i in range(rt.rank, n, rt.world_size)]
    per_item = _item_metrics(model, tokenizer, task.spec.format, prompts, rt)
    keys = metrics.CHOICE_METRICS
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64, device=rt.device)
    for m in per_item:
        sums += torch.tensor([m.get(key, 0.0) for key in keys] + [1.0], dtype=torch.float64,
                             device=rt.device)
    all_reduce_sum(sums)
    count = float(sums[-1])
    present = per_item[0].keys() if per_item else metrics.CHOICE_METRICS
    means = {key: float(sums[i]) / count for i, key in enumerate(keys) if count and key in present}
    primary = metrics.PRIMARY[task.spec.format]
    baseline = entry.baseline if entry.kind else task.spec.random_baseline
    value = means.get(primary)
    centred = None if value is None else (value - baseline) / (1 - baseline)
    return TaskResult(entry.name, task.name, task.spec.format, k, int(count), acc_centered=centred,
                      primary=primary, **means)


def _item_metrics(model, tokenizer, fmt: str, prompts: list[Prompt], rt: Runtime) -> list[dict]:
    enc = Encoder(tokenizer)
    groups = []
    for p in prompts:  # one group per context: a schema item has one per option
        for context in p.contexts:
            ctx, conts = enc.pairs(context, p.continuations)
            groups.append(Group(ctx, conts))
    max_len = getattr(model.config, "max_position_embeddings", 2048)
    scored = loglikelihoods(model, groups, device=rt.device, amp=rt.amp, max_len=max_len,
                            batch_tokens=rt.batch_tokens)
    if fmt == "generative_qa":
        answers = generate(model, [g.context for g in groups], max_new_tokens=QA_MAX_NEW_TOKENS,
                           eos_id=enc.eos_id, device=rt.device, amp=rt.amp, max_len=max_len)
        texts = tokenizer.batch_decode(answers, skip_special_tokens=True)
        return [metrics.question_answering(t, p.answers, s[0], p.continuations[0])
                for t, p, s in zip(texts, prompts, scored, strict=True)]
    if fmt == "language_modeling":
        return [metrics.language_modeling(s[0], p.continuations[0])
                for p, s in zip(prompts, scored, strict=True)]
    out, at = [], 0
    for p in prompts:
        if fmt == "schema":  # one continuation per option's group
            option_scores = [scored[at + j][0] for j in range(len(p.contexts))]
            lengths = [len(p.continuations[0])] * len(p.contexts)
            at += len(p.contexts)
        else:
            option_scores, lengths = scored[at], [len(c) for c in p.choice_texts]
            at += 1
        out.append(metrics.choices(option_scores, p.gold, lengths, p.continuations))
    return out


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
    tokenizer. The tasks are resolved when the run starts: a missing one fails before training."""

    def __init__(self, spec: str, limit: int | None, shots: int | None, dataset, rt: Runtime):
        from transformers import AutoTokenizer

        self.resolved = resolve(spec, shots, [dataset.path / "tasks"])
        self.tokenizer = AutoTokenizer.from_pretrained(str(dataset.tokenizer_dir))
        self.limit, self.rt = limit, rt

    def __call__(self, model) -> DownstreamResult:
        return evaluate_resolved(model, self.tokenizer, self.resolved, self.rt, self.limit)
