"""What the report reads from a `mixtune run` output folder, and the numbers it compares.

`summary.json` names the mixtures and their main runs (`main/<mixture>/seed-S/`). A main run counts
once it has `eval.json` (its final evaluation); a run without one is listed as missing with the
reason, never guessed at, so a report written mid-pipeline is honest about what it lacks.

`main_table` turns the finished runs into one row per mixture: mean ± sample std over seeds of the
uniform-average, worst-case and per-domain validation log-ppl, the domains improved over the
reference mixture, and the speed-up S_ref / s* to the reference's final average.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mixtune.errors import UserError
from mixtune.io import read_json
from mixtune.mixing.target import measures, target_value
from mixtune.records import (
    DownstreamResult,
    EvalFile,
    EvalResult,
    Metrics,
    RunSummary,
    finite,
)
from mixtune.report.verdict import Verdict, decide
from mixtune.tables import mean_curve, mean_std

TOL = 1e-9  # the reference's own curve must reach its own target despite float rounding


# -- reading ---------------------------------------------------------------------------------------


def load_summary(output_dir: str | os.PathLike) -> RunSummary:
    path = Path(output_dir) / "summary.json"
    if not path.is_file():
        raise UserError(
            f"{path} not found: it is written by `mixtune run` once the mixture methods have "
            "proposed their mixtures; point the report at the output folder of a run."
        )
    obj = read_json(path, "rerun `mixtune run` to rewrite it.")
    try:
        return RunSummary.from_json(obj)
    except ValueError as e:
        raise UserError(f"{path}: written by an older mixtune ({e}); report it with the version "
                        "that wrote it, or redo the run with this one (`mixtune run CONFIG "
                        "--force data`).") from None


@dataclass
class MainRun:
    """One main run of one mixture and seed: its curves and final evaluation, or why it has none."""

    seed: str
    path: str
    """Relative to the output folder, as summary.json names it."""
    final: EvalResult | None = None
    train: dict[int, float] = field(default_factory=dict)
    """Step -> training loss."""
    eval: dict[int, float] = field(default_factory=dict)
    """Step -> average validation log-ppl."""
    problem: str | None = None
    downstream: DownstreamResult | None = None
    """The final downstream results, when the run scored tasks."""
    downstream_bpb: dict[int, float] = field(default_factory=dict)
    """Step -> mean gold bits per byte over the downstream tasks."""
    trained_mixture: dict[str, float] = field(default_factory=dict)
    """The share of each domain in what it trained on (an online method's average mixture)."""
    weights: dict[int, dict[str, float]] = field(default_factory=dict)
    """Step -> an online method's mixture during the run ({} for a fixed mixture)."""
    heldout_tokens: float = 0.0
    """Held-out tokens an online method scored during the run (its extra forward passes)."""


def load_run(output_dir: Path, seed: str, rel: str) -> MainRun:
    """One main run: its final eval, training and eval curves, or the reason it is missing."""
    run = MainRun(seed, rel)
    folder = output_dir / rel
    if not folder.is_dir():
        run.problem = "run folder not found"
        return run
    metrics = Metrics.read(folder / "metrics.jsonl")
    eval_file = folder / "eval.json"
    if not eval_file.is_file():
        run.problem = f"not finished (no eval.json; metrics.jsonl reaches step {metrics.last_step})"
        return run
    try:
        final = EvalFile.from_json(json.loads(eval_file.read_text()))
    except json.JSONDecodeError as e:
        run.problem = f"eval.json unreadable ({e})"
        return run
    run.train = dict(metrics.train_loss)
    run.trained_mixture = metrics.trained_mixture()
    run.weights = metrics.weights
    if metrics.heldout_tokens:  # cumulative: the last row's
        run.heldout_tokens = sum(metrics.heldout_tokens[max(metrics.heldout_tokens)].values())
    run.eval = dict(metrics.eval_average)
    run.downstream_bpb = {s: d.mean_bpb for s, d in metrics.downstream.items()
                          if d.mean_bpb is not None}
    if final.downstream is not None:
        run.downstream = DownstreamResult.from_json(final.downstream)
    elif metrics.downstream:
        run.downstream = metrics.downstream[max(metrics.downstream)]
    step, run.final = _final_eval(final, metrics)
    # The pipeline's eval.json has a step, equal to the last eval row. Merging it keeps the final
    # point even when metrics.jsonl lost its tail.
    if step is not None and run.final.average is not None:
        run.eval[step] = run.final.average
    return run


def _final_eval(final: EvalFile, metrics: Metrics) -> tuple[int | None, EvalResult]:
    """(step, result) of the evaluation the mixtures are compared on."""
    # `mixtune eval` rewrites eval.json without a step and with its own token budget; the training
    # run's final evaluation is then still the last eval row of metrics.jsonl: compare on that.
    if final.step is None and metrics.evals:
        step = max(metrics.evals)
        return step, metrics.evals[step]
    return final.step, final.result


def collect_runs(summary: RunSummary, output_dir: Path) -> dict[str, list[MainRun]]:
    """{mixture: [run, ...]} for every mixture of the summary, in its order."""
    names = list(summary.mixtures)
    names += [n for n in summary.main_runs if n not in names]
    return {
        name: [
            load_run(output_dir, seed, rel)
            for seed, rel in (summary.main_runs.get(name) or {}).items()
        ]
        for name in names
    }


def finished(runs: list[MainRun]) -> list[MainRun]:
    return [r for r in runs if r.final is not None]


def record_online_mixtures(summary: RunSummary, runs: dict[str, list[MainRun]]) -> None:
    """An online method's mixture is known only once its main runs trained: record the seed-mean
    share of each domain they trained on as its weights."""
    for name, record in summary.methods.items():
        shares = [r.trained_mixture for r in finished(runs.get(name, [])) if r.trained_mixture]
        if record.get("online") and shares:  # a new dict: the caller's summary stays as it was
            summary.mixtures = {**summary.mixtures, name: {
                d: float(np.mean([s.get(d, 0.0) for s in shares])) for d in summary.domains}}


def predictions(summary: RunSummary) -> dict[str, float]:
    """What a method predicted for each mixture's target (RegMix), where it predicted the run's
    own target."""
    out = {}
    for record in summary.methods.values():
        if record.get("target") == summary.target and isinstance(record.get("predicted"), dict):
            out.update({n: v for n, v in record["predicted"].items() if finite(v) is not None})
    return out


def costs(summary: RunSummary, runs: dict[str, list[MainRun]]) -> dict[str, float]:
    """Each mixture's compute beyond its own main runs, as a share of one main run: 0 for a fixed
    mixture, an offline method's runs (reference, proxies, swarm) for what it proposed, an online
    method's held-out forward passes (seed mean); a mixture whose cost is unknown is left out."""
    out = {}
    for name, rs in runs.items():
        method = summary.origins.get(name)
        if method is None:
            out[name] = 0.0
            continue
        flops = (summary.methods.get(method) or {}).get("flops") or {}
        main, spent = finite(flops.get("main_run")), finite(flops.get("method"))
        online = heldout_flops(flops, rs)
        if main and spent is not None:
            out[name] = spent / main
        elif main and online is not None:
            out[name] = online[1] / main
    return out


def heldout_flops(flops, runs: list[MainRun]) -> tuple[float, float] | None:
    """(held-out tokens per run, their forward FLOPs) of an online method's finished runs, seed
    mean, from its summary record's "flops" (forward_per_token); None without either."""
    per_token = finite((flops if isinstance(flops, dict) else {}).get("forward_per_token"))
    done = finished(runs)
    if not per_token or not done:
        return None
    tokens = float(np.mean([r.heldout_tokens for r in done]))
    return tokens, tokens * per_token


def mixture_weights(summary: RunSummary, name: str) -> dict[str, float]:
    """A mixture's weights normalised to sum to 1 (files need not be), {} when unknown."""
    raw = {d: finite(w) or 0.0 for d, w in (summary.mixtures.get(name) or {}).items()}
    total = sum(raw.values())
    return {d: w / total for d, w in raw.items()} if total > 0 else {}


# -- numbers ---------------------------------------------------------------------------------------


def _mixture_row(name: str, runs: list[MainRun], domains: list[str], weights) -> dict:
    finals = [r.final for r in finished(runs)]
    average, average_std = mean_std(f.average for f in finals)
    worst, worst_std = mean_std(f.worst for f in finals)
    named = Counter(f.worst_domain for f in finals if f.worst_domain)
    worst_domain, worst_votes = named.most_common(1)[0] if named else (None, 0)
    per_domain = {d: mean_std(f.log_ppl.get(d) for f in finals) for d in domains}
    return {
        "mixture": name,
        "weights": weights,
        "seeds": len(finals),
        "seeds_expected": len(runs),
        "missing": [{"seed": r.seed, "path": r.path, "problem": r.problem} for r in runs if r.problem],
        "average": average,
        "average_std": average_std,
        "worst": worst,
        "worst_std": worst_std,
        "worst_domain": worst_domain,
        "worst_domain_seeds": worst_votes,  # seeds that name it: they can disagree
        "log_ppl": {d: m for d, (m, _) in per_domain.items()},
        "log_ppl_std": {d: s for d, (_, s) in per_domain.items()},
    }


def _speedup_target(summary: RunSummary, runs: dict[str, list[MainRun]], rows: dict[str, dict]):
    """(S_ref, target): the reference mixture's last eval step and its final mean average."""
    ref = summary.reference_mixture
    if ref not in rows or rows[ref]["average"] is None:
        return None, None
    steps, _ = mean_curve([r.eval for r in finished(runs[ref])])
    return (steps[-1], rows[ref]["average"]) if steps else (None, None)


def _domains_improved(row: dict, ref_row: dict | None, domains: list[str]) -> None:
    # Only where both this mixture and the reference have a number.
    pairs = []
    if ref_row is not None and not row["is_reference"]:
        pairs = [
            (row["log_ppl"][d], ref_row["log_ppl"][d])
            for d in domains
            if row["log_ppl"][d] is not None and ref_row["log_ppl"][d] is not None
        ]
    row["domains_compared"] = len(pairs)
    row["domains_improved"] = sum(a < b for a, b in pairs) if pairs else None


def step_reaching(steps: list[int], values: list[float], target: float) -> int | None:
    """The first step whose value is at or below `target` (the speed-up's s*), None if none."""
    return next((s for s, v in zip(steps, values, strict=True) if v <= target + TOL), None)


def _speedup(row: dict, runs: list[MainRun], s_ref: int | None, target: float | None) -> None:
    row["speedup"], row["speedup_step"] = None, None
    if target is None or row["seeds"] == 0:
        return
    if row["is_reference"]:  # 1.0× by definition
        row["speedup"], row["speedup_step"] = 1.0, s_ref
        return
    steps, values = mean_curve([r.eval for r in finished(runs)])
    reached = step_reaching(steps, values, target)
    if reached is not None:
        row["speedup"], row["speedup_step"] = s_ref / reached, reached


LOSS_FLOOR = "the loss floor"


def _complete(log_ppl: dict, domains) -> bool:
    """Every domain has a value."""
    return all(log_ppl.get(d) is not None for d in domains)


def excess_baseline(summary: RunSummary, rows: dict[str, dict], runs: dict[str, list[MainRun]]
                    ) -> tuple[dict | None, dict[str, dict], str | None]:
    """What DoReMi's excess loss is measured against: the exact loss floors of generated data,
    else the reference mixture's model, as DoReMi's reference model: per seed, the same seed's
    model where it finished (the seed-to-seed noise both share then cancels, and the reference's
    own excess is 0), else the seed mean. Returns (baseline, {seed: baseline}, its name)."""
    floors = {d: finite(v) for d, v in (summary.loss_floor or {}).items()}
    if floors and _complete(floors, summary.domains):
        return floors, {}, LOSS_FLOOR
    ref = rows.get(summary.reference_mixture)
    if ref is None or not _complete(ref["log_ppl"], summary.domains):
        return None, {}, None
    same_seed = {r.seed: r.final.log_ppl for r in finished(runs[summary.reference_mixture])
                 if _complete(r.final.log_ppl, summary.domains)}
    return dict(ref["log_ppl"]), same_seed, f"{summary.reference_mixture}'s model"


def _excess(row: dict, runs: list[MainRun], domains: list[str], base: dict | None,
            same_seed: dict[str, dict]) -> None:
    """DoReMi's own objective per seed: per-domain excess log-ppl over the baseline, its worst
    case (the domain DoReMi optimises for) and its average; mean ± std over seeds. Each seed
    against `same_seed`'s baseline where it has one, else against `base`."""
    per_seed = []
    if base is not None:
        for run in finished(runs):
            f, b = run.final, same_seed.get(run.seed, base)
            if _complete(f.log_ppl, domains):
                per_seed.append({d: f.log_ppl[d] - b[d] for d in domains})
    row["excess"] = {d: mean_std(e[d] for e in per_seed)[0] for d in domains} if per_seed \
        else {d: None for d in domains}
    row["worst_excess"], row["worst_excess_std"] = mean_std(max(e.values()) for e in per_seed)
    row["average_excess"], row["average_excess_std"] = mean_std(
        float(np.mean(list(e.values()))) for e in per_seed)
    named = Counter(max(e, key=e.get) for e in per_seed)
    row["worst_excess_domain"] = named.most_common(1)[0][0] if named else None


def target_values(summary: RunSummary, runs: dict[str, list[MainRun]]) -> dict[str, dict[str, float]]:
    """{mixture: {seed: the run's target}} over the finished main runs (a run that lacks a measure
    the target needs is left out)."""
    out = {}
    for name, rs in runs.items():
        values = {r.seed: target_value(measures(r.final, r.downstream), summary.target,
                                       summary.domains) for r in finished(rs)}
        out[name] = {seed: v for seed, v in values.items() if v is not None}
    return out


def mixture_table(summary: RunSummary, runs: dict[str, list[MainRun]]) -> list[dict]:
    """`main_table` from runs already read."""
    domains = list(summary.domains)
    ref = summary.reference_mixture
    rows = {n: _mixture_row(n, rs, domains, summary.mixtures.get(n)) for n, rs in runs.items()}
    for name, by_seed in target_values(summary, runs).items():
        rows[name]["objective"], rows[name]["objective_std"] = mean_std(by_seed.values())
    s_ref, target = _speedup_target(summary, runs, rows)
    base, same_seed, base_name = excess_baseline(summary, rows, runs)
    for name, row in rows.items():
        row["is_reference"] = name == ref
        row["reference_step"], row["target"] = s_ref, target
        _domains_improved(row, rows.get(ref), domains)
        _speedup(row, runs[name], s_ref, target)
        _excess(row, runs[name], domains, base, same_seed)
        row["excess_baseline"] = base_name
    # Ranked by the run's target (the average log-ppl unless the run names another).
    ranked = sorted(rows.values(), key=lambda r: (r["objective"] is None, r["objective"] or 0.0))
    for i, row in enumerate(ranked):
        row["rank"] = i + 1 if row["objective"] is not None else None
    return ranked


def main_table(summary: dict | RunSummary, output_dir: str | os.PathLike) -> list[dict]:
    """One row per mixture, best first (mixtures without results last).

    `summary` is summary.json, parsed (a plain dict) or as a `RunSummary`.
    Keys: mixture, is_reference, rank (None without results), weights, seeds (finished),
    seeds_expected, missing [{seed, path, problem}], average, average_std, worst, worst_std,
    worst_domain, worst_domain_seeds, log_ppl {d: mean}, log_ppl_std {d: std}, domains_improved,
    domains_compared, speedup, speedup_step, reference_step, target; objective(_std): the run's
    target (summary.target: average log-ppl by default), which ranks the rows; DoReMi's objective: excess
    {d: mean excess log-ppl over the baseline}, worst_excess(_std), worst_excess_domain,
    average_excess(_std), excess_baseline (the loss floor of generated data, else the reference
    mixture's model). Std is None for one seed; any number is None where it does not exist.
    """
    if not isinstance(summary, RunSummary):
        summary = RunSummary.from_json(summary)
    runs = collect_runs(summary, Path(output_dir))
    record_online_mixtures(summary, runs)
    return mixture_table(summary, runs)


# -- the whole folder ------------------------------------------------------------------------------


@dataclass
class OutputFolder:
    """Everything the report reads from one output folder, read once."""

    path: Path
    summary: RunSummary
    runs: dict[str, list[MainRun]]
    """Per mixture, in the summary's order (which fixes each mixture's colour)."""
    table: list[dict]
    """`main_table`'s rows, best first."""
    verdict: Verdict
    """Which mixture to train on, from the runs paired by seed with the reference's."""

    @classmethod
    def read(cls, output_dir: str | os.PathLike) -> OutputFolder:
        path = Path(output_dir)
        summary = load_summary(path)
        runs = collect_runs(summary, path)
        record_online_mixtures(summary, runs)
        verdict = decide(target_values(summary, runs), summary.reference_mixture, summary.target,
                         predictions(summary), costs(summary, runs))
        return cls(path, summary, runs, mixture_table(summary, runs), verdict)

    def finished_by_rank(self) -> dict[str, list[MainRun]]:
        """The finished runs of every mixture that has one, best mixture first."""
        return {r["mixture"]: finished(self.runs[r["mixture"]]) for r in self.table if r["seeds"]}
