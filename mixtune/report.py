"""The report of a `mixtune run`: which mixture won, by how much, and the plots behind it.

Reads the output folder (`summary.json` and the run folders it names) and writes
`OUTPUT/report/report.md` with PNG plots beside it:

    headline       mixtures ranked by mean uniform-average validation log-ppl over seeds
    weights        every mixture's domain weights                       weights.png
    trajectory     the DoReMi proxy's α_t per round                      trajectory.png
    training loss  seed-mean training loss per mixture                   train_loss.png
    validation     per-domain log-ppl, average over eval steps            eval_avg.png, per_domain.png

A main run counts once it has `eval.json` (its final evaluation); a run without one is listed as
missing, never guessed at, so a report written mid-pipeline is honest about what it lacks.
Figures are drawn on `matplotlib.figure.Figure` with the Agg canvas, never through pyplot: no
display is needed and no global backend state is changed for whoever imported this module.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mixtune.errors import UserError

REPORT_DIR = "report"
NONE = "—"  # shown wherever a number does not exist (run missing, target never reached)
TOL = 1e-9  # the reference's own curve must reach its own target despite float rounding


# -- reading ---------------------------------------------------------------------------------------


def _nan(value: float | None) -> float:
    """None as NaN: matplotlib draws nothing for it (no zero-height error bar for one seed)."""
    return math.nan if value is None else value


def _finite(value) -> float | None:
    """A finite float, or None (JSON null, NaN from an empty domain, garbage)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(row, dict):
            rows.append(row)
    return rows


def load_summary(output_dir: str | os.PathLike) -> dict:
    path = Path(output_dir) / "summary.json"
    if not path.is_file():
        raise UserError(
            f"{path} not found: it is written by `mixtune run` once the DoReMi rounds are done; "
            "point the report at the output folder of a run."
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path} is not valid JSON ({e}); rerun `mixtune run` to rewrite it."
        ) from e


def load_run(output_dir: Path, seed: str, rel: str) -> dict:
    """One main run: its final eval, training and eval curves, or the reason it is missing."""
    run = {"seed": seed, "path": rel, "final": None, "train": {}, "eval": {}, "problem": None}
    folder = output_dir / rel
    if not folder.is_dir():
        run["problem"] = "run folder not found"
        return run
    rows = _read_jsonl(folder / "metrics.jsonl")
    eval_file = folder / "eval.json"
    if not eval_file.is_file():
        last = max((int(r["step"]) for r in rows if "step" in r), default=0)
        run["problem"] = f"not finished (no eval.json; metrics.jsonl reaches step {last})"
        return run
    try:
        final = json.loads(eval_file.read_text())
    except json.JSONDecodeError as e:
        run["problem"] = f"eval.json unreadable ({e})"
        return run
    for row in rows:
        if row.get("kind") == "train":
            loss = _finite(row.get("mean_loss", row.get("loss")))
            if loss is not None:
                run["train"][int(row["step"])] = loss
        elif row.get("kind") == "eval":
            avg = _finite(row.get("average"))
            if avg is not None:
                run["eval"][int(row["step"])] = avg
    # `mixtune eval` rewrites eval.json without a step and with its own token budget; the training
    # run's final evaluation is then still the last eval row of metrics.jsonl: compare on that.
    evals = [r for r in rows if r.get("kind") == "eval" and isinstance(r.get("log_ppl"), dict)]
    if "step" not in final and evals:
        final = max(evals, key=lambda r: int(r["step"]))
    # The pipeline's eval.json has a step, equal to the last eval row. Merging it keeps the final
    # point even when metrics.jsonl lost its tail.
    if "step" in final and _finite(final.get("average")) is not None:
        run["eval"][int(final["step"])] = float(final["average"])
    run["final"] = final
    return run


def collect_runs(summary: dict, output_dir: Path) -> dict[str, list[dict]]:
    """{mixture: [run, ...]} for every mixture of the summary, in its order."""
    main_runs = summary.get("main_runs") or {}
    names = list(summary.get("mixtures") or {})
    names += [n for n in main_runs if n not in names]
    return {
        name: [load_run(output_dir, seed, rel) for seed, rel in (main_runs.get(name) or {}).items()]
        for name in names
    }


# -- numbers ---------------------------------------------------------------------------------------


