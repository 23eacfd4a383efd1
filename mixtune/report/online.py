"""The report's section on each online method of a run (Aioli): the mixture its main runs held
as they trained, where it started and ended, what they trained on, and what it cost.

An online method has no proposal before the main runs: its "mixture" is what its main runs did.
The trajectory is the mixture the mixer held at each step (seed mean), without its short sweeps
of perturbed mixtures; the share each domain had of the sequences trained on counts them. The
cost is the held-out forward passes its measurements took (the sweeps are training steps of the
run's own budget), in FLOPs against one main run's training, from the counts the runs logged and
the per-token FLOPs the plan recorded in summary.json.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mixtune.io import remove
from mixtune.records import RunSummary, finite
from mixtune.report.collect import MainRun, finished, heldout_flops, mixture_weights
from mixtune.tables import NONE, fmt, fmt_ms, md_code, md_table, md_text, mean_std


def figure(name: str) -> str:
    return f"{name}_trajectory.png"


def sections(summary: RunSummary, runs: dict[str, list[MainRun]], report_dir: Path) -> list[str]:
    """One section per online method of the run; figures of online methods it no longer has go."""
    from mixtune.mixing import MIXERS

    online = [n for n, r in summary.methods.items() if r.get("online")]
    for name in MIXERS.names():
        if name not in online:
            remove(report_dir / figure(name))
    lines = []
    for name in online:
        lines += _section(name, summary, finished(runs.get(name, [])), report_dir)
    return lines


def _section(name: str, summary: RunSummary, runs: list[MainRun], report_dir: Path) -> list[str]:
    title = md_text(name)
    lines = [f"## {title}: the mixture chosen during the main runs", ""]
    if not runs:
        remove(report_dir / figure(name))
        return lines + [f"No main run of {title} has finished yet.", ""]
    domains = summary.domains
    lines += [f"{title} chose the mixture while each of its {len(runs)} main run(s) trained, on "
              "the same token budget as every fixed mixture. *start* and *end* are the mixture it "
              "held at the first and last step, *trained on* the share of each domain in the "
              "sequences the run drew (its short sweeps of perturbed mixtures included): its "
              "column in the weights table above. Mean ± std over seeds.", ""]
    starts = [r.weights[min(r.weights)] for r in runs if r.weights]
    ends = [r.weights[max(r.weights)] for r in runs if r.weights]
    ref = mixture_weights(summary, summary.reference_mixture)
    rows = []
    for d in domains:
        trained = mean_std(r.trained_mixture.get(d) for r in runs)
        rows.append([d, fmt(ref.get(d), 3) if ref else NONE,
                     fmt(_mean(starts, d), 3), fmt_ms(*mean_std(e.get(d) for e in ends), 3),
                     fmt_ms(*trained, 3)])
    lines += md_table(["domain", f"{summary.reference_mixture} (reference)", "start", "end",
                       "trained on"], rows, "lrrrr")
    lines += [""] + _compute(summary.methods[name].get("flops"), runs)
    histories = [r.weights for r in runs if r.weights]
    if histories:
        from mixtune.report.plots import plot_weight_trajectories

        plot_weight_trajectories([(f"{name}: the mixture held (mean over {len(histories)} "
                                   "seed(s))", _mean_history(histories))],
                                 report_dir / figure(name))
        lines += [f"![{title}'s mixture during training]({figure(name)})", ""]
    else:
        remove(report_dir / figure(name))
    return lines


def _mean(mixtures: list[dict[str, float]], d: str) -> float | None:
    return float(np.mean([m.get(d, 0.0) for m in mixtures])) if mixtures else None


def _mean_history(histories: list[dict[int, dict[str, float]]]) -> dict[int, dict[str, float]]:
    """Per step that every seed logged, the seed-mean weights."""
    steps = sorted(set.intersection(*(set(h) for h in histories)))
    domains = list(histories[0][steps[0]]) if steps else []
    return {s: {d: _mean([h[s] for h in histories], d) for d in domains} for s in steps}


def _compute(flops, runs: list[MainRun]) -> list[str]:
    """The held-out forward passes as FLOPs and as a share of one main run's training."""
    main = finite((flops if isinstance(flops, dict) else {}).get("main_run"))
    tokens, cost = heldout_flops(flops, runs) or (0.0, 0.0)
    if not (main and tokens):
        return []
    return [f"Compute: its held-out measurements scored {tokens:,.0f} tokens per main run "
            f"(forward passes, 2·N per token plus attention): {cost:.3g} FLOPs, {cost / main:.2%} "
            f"of one main run's {main:.3g} training FLOPs. Its sweeps are training steps within "
            f"the run's budget, not extra ones. Per-step figures: {md_code('metrics.jsonl')} "
            "(`domain_heldout_tokens`, `domain_gain`).", ""]
