"""Iterated DoReMi, the offline method: reference -> proxy -> ᾱ, repeated until ᾱ settles.

    round r:  round-r/reference   trained on α_ref (round 1: reference_weights, e.g. natural),
                                  from round-r/<its mixture's name>.json (reference_file)
              round-r/proxy       a DoReMi proxy against it (doremi.py); its ᾱ is the result
              stop when ‖ᾱ − α_ref‖∞ < rounds.until (or after rounds.max), else α_ref = ᾱ

Reference and proxy have the same scale and steps (`proxy:` in the run config), as in the paper.
The last round's ᾱ is the `doremi` mixture; earlier rounds' are offered as `doremi-roundN`.

The method owns its options (the run YAML's `doremi:` section: the proxy's eta, smoothing, ...
and `rounds`), its record (the rounds, under "doremi" in summary.json) and the report's section
on it (the weight trajectory of each round's proxy, and how settled its ᾱ is).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import numpy as np

from mixtune.data.weights import as_dict, mixture_name, read_weights
from mixtune.io import read_jsonl, remove, write_figure
from mixtune.mixing.base import METHODS, OfflineMethod, Proposal, compute_lines
from mixtune.mixing.doremi import DoReMiConfig
from mixtune.mixing.static import StaticConfig
from mixtune.records import finite
from mixtune.schema import at_least, setting
from mixtune.tables import fmt

log = logging.getLogger(__name__)


@dataclass
class Rounds:
    until: float = setting(check=at_least(0))
    """Stop once ‖ᾱ − α_ref‖∞ < until."""
    max: int = setting(5, check=at_least(1))
    """At most this many rounds."""


def _rounds_problem(r) -> str | None:
    return "must be at least 1" if isinstance(r, int) and r < 1 else None


@dataclass
class IteratedDoReMiConfig(DoReMiConfig):
    """The `doremi:` section of a run: every round's proxy (eta, smoothing, loss_normalization,
    proxy_sampling) and the rounds."""

    OWNED: ClassVar[dict[str, str]] = {
        "reference": "each round's reference is trained by the pipeline"}
    rounds: int | Rounds = setting(1, check=_rounds_problem)
    """Rounds of iterated DoReMi: a number, or {until: tol, max: n} on ‖ᾱ − α_ref‖∞."""

    def validate(self, label) -> None:
        """Nothing of the proxy's to require: each round's reference is the pipeline's (OWNED)."""

    @property
    def max_rounds(self) -> int:
        return self.rounds if isinstance(self.rounds, int) else self.rounds.max

    @property
    def tolerance(self) -> float | None:
        return None if isinstance(self.rounds, int) else self.rounds.until

    def proxy(self, reference: str) -> DoReMiConfig:
        """A round's proxy against the reference run `reference`."""
        own = {f.name: getattr(self, f.name) for f in fields(DoReMiConfig)}
        return DoReMiConfig(**{**own, "reference": reference})


@dataclass
class RoundRecord:
    """One round of iterated DoReMi."""

    round: int
    reference_weights: dict[str, float] | None = None
    doremi_weights: dict[str, float] | None = None
    """ᾱ, the round's result."""
    linf: float | None = None
    """‖ᾱ − α_ref‖∞: iterated DoReMi stops once it is below the tolerance."""
    reference_run: str | None = None
    proxy_run: str | None = None

    @classmethod
    def from_json(cls, obj: dict, index: int) -> RoundRecord:
        r = finite(obj.get("round"))
        return cls(
            round=int(r) if r is not None else index + 1,
            reference_weights=obj.get("reference_weights"),
            doremi_weights=obj.get("doremi_weights"),
            linf=finite(obj.get("linf")),
            reference_run=obj.get("reference_run"),
            proxy_run=obj.get("proxy_run"),
        )

    def to_json(self) -> dict:
        return dict(vars(self))


def read_rounds(record: dict) -> list[RoundRecord]:
    """The rounds of the method's record in summary.json (leniently: [] when absent)."""
    rounds = record.get("rounds") if isinstance(record, dict) else None
    return [RoundRecord.from_json(r, i) for i, r in enumerate(rounds or []) if isinstance(r, dict)]


