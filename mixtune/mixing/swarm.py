"""RegMix, the offline method: a swarm of small proxies on random mixtures, a regression from
mixture to target, and the mixture with the lowest predicted target (Liu et al., "RegMix: Data
Mixture as Regression for Language Model Pre-training", arXiv 2407.01492).

    regmix/proxy-NNN        N proxies at the proxy scale and steps, each on a mixture drawn from
                            a Dirichlet around the domains' token shares with a varied
                            concentration (near-prior and sparse mixtures both appear); run at
                            once as tasks on an executor (local processes, Ray), each a stage
                            with its own folder and record
    regmix/swarm.csv        every proxy's mixture and measures: per-domain validation loss, and
                            the downstream bits per byte when `eval:` has tasks (also as
                            mixtures.csv + results.csv, the files `mixtune swarm fit` reads)
    the fit                 LightGBM (or the log-linear mixing law) from mixture to the target,
                            with its cross-validated rank correlation
    the search              candidates around the prior, predicted; the top ones averaged

The target is the user's (`regmix: {target: ...}`): `average` (mean per-domain validation loss), a
domain, `{domain: weight}`, `downstream` (mean gold bits per byte of the tasks scored) or
`downstream:<suite>` (of that suite's tasks, e.g. downstream:core). The fitting and the search are
mixtune.regmix's; this file plans the swarm and reads it back.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mixtune import regmix
from mixtune.errors import UserError
from mixtune.executors import ExecutorOptions
from mixtune.io import write_text_atomic
from mixtune.mixing.base import METHODS, OfflineMethod, Proposal, compute_lines
from mixtune.mixing.static import StaticConfig
from mixtune.mixing.target import (
    DOWNSTREAM,
    check_target,
    measure_weights,
    run_measures,
    target_problem,
    target_value,
)
from mixtune.records import finite
from mixtune.schema import at_least, setting
from mixtune.tables import fmt

log = logging.getLogger(__name__)

PROXIES_PER_DOMAIN = 4
"""Default swarm: 4 proxies per domain (at least MIN_PROXIES). RegMix ran 512 for 17 domains
(30 per domain); fewer fit a coarser regressor, which the cross-validated rank correlation shows."""
MIN_PROXIES = 8
MIXTURES_DIR = "regmix/mixtures"
"""Where the swarm's mixtures are written, under the output: what marks a model as a swarm
proxy (the leaderboard lists those only when asked)."""


@dataclass
class RegMixConfig:
    """The `regmix:` section of a run: the swarm, the target, the fit and the search."""

    proxies: int | None = setting(None, check=at_least(2))
    """Proxy runs in the swarm (none: 4 per domain, at least 8); at least domains + 1."""
    target: str | dict[str, float] | None = setting(None, check=target_problem)
    """What the mixture is chosen for (none: the run's `target:`): average, a domain,
    {domain: weight}, downstream or downstream:<suite> (eval: must score tasks)."""
    regressor: Literal["lightgbm", "loglinear"] = "lightgbm"
    """lightgbm (RegMix's) or loglinear, the data-mixing law L = c + k·exp(Σ t_j·w_j), one per
    measure of the target, summed with its weights (its predictions bounded to the swarm's
    measured range, widened by its width)."""
    candidates: int = setting(100_000, check=at_least(1))
    """Mixtures sampled in the search."""
    top: int = setting(100, check=at_least(1))
    """The proposal is the mean of this many best-predicted candidates."""
    seed: int = setting(0, check=at_least(0))
    """Seeds the swarm's mixtures, the regressor and the search."""
    executor: Literal["local", "ray"] = ExecutorOptions.executor
    """Where the proxies run: local processes, or a Ray cluster."""
    workers: int | None = setting(None, check=at_least(1))
    """Proxies trained at once (local: processes sharing the cores; none: one per CPU core, or
    the cluster's); 1: one after the other in this process."""
    ray_address: str | None = None
    """Address of a running Ray cluster (none: start a local one)."""

    def validate(self, label) -> None:
        import importlib.util

        if self.top > self.candidates:
            raise UserError(f"{label('top')} {self.top}: at most candidates ({self.candidates}).")
        # Known before any proxy trains, not after the swarm.
        if self.regressor == "lightgbm" and importlib.util.find_spec("lightgbm") is None:
            raise UserError(f"{label('regressor')} lightgbm: not installed; pip install "
                            "'mixtune[regmix]', or use regressor: loglinear.")
        if self.executor_options() is not None and importlib.util.find_spec("datatrove") is None:
            if self.workers is not None or self.executor != "local":
                raise UserError(f"{label('workers' if self.workers else 'executor')}: the swarm's "
                                "tasks run on datatrove's executors: pip install 'mixtune[regmix]' "
                                "(or workers: 1, one proxy after the other).")
            log.info("regmix: datatrove is not installed, so the proxies train one after the "
                     "other; pip install 'mixtune[regmix]' to train several at once.")
            self.workers = 1

    def check_run(self, cfg, label) -> None:
        """Checks against the rest of the run config (called when it is loaded)."""
        if self.target is None:
            return  # the run's target, checked with the run
        if isinstance(self.target, str) and self.target.startswith(DOWNSTREAM) \
                and not cfg.eval.tasks:
            raise UserError(f"{label('target')} {self.target!r}: the proxies score no tasks; "
                            "set eval: {tasks: ...} (e.g. core), or use a validation target.")

    def executor_options(self) -> ExecutorOptions | None:
        if self.workers == 1 and self.executor == "local":
            return None
        return ExecutorOptions(executor=self.executor, workers=self.workers,
                               ray_address=self.ray_address)


@METHODS.register
class RegMix(OfflineMethod):
    method = "regmix"
    Config = RegMixConfig
    opts: RegMixConfig

    def __init__(self, opts: RegMixConfig):
        super().__init__(opts)
        self.model: regmix.Model | None = None

    def stage_names(self, cfg) -> list[str]:
        # Every name a swarm of any size may take (--force regmix clears them all).
        return [f"regmix/{proxy_name(i)}" for i in range(self.opts.proxies or 1000)]

    def propose(self, ctx):
        opts, domains = self.opts, ctx.domains
        n = swarm_size(opts.proxies, len(domains), ctx.label("regmix.proxies"))
        target = check_target(ctx.cfg.target if opts.target is None else opts.target, domains,
                              ctx.label("regmix.target"))
        prior = ctx.tokens / ctx.tokens.sum()
        weights = regmix.candidate_mixtures(len(domains), np.maximum(prior, 1e-12), n, opts.seed)
        stages = []
        for i, w in enumerate(weights):
            file = ctx.write_weights(f"{MIXTURES_DIR}/{proxy_name(i)}.json", w)
            stages.append(ctx.train_stage(f"regmix/{proxy_name(i)}",
                                          StaticConfig(weights=str(file)), ctx.cfg.proxy, brief=True))
        folders = yield ctx.train_group(stages, opts.executor_options(), logs="regmix/logs")
        swarm = read_swarm_runs([proxy_name(i) for i in range(n)], domains, weights, folders)
        ctx.on_main(lambda: write_swarm(ctx.out / "regmix", swarm))
        parts, mix = regmix.target_parts(swarm, measure_weights(target, domains))
        y = parts @ mix
        self.model = regmix.fit_parts(swarm.weights, parts, mix, opts.regressor, opts.seed)
        flat = regmix.is_flat(self.model, swarm.weights)
        if flat:  # then the "best" candidates are an arbitrary few: say so, propose the prior
            log.warning("regmix: the fit predicts the same target for every proxy (too few "
                        "proxies, or the target does not depend on the mixture); proposing the "
                        "token-share prior. Train more proxies (regmix.proxies).")
            proposal = prior
        else:
            proposal = regmix.propose(self.model, len(domains), np.maximum(prior, 1e-12),
                                      samples=opts.candidates, top=opts.top, seed=opts.seed + 1)
        summary = {
            "flat_fit": flat,
            "proxies": n, "target": target, "regressor": opts.regressor,
            "measures": list(swarm.measures), "swarm": "regmix/swarm.csv",
            "rank_correlation": regmix.cross_validated_rank_correlation(
                swarm.weights, parts, opts.regressor, seed=opts.seed, mix=mix),
            "swarm_best": {"id": swarm.ids[int(np.argmin(y))], "target": float(np.min(y))},
            "flops": {"method": n * ctx.train_flops(ctx.cfg.proxy),
                      "main_run": ctx.train_flops(ctx.cfg.main)},
        }
        return Proposal(proposal, [s.name for s in stages], {}, summary)

    def annotate(self, mixtures: dict[str, np.ndarray]) -> dict[str, Any]:
        """The predicted target of every fixed mixture of the run (the proposal as capped)."""
        names = list(mixtures)
        values = self.model.predict(np.stack([mixtures[n] for n in names]))
        return {"predicted": {n: float(v) for n, v in zip(names, values, strict=True)}}

    @classmethod
    def report_section(cls, record: dict, output: Path, report_dir: Path) -> list[str]:
        return report_lines(record, output)

    @classmethod
    def warnings(cls, record: dict) -> list[str]:
        rc = finite(record.get("rank_correlation"))
        if record.get("flat_fit"):
            return ["regmix: the fit learned nothing (it predicts one value for every proxy), so "
                    "its proposal is the token-share prior: train more proxies (regmix.proxies), "
                    "or use the other regmix.regressor."]
        if rc is not None and rc < regmix.LOW_RANK_CORRELATION:
            return [f"regmix: the fit's out-of-fold rank correlation is {rc:.2f}, too low to "
                    "trust its ranking: its proposal is weak evidence (more proxies, or the "
                    "other regmix.regressor)."]
        return []


def proxy_name(i: int) -> str:
    return f"proxy-{i:03d}"


def swarm_size(proxies: int | None, k: int, label: str = "regmix.proxies") -> int:
    n = proxies if proxies is not None else max(MIN_PROXIES, PROXIES_PER_DOMAIN * k)
    if n < k + 1:
        raise UserError(f"{label} {n}: a regression over {k} domains needs at least "
                        f"domains + 1 = {k + 1} proxies.")
    return n


# -- the swarm's measures ------------------------------------------------------------------------

def read_swarm_runs(ids: list[str], domains: list[str], weights: np.ndarray,
                    folders: list[Path]) -> regmix.Swarm:
    """Each proxy's final per-domain validation loss and downstream bits per byte. A measure
    some proxy lacks is left out; none at all is an error naming a proxy."""
    rows = [run_measures(folder) for folder in folders]
    names = [m for m in rows[0] if all(m in r for r in rows)]
    if not names:
        raise UserError(f"{folders[0]}: the proxy left no final evaluation (eval.json); rerun, or "
                        f"redo it with --force regmix/{ids[0]}.")
    return regmix.Swarm(ids, list(domains), weights,
                        {m: np.array([r[m] for r in rows]) for m in names})


def write_swarm(folder: Path, swarm: regmix.Swarm) -> None:
    """swarm.csv (id, one weight column per domain, one column per measure), and the same as
    mixtures.csv + results.csv, `mixtune swarm fit`'s layout."""
    measures = list(swarm.measures)
    table = np.column_stack([swarm.weights] + [swarm.measures[m] for m in measures])
    _write_csv(folder / "swarm.csv", ["id", *(f"train_{d}" for d in swarm.domains), *measures],
               swarm.ids, table)
    k = len(swarm.domains)
    _write_csv(folder / "mixtures.csv", ["id", *swarm.domains], swarm.ids, table[:, :k])
    _write_csv(folder / "results.csv", ["id", *measures], swarm.ids, table[:, k:])


def _write_csv(path: Path, header: list[str], ids: list[str], values: np.ndarray) -> None:
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for rid, row in zip(ids, values, strict=True):
        writer.writerow([rid, *(repr(float(v)) for v in row)])
    write_text_atomic(path, buf.getvalue())


# -- the report's section ------------------------------------------------------------------------

def report_lines(record: dict, output: Path) -> list[str]:
    """RegMix's section of the report; every name in it (mixtures, the target's domains, the
    regressor) escaped for Markdown."""
    from mixtune.tables import md_table, md_text

    lines = ["## RegMix", ""]
    if not record.get("proxies"):
        return lines + ["The swarm has not finished yet.", ""]
    rc = finite(record.get("rank_correlation"))
    flops = record.get("flops") or {}
    lines += [
        f"{md_text(record['proxies'])} proxies on random mixtures (`regmix/swarm.csv`), a "
        f"{md_text(record.get('regressor'))} fit from mixture to the target "
        f"**{md_text(_target_text(record))}**, "
        f"and the mean of the best-predicted candidates as the proposal. Cross-validated rank "
        f"correlation of the fit (Spearman, out-of-fold predictions against measured): "
        f"{fmt(rc)}{' — too low to trust the ranking' if rc is not None and rc < regmix.LOW_RANK_CORRELATION else ''}.",
        "",
    ]
    if record.get("flat_fit"):
        lines += ["**The fit learned nothing**: it predicts the same target for every proxy (too "
                  "few proxies for the regressor, or a target the mixture does not move), so the "
                  "proposal is the token-share prior. Train more proxies (`regmix.proxies`).", ""]
    lines += compute_lines(flops)
    predicted = record.get("predicted") or {}
    if predicted:
        measured = measured_targets(record, output)
        ranked = sorted(predicted.items(), key=lambda kv: finite(kv[1]) or math.inf)
        lines += md_table(["mixture", "predicted target", "measured (main runs, mean ± std)"],
                          [[name, fmt(finite(value)), measured.get(name, "not yet")]
                           for name, value in ranked], "lrr")
        lines += ["", "The fit's prediction for each mixture of the run, at the proxies' scale, "
                  "beside what its main runs measured at theirs: the order matters, not the "
                  "values (a bigger model has lower losses).", ""]
    return lines


def measured_targets(record: dict, output: Path) -> dict[str, str]:
    """Each mixture's target over its finished main runs, from summary.json and their eval.json."""
    import json

    from mixtune.tables import fmt_ms, mean_std

    path = output / "summary.json"
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text())
    domains, target = summary.get("domains") or [], record.get("target", "average")
    out = {}
    for name, seeds in (summary.get("main_runs") or {}).items():
        values = [target_value(run_measures(output / rel), target, domains) for rel in seeds.values()]
        values = [v for v in values if v is not None]
        if values:
            out[name] = f"{fmt_ms(*mean_std(values))} ({len(values)} seed{'s' * (len(values) > 1)})"
    return out


def _target_text(record: dict) -> str:
    target = record.get("target", "average")
    if isinstance(target, dict):
        return ", ".join(f"{w:g}·{d}" for d, w in target.items())
    return str(target)