def mean_std(values) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) of the numbers present; std None for one."""
    xs = [v for v in values if v is not None]
    if not xs:
        return None, None
    return float(np.mean(xs)), (float(np.std(xs, ddof=1)) if len(xs) > 1 else None)


def mean_curve(curves: list[dict[int, float]]) -> tuple[list[int], list[float]]:
    """Seed-mean of {step: value} curves over the steps every seed has (no partial means)."""
    if not curves:
        return [], []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    return steps, [float(np.mean([c[s] for c in curves])) for s in steps]


def _finished(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r["final"] is not None]


def _mixture_row(name: str, runs: list[dict], domains: list[str], weights) -> dict:
    finals = [r["final"] for r in _finished(runs)]
    average, average_std = mean_std(_finite(f.get("average")) for f in finals)
    worst, worst_std = mean_std(_finite(f.get("worst")) for f in finals)
    named = Counter(f["worst_domain"] for f in finals if f.get("worst_domain"))
    worst_domain, worst_votes = named.most_common(1)[0] if named else (None, 0)
    per_domain = {
        d: mean_std(_finite((f.get("log_ppl") or {}).get(d)) for f in finals) for d in domains
    }
    return {
        "mixture": name,
        "weights": weights,
        "seeds": len(finals),
        "seeds_expected": len(runs),
        "missing": [{k: r[k] for k in ("seed", "path", "problem")} for r in runs if r["problem"]],
        "average": average,
        "average_std": average_std,
        "worst": worst,
        "worst_std": worst_std,
        "worst_domain": worst_domain,
        "worst_domain_seeds": worst_votes,  # seeds that name it: they can disagree
        "log_ppl": {d: m for d, (m, _) in per_domain.items()},
        "log_ppl_std": {d: s for d, (_, s) in per_domain.items()},
    }


def _speedup_target(summary: dict, runs: dict[str, list[dict]], rows: dict[str, dict]):
    """(S_ref, target): the reference mixture's last eval step and its final mean average."""
    ref = summary.get("reference_mixture")
    if ref not in rows or rows[ref]["average"] is None:
        return None, None
    steps, _ = mean_curve([r["eval"] for r in _finished(runs[ref])])
    return (steps[-1], rows[ref]["average"]) if steps else (None, None)


def main_table(summary: dict, output_dir: str | os.PathLike) -> list[dict]:
    """One row per mixture, best first (mixtures without results last).

    Keys: mixture, is_reference, rank (None without results), weights, seeds (finished),
    seeds_expected, missing [{seed, path, problem}], average, average_std, worst, worst_std,
    worst_domain, worst_domain_seeds, log_ppl {d: mean}, log_ppl_std {d: std}, domains_improved,
    domains_compared, speedup, speedup_step, reference_step, target. Std is None for one seed;
    any number is None where it does not exist.
    """
    return _table(summary, collect_runs(summary, Path(output_dir)))


def _table(summary: dict, runs: dict[str, list[dict]]) -> list[dict]:
    domains = list(summary["domains"])
    ref = summary.get("reference_mixture")
    mixtures = summary.get("mixtures") or {}
    rows = {n: _mixture_row(n, rs, domains, mixtures.get(n)) for n, rs in runs.items()}
    s_ref, target = _speedup_target(summary, runs, rows)
    ref_row = rows.get(ref)
    for name, row in rows.items():
        row["is_reference"] = name == ref
        row["reference_step"], row["target"] = s_ref, target
        # Domains improved: only where both this mixture and the reference have a number.
        pairs = []
        if ref_row is not None and name != ref:
            pairs = [
                (row["log_ppl"][d], ref_row["log_ppl"][d])
                for d in domains
                if row["log_ppl"][d] is not None and ref_row["log_ppl"][d] is not None
            ]
        row["domains_compared"] = len(pairs)
        row["domains_improved"] = sum(a < b for a, b in pairs) if pairs else None
        row["speedup"], row["speedup_step"] = None, None
        if target is None or row["seeds"] == 0:
            continue
        if name == ref:  # 1.0× by definition
            row["speedup"], row["speedup_step"] = 1.0, s_ref
            continue
        steps, values = mean_curve([r["eval"] for r in _finished(runs[name])])
        reached = next((s for s, v in zip(steps, values, strict=True) if v <= target + TOL), None)
        if reached is not None:
            row["speedup"], row["speedup_step"] = s_ref / reached, reached
    ranked = sorted(rows.values(), key=lambda r: (r["average"] is None, r["average"] or 0.0))
    for i, row in enumerate(ranked):
        row["rank"] = i + 1 if row["average"] is not None else None
    return ranked