@METHODS.register
class IteratedDoReMi(OfflineMethod):
    method = "doremi"
    Config = IteratedDoReMiConfig
    figures = ("trajectory.png",)
    opts: IteratedDoReMiConfig

    def stage_names(self, cfg) -> list[str]:
        return [f"round-{r}/{s}" for r in range(1, self.opts.max_rounds + 1)
                for s in ("reference", "proxy")]

    def mixture_names(self, cfg) -> list[str]:
        return [self.method] + [f"doremi-round{r}" for r in range(1, self.opts.max_rounds)]

    def propose(self, ctx):
        cfg, opts = ctx.cfg, self.opts
        ref_weights = ctx.weights(cfg.reference_weights)
        rounds: list[RoundRecord] = []
        after: tuple[str, ...] = ()  # round r > 1 trains its reference on round r-1's result
        for r in range(1, opts.max_rounds + 1):
            ref_file = ctx.write_weights(reference_file(ctx.out, r, cfg.reference_weights), ref_weights)
            ref = yield ctx.train_stage(f"round-{r}/reference", StaticConfig(weights=str(ref_file)),
                                        cfg.proxy, deps=after)
            proxy = yield ctx.train_stage(f"round-{r}/proxy", opts.proxy(str(ref)), cfg.proxy,
                                          deps=(f"round-{r}/reference",))
            avg = read_weights(proxy / "domain_weights.json", ctx.domains)
            linf = float(np.abs(avg - ref_weights).max())
            rounds.append(RoundRecord(r, as_dict(ref_weights, ctx.domains), as_dict(avg, ctx.domains),
                                      linf, f"round-{r}/reference", f"round-{r}/proxy"))
            log.info("round %d: ‖ᾱ − α_ref‖∞ = %.4f", r, linf)
            if opts.tolerance is not None and linf < opts.tolerance:
                break
            ref_weights, after = avg, (f"round-{r}/proxy",)
        earlier = {f"doremi-round{x.round}": _vector(x.doremi_weights, ctx.domains) for x in rounds[:-1]}
        # Each round: a reference, and a proxy whose step adds one forward of it (≈ 4/3 of a step).
        flops = {"method": len(rounds) * (1 + PROXY_STEP_COST) * ctx.train_flops(cfg.proxy),
                 "main_run": ctx.train_flops(cfg.main)}
        return Proposal(avg, [f"round-{rounds[-1].round}/proxy"], earlier,
                        {"rounds": [x.to_json() for x in rounds], "flops": flops})

    @classmethod
    def report_section(cls, record: dict, output: Path, report_dir: Path) -> list[str]:
        rounds = read_rounds(record)
        histories = [weight_history(output, r) for r in rounds]
        figure = report_dir / cls.figures[0]
        if any(histories):
            plot_trajectory(rounds, histories, figure)
        else:
            remove(figure)  # a figure of an earlier report must not show stale weights
        return trajectory_section(rounds, histories, any(histories)) + \
            compute_lines(record.get("flops"))


def reference_file(out: Path, r: int, reference_weights: str) -> str:
    """Round r's reference weights file, named after the mixture it is: round 1's after the run's
    reference mixture (`natural.json`), round r's after round r-1's result (`doremi-round1.json`).
    A model's mixture is named after the file it trained on (its model record), and a main run
    identical to a round's reference is that run: the leaderboard must see one name for both.
    A folder a mixtune before this naming started keeps its `reference_weights.json`: its run's
    config.yaml names that file, and a run resumed from its checkpoints must find the same
    settings. (Only the numbers count for the stage: renaming retrains nothing.)"""
    legacy = f"round-{r}/reference_weights.json"
    if (Path(out) / legacy).is_file():
        return legacy
    name = mixture_name(reference_weights) if r == 1 else f"doremi-round{r - 1}"
    return f"round-{r}/{name}.json"


PROXY_STEP_COST = 4 / 3
"""A proxy step in training FLOPs: a plain step (forward + backward, 3 forwards' worth) and the
reference's forward (measured 1.33× on an H200 at 120M and 1B: see the README's Performance)."""


def _vector(weights: dict[str, float], domains: list[str]) -> np.ndarray:
    return np.array([weights[d] for d in domains])


# -- the report's section ----------------------------------------------------------------------

def weight_history(output_dir: Path, rnd: RoundRecord) -> dict[int, dict]:
    """A round's weights_history.jsonl as {step: weights}, by step (the last row wins for a
    repeated step); {} when the proxy has not written one."""
    if not rnd.proxy_run:
        return {}
    by_step = {}
    for row in read_jsonl(output_dir / rnd.proxy_run / "weights_history.jsonl"):
        step = finite(row.get("step"))
        if step is not None and isinstance(row.get("weights"), dict):
            by_step[int(step)] = row["weights"]
    return {s: by_step[s] for s in sorted(by_step)}


