"""The report's figures, written as PNGs beside report.md:

    weights.png      every mixture's domain weights
    train_loss.png   seed-mean training loss per mixture
    eval_avg.png     seed-mean average validation log-ppl over eval steps, with the speed-up target
    per_domain.png   per-domain validation log-ppl at the end of training, above the loss floor
                     (generated data) or the reference mixture's model
    downstream_bpb.png  mean gold bits per byte of the downstream tasks (report/downstream.py)

and, for the mixture methods' own sections, `plot_weight_trajectories`: a mixture's weights over
training (DoReMi's trajectory.png, Aioli's aioli_trajectory.png).

A figure is drawn only when there is something to show, and an old one is removed otherwise.
Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot: no
display is needed and no global backend state is changed for whoever imported this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mixtune.io import write_figure
from mixtune.records import RunSummary
from mixtune.report import downstream
from mixtune.report.collect import OutputFolder, mixture_weights
from mixtune.tables import mean_curve

PLOTS = ("weights.png", "train_loss.png", "eval_avg.png", "per_domain.png",
         downstream.PLOT)


@dataclass
class Drawn:
    files: set[str]
    """The PLOTS drawn this time."""
    train_window: int | None
    """The moving-average window of train_loss.png (None: not drawn)."""


def draw_plots(out: Path, folder: OutputFolder) -> Drawn:
    """Draw into `out` every figure the data allows, and remove the others."""
    summary, table = folder.summary, folder.table
    colors = _colors(list(folder.runs))
    names = [r["mixture"] for r in table]
    done = folder.finished_by_rank()
    drawn = Drawn(files=set(), train_window=None)

    def save(name: str, draw) -> None:
        draw(out / name)
        drawn.files.add(name)

    if any(mixture_weights(summary, n) for n in names):
        save("weights.png", lambda p: plot_weights(summary, names, colors, p))
    train = {n: mean_curve([r.train for r in rs]) for n, rs in done.items()}
    train = {n: c for n, c in train.items() if c[0]}
    if train:
        window = smoothing_window(max(len(s) for s, _ in train.values()))
        drawn.train_window = window
        save("train_loss.png", lambda p: plot_train_loss(train, window, colors, p))
    if done:
        evals = {n: mean_curve([r.eval for r in rs]) for n, rs in done.items()}
        target, ref = table[0]["target"], summary.reference_mixture
        save("eval_avg.png", lambda p: plot_eval_avg(evals, target, ref, colors, p))
        rows = [r for r in table if r["seeds"]]
        base = rows[0]["excess_baseline"] if rows else None
        if base is not None:
            save("per_domain.png",
                 lambda p: plot_per_domain(rows, summary.domains, base, colors, p))
    if downstream.draw(folder.runs, colors, out, write_figure):
        drawn.files.add(downstream.PLOT)
    # A plot not drawn this time must not survive from an earlier report and show stale data.
    for stale in set(PLOTS) - drawn.files:
        (out / stale).unlink(missing_ok=True)
    return drawn


def _nan(value: float | None) -> float:
    """None as NaN: matplotlib draws nothing for it (no zero-height error bar for one seed)."""
    return math.nan if value is None else value


def _colors(names: list[str]) -> dict[str, str]:
    """One colour per mixture, fixed by the summary's order so it is the same in every plot."""
    return {n: f"C{i % 10}" for i, n in enumerate(names)}