# -- formatting ------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 4) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def fmt_ms(mean: float | None, std: float | None, digits: int = 4) -> str:
    """'1.2345 ± 0.0123', just the mean for one seed, '—' for none."""
    if mean is None:
        return NONE
    return fmt(mean, digits) + ("" if std is None else f" ± {std:.{digits}f}")


def fmt_speedup(row: dict) -> str:
    if row["speedup"] is None:
        return NONE
    return f"{row['speedup']:.1f}× (step {row['speedup_step']})"


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; `align` has one letter per column: l(eft) or r(ight)."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]


def _label(row: dict) -> str:
    return row["mixture"] + (" (reference)" if row["is_reference"] else "")


# -- figures ---------------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file beside `path`, then rename: a reader never sees half a report or image."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it owner-only; a report is meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save(fig: Figure, path: Path) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    _write_atomic(path, buf.getvalue())


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


def plot_weights(summary: dict, names: list[str], colors, path: Path) -> None:
    domains = summary["domains"]
    fig = Figure(figsize=(max(6, 1.2 * len(domains) + 2), 4), layout="constrained")
    ax = fig.subplots()
    series = {n: [_weights(summary, n).get(d, 0.0) for d in domains] for n in names}
    _grouped_bars(ax, domains, series, colors)
    ax.set_ylabel("domain weight")
    ax.set_title("Domain weights per mixture")
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_trajectory(rounds: list[dict], histories: list[list[dict]], domains, path: Path) -> None:
    n = len(rounds)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(5 * ncols, 3.6 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax, rnd, rows in zip(axes, rounds, histories, strict=False):
        ax.set_title(f"round {rnd.get('round', '?')}")
        ax.set_xlabel("proxy step")
        if not rows:
            ax.text(
                0.5,
                0.5,
                "no weights_history.jsonl",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            continue
        steps = [r["step"] for r in rows]
        for j, d in enumerate(domains):
            color = f"C{j % 10}"
            ax.plot(steps, [_finite(r["weights"].get(d)) for r in rows], color=color, label=d)
            final = _finite((rnd.get("doremi_weights") or {}).get(d))
            if final is not None:  # ᾱ, the round's result: what the next stage trains on
                ax.axhline(final, color=color, linestyle="--", linewidth=0.8)
    axes[0].set_ylabel("α_t (dashed: ᾱ)")
    drawn = [ax for ax in axes if ax.lines]
    if drawn:
        drawn[0].legend(fontsize="small")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle("DoReMi domain weights during proxy training")
    _save(fig, path)


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
    _save(fig, path)


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
    ax.set_xlabel("step")
    ax.set_ylabel("average validation log-ppl (nats/token)")
    ax.set_title("Uniform-average validation log-ppl, seed mean")
    ax.legend(fontsize="small")
    _save(fig, path)


def plot_per_domain(rows: list[dict], domains, floors, colors, path: Path) -> None:
    fig = Figure(figsize=(max(6, 1.4 * len(domains) + 2), 4.2), layout="constrained")
    ax = fig.subplots()
    series = {r["mixture"]: [r["log_ppl"][d] or 0.0 for d in domains] for r in rows}
    errors = {r["mixture"]: [_nan(r["log_ppl_std"][d]) for d in domains] for r in rows}
    _grouped_bars(ax, domains, series, colors, errors)
    shown = [v for r in rows for v in r["log_ppl"].values() if v is not None]
    labelled = False
    for i, d in enumerate(domains):
        floor = _finite((floors or {}).get(d))
        if floor is not None:
            ax.hlines(
                floor,
                i - 0.45,
                i + 0.45,
                color="black",
                linewidth=2,
                label=None if labelled else "loss floor",
            )
            labelled = True
            shown.append(floor)
    # Differences between mixtures are a few % of the loss: zoom in instead of starting at 0.
    lo, hi = min(shown), max(shown)
    pad = 0.15 * (hi - lo) or 0.05 * abs(hi) or 0.1
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_ylabel("validation log-ppl (nats/token)")
    ax.set_title("Per-domain validation log-ppl (error bars: std over seeds)")
    ax.legend(fontsize="small")
    _save(fig, path)


# -- the report ------------------------------------------------------------------------------------


def _weights(summary: dict, name: str) -> dict[str, float]:
    """A mixture's weights normalised to sum to 1 (files need not be), {} when unknown."""
    raw = {
        d: _finite(w) or 0.0 for d, w in ((summary.get("mixtures") or {}).get(name) or {}).items()
    }
    total = sum(raw.values())
    return {d: w / total for d, w in raw.items()} if total > 0 else {}


def _intro(summary: dict, output_dir: Path, table: list[dict]) -> list[str]:
    domains = summary["domains"]
    seeds = max((r["seeds_expected"] for r in table), default=0)
    return [
        "# mixtune report",
        "",
        f"Output folder `{output_dir}`; dataset `{summary.get('dataset', '?')}`; "
        f"{len(domains)} domains ({', '.join(domains)}); {len(table)} mixtures; "
        f"{len(summary.get('rounds') or [])} DoReMi round(s); up to {seeds} seed(s) per mixture. "
        f"Every mixture is compared with the reference mixture **{summary.get('reference_mixture')}**.",
        "",
    ]


def _headline(summary: dict, table: list[dict]) -> list[str]:
    ref = summary.get("reference_mixture")
    k = len(summary["domains"])
    lines = [
        "## Headline: which mixture is best",
        "",
        f"Mixtures ranked by their validation log-perplexity averaged uniformly over the {k} "
        "domains (DoReMi's headline number); lower is better. Numbers are the mean ± sample "
        "standard deviation over seeds (just the mean when one seed finished). *Worst-case* is "
        "the highest per-domain log-ppl, named with the domain most seeds agree on. *Improved* "
        f"counts the domains where the mixture beats {ref}. *Speed-up* is how many times fewer "
        f"steps the mixture needed to reach {ref}'s final average.",
        "",
    ]
    header = [
        "rank",
        "mixture",
        "seeds",
        "average log-ppl",
        "worst-case log-ppl",
        "worst domain",
        f"domains improved vs {ref}",
        f"speed-up to {ref}'s final average",
    ]
    cells = []
    for r in table:
        domain = r["worst_domain"] or NONE
        if r["worst_domain"] and r["worst_domain_seeds"] < r["seeds"]:
            domain += f" ({r['worst_domain_seeds']}/{r['seeds']} seeds)"
        if r["is_reference"]:
            improved = "(reference)"
        elif r["domains_improved"] is None:
            improved = NONE
        else:
            improved = f"{r['domains_improved']}/{r['domains_compared']}"
        seeds = str(r["seeds"]) + (
            "" if r["seeds"] == r["seeds_expected"] else f"/{r['seeds_expected']}"
        )
        cells.append(
            [
                str(r["rank"] or NONE),
                _label(r),
                seeds,
                fmt_ms(r["average"], r["average_std"]),
                fmt_ms(r["worst"], r["worst_std"]),
                domain,
                improved,
                fmt_speedup(r),
            ]
        )
    lines += md_table(header, cells, "rlrrrlrr")
    if table and table[0]["reference_step"] is not None:
        lines += [
            "",
            f"Target for the speed-up: {ref}'s final average {fmt(table[0]['target'])} "
            f"at step {table[0]['reference_step']}; {NONE} means never reached within the run.",
        ]
    else:
        lines += [
            "",
            f"No speed-up: the reference mixture {ref} has no finished main run with "
            "evaluation steps.",
        ]
    missing = [(r["mixture"], m) for r in table for m in r["missing"]]
    missing += [(r["mixture"], None) for r in table if not r["seeds_expected"]]
    if missing:
        lines += ["", "Not available (left out of every number above and below):", ""]
        for name, m in missing:
            if m is None:
                lines.append(f"- {name}: no main runs listed in summary.json")
            else:
                lines.append(f"- {name} {m['seed']} (`{m['path']}`): {m['problem']}")
    return lines + [""]


def _weights_section(summary: dict, names: list[str], have_plot: bool) -> list[str]:
    lines = [
        "## Domain weights",
        "",
        "The share of training data each mixture draws from each domain (normalised to sum to 1; "
        "columns in ranking order). DoReMi mixtures come from the proxy runs below.",
        "",
    ]
    weights = {n: _weights(summary, n) for n in names}
    rows = [
        [d] + [fmt(weights[n].get(d), 3) if weights[n] else NONE for n in names]
        for d in summary["domains"]
    ]
    lines += md_table(["domain", *names], rows, "l" + "r" * len(names))
    if have_plot:
        lines += ["", "![Domain weights per mixture](weights.png)"]
    return lines + [""]


def _trajectory_section(summary: dict, histories: list[list[dict]], have_plot: bool) -> list[str]:
    rounds = summary.get("rounds") or []
    lines = ["## DoReMi weight trajectory", ""]
    if not rounds:
        return lines + ["No DoReMi rounds in this output: every mixture was fixed in advance.", ""]
    lines += [
        "How the proxy's domain weights α_t moved during its training, one panel per round. "
        "Dashed lines are the round's result ᾱ (the mean of α_t over all steps), the weights "
        "the next stage trains on. A domain whose weight rises is one where the proxy lags the "
        "reference most.",
        "",
    ]
    if have_plot:
        lines += ["![DoReMi weights during proxy training](trajectory.png)", ""]
    dists = ", ".join(
        f"round {r.get('round', i + 1)}: {fmt(_finite(r.get('linf')))}"
        for i, r in enumerate(rounds)
    )
    lines.append(
        "‖ᾱ − α_ref‖∞, the largest change of any domain's weight between a round's reference "
        f"weights and its DoReMi result (iterated DoReMi stops once this is small): {dists}."
    )
    for i, (rnd, rows) in enumerate(zip(rounds, histories, strict=True)):
        if not rows:
            lines += [
                "",
                f"Round {rnd.get('round', i + 1)}: no weight history at "
                f"`{rnd.get('proxy_run')}/weights_history.jsonl` (proxy not run yet?).",
            ]
    return lines + [""]


def _train_section(window: int | None) -> list[str]:
    lines = ["## Training loss", ""]
    if window is None:
        return lines + ["No finished main run has training metrics yet.", ""]
    return lines + [
        f"Training loss of each mixture's main model against step (mean over seeds, moving "
        f"average over {window} step(s)). Each mixture's loss is measured on its own mix of "
        "domains, so these curves show that training went well, not which mixture is better: "
        "compare mixtures on the validation numbers below.",
        "",
        "![Training loss](train_loss.png)",
        "",
    ]


def _validation_section(summary: dict, table: list[dict], plots: bool) -> list[str]:
    domains = summary["domains"]
    floors = summary.get("loss_floor") or None
    rows = [r for r in table if r["seeds"]]
    lines = ["## Validation log-perplexity", ""]
    if not rows:
        return lines + ["No finished main run yet.", ""]
    lines += [
        "Per-domain validation log-ppl of every mixture's main model, mean ± std over seeds; "
        "the best mixture per domain is in bold."
        + (
            " *floor* is the exact irreducible loss of the generated data: no model can go below it."
            if floors
            else ""
        ),
        "",
    ]
    header = ["domain"] + (["floor"] if floors else []) + [_label(r) for r in rows]
    body = []

    def cells(values: list[tuple[float | None, float | None]]) -> list[str]:
        present = [m for m, _ in values if m is not None]
        best = min(present) if present else None
        return [
            f"**{fmt_ms(m, s)}**" if m is not None and m == best else fmt_ms(m, s)
            for m, s in values
        ]

    floor_values = [_finite((floors or {}).get(d)) for d in domains]
    for d, floor in zip(domains, floor_values, strict=True):
        values = [(r["log_ppl"][d], r["log_ppl_std"][d]) for r in rows]
        body.append([d] + ([fmt(floor)] if floors else []) + cells(values))
    known = [f for f in floor_values if f is not None]
    full = floors and len(known) == len(domains)
    # Floors of the summary rows: the uniform average of floors, and the largest floor.
    body.append(
        ["*average*"]
        + ([fmt(float(np.mean(known)) if full else None)] if floors else [])
        + cells([(r["average"], r["average_std"]) for r in rows])
    )
    body.append(
        ["*worst-case*"]
        + ([fmt(max(known) if full else None)] if floors else [])
        + cells([(r["worst"], r["worst_std"]) for r in rows])
    )
    lines += md_table(header, body, "l" + "r" * (len(header) - 1))
    if plots:
        lines += [
            "",
            "Average log-ppl at every evaluation during training (seed mean); the dashed line is "
            f"{summary.get('reference_mixture')}'s final average, the target of the speed-up: "
            "the earlier a curve crosses it, the larger the speed-up.",
            "",
            "![Average validation log-ppl during training](eval_avg.png)",
            "",
            "Per-domain log-ppl at the end of training"
            + (", black bars are the loss floors" if floors else "")
            + ". The y axis is zoomed in (it does not start at 0) so the differences show.",
            "",
            "![Per-domain validation log-ppl](per_domain.png)",
        ]
    return lines + [""]


HOW_TO_READ = """## How to read this

- **log-ppl** is the mean negative log-likelihood per token on held-out validation text, in
  nats/token (perplexity = e^log-ppl). Lower is better. Each domain is scored on its own
  validation tokens; the *average* weighs every domain equally, whatever its size.
- **± std** is the sample standard deviation over seeds: differences between mixtures smaller
  than it are within seed-to-seed noise.
- **floor** (generated data only) is the entropy of the process that generated the domain: the
  best log-ppl any model could reach. The gap to the floor is what is left to learn.
- **speed-up** = S_ref / s*, where S_ref is the reference mixture's last evaluation step and s*
  the first evaluation step at which the mixture's seed-mean average log-ppl is at or below the
  reference's final average. 2.0× means the same quality in half the steps. It is measured at
  evaluation steps only, so its resolution is the evaluation interval; — means never reached.
"""


def write_report(output_dir: str | os.PathLike) -> Path:
    """Write OUTPUT/report/report.md and its PNGs from a `mixtune run` output folder."""
    output_dir = Path(output_dir)
    summary = load_summary(output_dir)
    domains = list(summary["domains"])
    runs = collect_runs(summary, output_dir)
    table = _table(summary, runs)
    out = output_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    colors = _colors(list(runs))
    names = [r["mixture"] for r in table]
    done = {r["mixture"]: _finished(runs[r["mixture"]]) for r in table if r["seeds"]}
    made: set[str] = set()

    def save(name: str, draw) -> None:
        draw(out / name)
        made.add(name)

    if any(_weights(summary, n) for n in names):
        save("weights.png", lambda p: plot_weights(summary, names, colors, p))
    rounds = summary.get("rounds") or []
    histories = [_history(output_dir, r) for r in rounds]
    if any(histories):
        save("trajectory.png", lambda p: plot_trajectory(rounds, histories, domains, p))
    train = {n: mean_curve([r["train"] for r in rs]) for n, rs in done.items()}
    train = {n: c for n, c in train.items() if c[0]}
    window = smoothing_window(max(len(s) for s, _ in train.values())) if train else None
    if train:
        save("train_loss.png", lambda p: plot_train_loss(train, window, colors, p))
    if done:
        evals = {n: mean_curve([r["eval"] for r in rs]) for n, rs in done.items()}
        ref = summary.get("reference_mixture")
        save("eval_avg.png", lambda p: plot_eval_avg(evals, table[0]["target"], ref, colors, p))
        floors = summary.get("loss_floor") or None
        rows = [r for r in table if r["seeds"]]
        save("per_domain.png", lambda p: plot_per_domain(rows, domains, floors, colors, p))
    # A plot not drawn this time must not survive from an earlier report and show stale data.
    for stale in {
        "weights.png",
        "trajectory.png",
        "train_loss.png",
        "eval_avg.png",
        "per_domain.png",
    } - made:
        (out / stale).unlink(missing_ok=True)

    lines = _intro(summary, output_dir, table)
    lines += _headline(summary, table)
    lines += _weights_section(summary, names, "weights.png" in made)
    lines += _trajectory_section(summary, histories, "trajectory.png" in made)
    lines += _train_section(window)
    lines += _validation_section(summary, table, "per_domain.png" in made)
    lines.append(HOW_TO_READ)
    path = out / "report.md"
    _write_atomic(path, "\n".join(lines).encode())
    return path


def _history(output_dir: Path, rnd: dict) -> list[dict]:
    """A round's weights_history.jsonl rows by step (the last row wins for a repeated step)."""
    if not rnd.get("proxy_run"):
        return []
    rows = _read_jsonl(output_dir / rnd["proxy_run"] / "weights_history.jsonl")
    by_step = {
        int(r["step"]): r for r in rows if "step" in r and isinstance(r.get("weights"), dict)
    }
    return [by_step[s] for s in sorted(by_step)]