def trajectory_section(rounds: list[RoundRecord], histories: list[dict[int, dict]],
                       have_plot: bool) -> list[str]:
    from mixtune.tables import md_code

    lines = ["## DoReMi weight trajectory", ""]
    if not rounds:
        return lines + ["No DoReMi round has finished yet.", ""]
    lines += [
        "How the proxy's domain weights α_t moved during its training, one panel per round. "
        "Dashed lines are the round's result ᾱ (the mean of α_t over all steps), the weights "
        "the next stage trains on. A domain whose weight rises is one where the proxy lags the "
        "reference most.",
        "",
    ]
    if have_plot:
        lines += ["![DoReMi weights during proxy training](trajectory.png)", ""]
    dists = ", ".join(f"round {r.round}: {fmt(r.linf)}" for r in rounds)
    lines.append(
        "‖ᾱ − α_ref‖∞, the largest change of any domain's weight between a round's reference "
        f"weights and its DoReMi result (iterated DoReMi stops once this is small): {dists}."
    )
    for rnd, history in zip(rounds, histories, strict=True):
        if not history:
            lines += [
                "",
                f"Round {rnd.round}: no weight history at "
                f"{md_code(f'{rnd.proxy_run}/weights_history.jsonl')} (proxy not run yet?).",
            ]
            continue
        lines += ["", _stability_line(rnd.round, history)]
    return lines + [""]


STABLE = 0.02  # a shift of ᾱ below this (in weight) is read as a settled proxy run


def weights_stability(history: dict[int, dict], drop: float = 0.2) -> tuple[float, str] | None:
    """How far ᾱ moves when the last `drop` of the proxy run is left out: (largest change of any
    domain's weight, that domain); None for a run too short to tell."""
    steps = sorted(history)
    keep = int(len(steps) * (1 - drop))
    if keep < 1 or keep == len(steps):
        return None
    domains = list(history[steps[0]])
    full = {d: float(np.mean([history[s][d] for s in steps])) for d in domains}
    early = {d: float(np.mean([history[s][d] for s in steps[:keep]])) for d in domains}
    domain = max(domains, key=lambda d: abs(full[d] - early[d]))
    return abs(full[domain] - early[domain]), domain


def _stability_line(round_: int, history: dict[int, dict]) -> str:
    from mixtune.tables import md_text

    found = weights_stability(history)
    if found is None:
        return f"Round {round_}: too few proxy steps to judge how settled ᾱ is."
    shift, domain = found
    verdict = ("settled" if shift < STABLE else
               "not settled: ᾱ still depends on where the proxy run stops, so train it longer "
               "(a smaller η settles ᾱ too, but in the README's DoReMi study a settled ᾱ was not "
               "the better one)")
    return (f"Round {round_} stability: leaving out the last 20% of the proxy run would move ᾱ by "
            f"up to {shift:.3f} ({md_text(domain)}); {verdict}.")


def plot_trajectory(rounds: list[RoundRecord], histories: list[dict[int, dict]], path: Path) -> None:
    """trajectory.png: a panel per round, α_t of each domain, its ᾱ dashed and labelled."""
    draw_weight_trajectories([(f"round {r.round}", h) for r, h in zip(rounds, histories, strict=True)],
                             path, "α_t (dashed and labelled: ᾱ)", xlabel="proxy step",
                             title="DoReMi domain weights during proxy training",
                             dashed=[r.doremi_weights or {} for r in rounds])


# -- weight trajectories ---------------------------------------------------------------------------
# Drawn here, in the mixing layer, since DoReMi's report section draws with it and may not import
# the report (tests/test_layers.py); report.plots.plot_weight_trajectories is its name for other
# methods (Aioli's mixture during a main run).

LABEL_GAP = 1.15
"""The least distance between two labels' centres, in label heights."""
LABEL_PAD = 8
"""Points between a panel's right edge and its labels (a thin line joins them)."""


