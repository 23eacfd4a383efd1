"""The names of a run's stages and mixtures, known from its config alone, before anything runs
(so that a --force naming no stage fails at once, not after hours of training)."""

from __future__ import annotations

from mixtune.data.weights import mixture_name
from mixtune.errors import UserError
from mixtune.mixing import METHOD_OPTIONS, METHODS
from mixtune.pipeline.config import RunConfig
from mixtune.pipeline.stage import matches


def baseline_name(cfg: RunConfig) -> str:
    return mixture_name(cfg.reference_weights)


def mixture_names(cfg: RunConfig) -> list[str]:
    """The names of the main mixtures (an offline method may propose several), each once."""
    return list(dict.fromkeys(name for _, name in _named_mixtures(cfg)))


def _named_mixtures(cfg: RunConfig):
    """(spec, name) of every main mixture the run may compare."""
    for m in cfg.mixtures:
        if m == "reference":
            yield cfg.reference_weights, baseline_name(cfg)
        elif METHOD_OPTIONS.is_offline(m):
            for name in METHODS.get(m)(cfg.options(m)).mixture_names(cfg):
                yield m, name
        elif METHOD_OPTIONS.get(m) is not None:
            yield m, m  # an online method: its main models are named after it
        else:
            yield m, mixture_name(m)


def stage_names(cfg: RunConfig) -> list[str]:
    """Every stage the run may have (the rounds of iterated DoReMi up to their maximum)."""
    names = [] if cfg.data.dataset is not None else ["data"]
    if cfg.data.process is not None:
        names.insert(0, "process")
    for m in cfg.mixtures:
        if METHOD_OPTIONS.is_offline(m):
            names += METHODS.get(m)(cfg.options(m)).stage_names(cfg)
    names += [f"main/{n}/seed-{s}" for n in mixture_names(cfg) for s in cfg.seeds]
    return names


def check_plan(cfg: RunConfig, force: list[str]) -> None:
    """Refuse, before anything runs, two different mixtures under one name, and a --force that
    names no stage of this run."""
    specs: dict[str, str] = {}
    for spec, name in _named_mixtures(cfg):
        if specs.setdefault(name, spec) != spec:
            raise UserError(
                f"mixtures: {specs[name]!r} and {spec!r} would both be named {name!r}; rename one "
                "of the weights files."
            )
    for part in ("proxy", "main"):  # each process takes an equal share of the global batch
        spec, parts = getattr(cfg, part), cfg.nproc * cfg.train.grad_accum
        if spec.global_batch % parts:
            raise UserError(
                f"{part}.batch_size {spec.global_batch} is not divisible by nproc {cfg.nproc} × "
                f"train.grad_accum {cfg.train.grad_accum} = {parts}; the global batch must split evenly."
            )
    if cfg.eval.tasks:  # installed now, not discovered missing after hours of training
        from mixtune.eval.suites import DATASET, locate, parse_tasks

        refs = parse_tasks(cfg.eval.tasks)
        if any(r.kind == DATASET for r in refs) and cfg.data.synthetic is None:
            raise UserError("eval.tasks: dataset names generated tasks, which only data.synthetic "
                            "has; name installed tasks instead (mixtune tasks list).")
        rest = [r for r in refs if r.kind != DATASET]
        if rest:
            locate(rest, cfg.eval.shots, [])
    names = stage_names(cfg)
    for f in force:
        if not any(matches(f, n) for n in names):
            raise UserError(
                f"--force {f}: matches no stage of this run; its stages are {', '.join(names)} "
                "(or one part of a name: data, proxy, main, uniform, seed-0, ...)."
            )