def _grouped_bars(ax, groups: list[str], series: dict[str, list[float]], colors, errors=None):
    """Bars of every series side by side within each group; returns the bar width."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        err = None if errors is None else errors[name]
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            values,
            width,
            yerr=err,
            label=name,
            color=colors[name],
            capsize=2,
        )
    ax.set_xticks(
        x,
        groups,
        rotation=30 if len(groups) > 6 else 0,
        ha="right" if len(groups) > 6 else "center",
    )
    return width


def plot_weights(summary: RunSummary, names: list[str], colors, path: Path) -> None:
    domains = summary.domains
    fig = Figure(figsize=(max(6, 1.2 * len(domains) + 2), 4), layout="constrained")
    ax = fig.subplots()
    series = {n: [mixture_weights(summary, n).get(d, 0.0) for d in domains] for n in names}
    _grouped_bars(ax, domains, series, colors)
    ax.set_ylabel("domain weight")
    ax.set_title("Domain weights per mixture")
    ax.legend(fontsize="small")
    write_figure(fig, path)


def moving_average(values: list[float], window: int) -> list[float]:
    """Trailing mean over `window` points; the first points average what exists so far."""
    c = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    i = np.arange(1, len(values) + 1)
    lo = np.maximum(i - window, 0)
    return ((c[i] - c[lo]) / (i - lo)).tolist()


def smoothing_window(num_steps: int) -> int:
    """About 5% of the run, at most 100 steps: removes batch noise, keeps the curve's shape."""
    return max(1, min(100, num_steps // 20))


def plot_train_loss(curves: dict[str, tuple[list, list]], window: int, colors, path: Path) -> None:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for name, (steps, values) in curves.items():
        ax.plot(steps, moving_average(values, window), label=name, color=colors[name])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats/token)")
    ax.set_title(f"Training loss, seed mean, moving average over {window} step(s)")
    ax.legend(fontsize="small")
    write_figure(fig, path)


def plot_eval_avg(curves: dict[str, tuple[list, list]], target, ref_name, colors, path) -> None:
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, marker="o", markersize=3, label=name, color=colors[name])
    if target is not None:
        ax.axhline(
            target,
            color="gray",
            linestyle="--",
            linewidth=1,
            label=f"{ref_name} final average = {target:.4f}",
        )
    # The first evaluations (far above the rest) must not set the range: zoom on the second half
    # of the run, where the final gaps and the crossing of the target line are.
    late = [v for steps, values in curves.values() for s, v in zip(steps, values, strict=True)
            if steps and s >= steps[-1] / 2]
    late += [] if target is None else [target]
    if late:
        lo, hi = min(late), max(late)
        pad = 0.1 * (hi - lo) or 0.01 * abs(hi) or 0.01
        ax.set_ylim(lo - pad, hi + 2 * pad)
    ax.set_xlabel("step")
    ax.set_ylabel("average validation log-ppl (nats/token)")
    ax.set_title("Uniform-average validation log-ppl, seed mean (zoomed on the second half)")
    ax.legend(fontsize="small")
    write_figure(fig, path)


def plot_weight_trajectories(panels: list[tuple[str, dict[int, dict[str, float]]]], path: Path,
                             ylabel: str = "domain weight", *, xlabel: str = "step",
                             title: str | None = None,
                             dashed: list[dict[str, float]] | None = None) -> None:
    """A mixture's domain weights over training, one panel per (title, {step: {domain: weight}}),
    three to a row: a line per domain, labelled at the right with its final value (or the panel's
    `dashed` value for it, drawn dashed: DoReMi's ᾱ), labels moved apart where they would overlap.
    For any method whose mixture changes as it trains (Aioli's main runs, DoReMi's proxies); the
    drawing is mixing.iterated_doremi's, which may not import the report."""
    from mixtune.mixing.iterated_doremi import draw_weight_trajectories

    draw_weight_trajectories(panels, path, ylabel, xlabel=xlabel, title=title, dashed=dashed)


def plot_per_domain(rows: list[dict], domains, base_name: str | None, colors, path: Path) -> None:
    """Each domain's log-ppl above the baseline (the loss floor, else the reference mixture's
    model): the 0.01-0.1-nat differences between mixtures show, whatever the domains' levels."""
    fig = Figure(figsize=(max(6, 1.4 * len(domains) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    series = {r["mixture"]: [_nan(r["excess"][d]) for d in domains] for r in rows}
    errors = {r["mixture"]: [_nan(r["log_ppl_std"][d]) for d in domains] for r in rows}
    _grouped_bars(ax, domains, series, colors, errors)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylabel(f"log-ppl − {base_name} (nats/token)")
    ax.set_title(f"Per-domain validation log-ppl above {base_name} (error bars: std over seeds)")
    ax.legend(fontsize="small")
    write_figure(fig, path)