def draw_weight_trajectories(panels: list[tuple[str, dict[int, dict]]], path: Path,
                             ylabel: str = "domain weight", *, xlabel: str = "step",
                             title: str | None = None,
                             dashed: list[dict[str, float]] | None = None) -> None:
    """One panel per (title, {step: {domain: weight}}), three to a row, sharing the y axis: a line
    per domain (one colour per domain in every panel), labelled at the right edge with its name
    and its value at the last step, or, where `dashed` gives the panel a value for the domain
    (DoReMi's ᾱ), that value, drawn as a dashed line. Labels too close are moved apart (at least
    LABEL_GAP label heights, as little as they can be: `spread_labels`) and keep a thin line to
    the height they name."""
    from matplotlib.figure import Figure

    n = max(len(panels), 1)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    domains = list(dict.fromkeys(d for _, h in panels for w in h.values() if isinstance(w, dict)
                                 for d in w))
    colors = {d: f"C{i % 10}" for i, d in enumerate(domains)}
    height = max(3.6, 1.6 + 0.14 * len(domains))  # room for a label per domain
    fig = Figure(figsize=(4.6 * ncols + 1.4, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for row in axes:
        row[0].set_ylabel(ylabel)
    axes = axes.ravel()
    dashed = list(dashed or []) + [None] * len(panels)
    labels = [_trajectory_panel(ax, name, history, colors, xlabel, marks)
              for ax, (name, history), marks in zip(axes, panels, dashed, strict=False)]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.draw_without_rendering()  # the layout first: labels are spread in the panels' final size
    for ax, placed in zip(axes, labels, strict=False):  # the panels drawn
        _spread(ax, placed)
    write_figure(fig, path)


def _trajectory_panel(ax, title: str, history: dict[int, dict], colors: dict[str, str], xlabel: str,
                      marks: dict[str, float] | None) -> list[tuple]:
    """Draw one panel; its labels, each with the value (data) it names."""
    from matplotlib.ticker import MaxNLocator

    ax.set_title(title)
    ax.set_xlabel(xlabel)
    steps = sorted(s for s, w in history.items() if isinstance(w, dict))
    if not steps:
        ax.text(0.5, 0.5, "no weights recorded", ha="center", va="center", transform=ax.transAxes)
        return []
    ax.margins(x=0)  # the lines end at the right edge, where their labels are
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    labels = []
    for d in dict.fromkeys(d for s in steps for d in history[s]):
        ys = [_weight(history[s].get(d)) for s in steps]
        ax.plot(steps, ys, color=colors[d], linewidth=1.4, marker="o" if len(steps) == 1 else None)
        value = _weight((marks or {}).get(d))
        if not math.isnan(value):
            ax.axhline(value, color=colors[d], linestyle="--", linewidth=0.8)
        else:
            value = next((y for y in reversed(ys) if not math.isnan(y)), value)
        if math.isnan(value):
            continue
        arrow = dict(arrowstyle="-", color=colors[d], linewidth=0.6, shrinkA=0, shrinkB=0,
                     relpos=(0.0, 0.5))
        labels.append((ax.annotate(f"{d} {value:.3f}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                                   xytext=(LABEL_PAD, 0), textcoords="offset points", va="center",
                                   ha="left", fontsize="x-small", color=colors[d], arrowprops=arrow),
                       value))
    return labels


def _weight(value) -> float:
    """A weight to draw: NaN (nothing drawn) for one missing or not a number."""
    found = finite(value)
    return math.nan if found is None else float(found)


def _spread(ax, labels: list[tuple]) -> None:
    """Move the panel's labels apart where they overlap, in display space (the panel laid out)."""
    from matplotlib.text import Text

    if not labels:
        return
    box = ax.get_window_extent()
    targets = [float(ax.transData.transform((0.0, value))[1]) for _, value in labels]
    gap = LABEL_GAP * max(Text.get_window_extent(a).height for a, _ in labels)
    points = 72 / ax.figure.dpi
    for (a, _), target, y in zip(labels, targets, spread_labels(targets, gap, box.y0, box.y1),
                                 strict=True):
        a.xyann = (LABEL_PAD, (y - target) * points)


def spread_labels(targets: list[float], gap: float, lo: float | None = None,
                  hi: float | None = None) -> list[float]:
    """Heights for labels meant to sit at `targets` (in the order given): at least `gap` apart, in
    the targets' order (ties: the order given), each as close to its target as can be (the least
    sum of squared moves), within [lo, hi] where they fit there (else centred on it).
    Isotonic regression (pool adjacent violators) of target_k - k·gap over the sorted labels."""
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    blocks: list[list[float]] = []  # [mean, count] of pooled labels
    for k, i in enumerate(order):
        blocks.append([targets[i] - k * gap, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m2, c2), (m1, c1) = blocks.pop(), blocks.pop()
            blocks.append([(m1 * c1 + m2 * c2) / (c1 + c2), c1 + c2])
    fit = [m for m, c in blocks for _ in range(int(c))]
    # A bound holds for every label once it holds for the first (lo) or the last (hi): on the
    # fit, both are the same bounds for every label, and clipping the fit to them is optimal.
    top = None if hi is None else hi - (len(fit) - 1) * gap
    if lo is not None and top is not None and top < lo:  # they cannot fit: centred
        fit = [(lo + top) / 2] * len(fit)
    else:
        fit = [f if lo is None else max(f, lo) for f in fit]
        fit = [f if top is None else min(f, top) for f in fit]
    placed = [0.0] * len(targets)
    for k, i in enumerate(order):
        placed[i] = fit[k] + k * gap
    return placed
