"""The report's downstream section: how each mixture's models do on real (or generated) tasks.

Shown when the main runs scored downstream tasks (`eval: {tasks: ...}` in the run config):

    a summary per mixture    mean gold bits per byte over the tasks, and each suite's score
                             (CORE (k/22), ...), mean ± std over seeds
    a table per task         the task's primary accuracy and its gold bits per byte per mixture
    downstream_bpb.png       mean gold bits per byte at every evaluation (seed mean)

Accuracy of small models sits at chance on most tasks; the gold answer's bits per byte keeps
moving with the model's quality, so it is the number that compares mixtures at small scale.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from mixtune.records import DownstreamResult
from mixtune.report.collect import MainRun
from mixtune.tables import fmt_ms, md_table, mean_curve, mean_std

PLOT = "downstream_bpb.png"


def finals(runs: dict[str, list[MainRun]]) -> dict[str, list[DownstreamResult]]:
    """Per mixture, the downstream results of its finished runs (mixtures with none left out)."""
    out = {name: [r.downstream for r in rs if r.final is not None and r.downstream is not None]
           for name, rs in runs.items()}
    return {name: results for name, results in out.items() if results}


def section(runs: dict[str, list[MainRun]], order: list[str], have_plot: bool) -> list[str]:
    results = finals(runs)
    if not results:
        return []
    names = [n for n in order if n in results]
    lines = [
        "## Downstream tasks",
        "",
        "Every mixture's main models scored on downstream tasks (mean ± std over seeds). *bpb* "
        "is the gold answer's bits per byte, lower is better; the accuracy is each task's primary "
        "one (DCLM's: per-token likelihood for multiple choice, exact match otherwise). Small "
        "models sit near chance on accuracy (a centred score near 0), while bpb keeps moving with "
        "what the model learned: compare mixtures on bpb at this scale.",
        "",
    ]
    suites = _suite_names(results)
    shown = {k: v for k, v in suites.items() if above_chance(results, k)}
    header = ["mixture", "mean gold bpb", *shown.values()]
    lines += md_table(header, [_summary_row(n, results[n], list(shown)) for n in names],
                      "l" + "r" * (len(header) - 1))
    hidden = [v for k, v in suites.items() if k not in shown]
    if hidden:
        lines += ["", f"Left out: {', '.join(hidden)}, a centred accuracy (0 is chance) that no "
                  "mixture's models score above chance beyond their seed spread (mean − std > 0, "
                  "2 seeds or more): at this scale it is noise and would rank the mixtures at "
                  "random; the bits per byte compare them."]
    lines += ["", *md_table(["task", *names], _task_rows(results, names), "l" + "r" * len(names))]
    if have_plot:
        lines += ["", f"![Mean gold bits per byte during training]({PLOT})"]
    return lines + [""]


def _suite_names(results: dict[str, list[DownstreamResult]]) -> dict[str, str]:
    """{suite key: its label}, in the order first met."""
    seen: dict[str, str] = {}
    for rs in results.values():
        for r in rs:
            for key, agg in r.aggregates.items():
                seen.setdefault(key, agg["name"])
    return seen


def above_chance(results: dict[str, list[DownstreamResult]], suite: str) -> bool:
    """Whether some mixture's suite score (a centred accuracy: 0 is chance) is above chance by
    more than its seed-to-seed standard deviation."""
    for rs in results.values():
        mean, std = mean_std(r.aggregates.get(suite, {}).get("value") for r in rs)
        if mean is not None and std is not None and mean - std > 0:
            return True
    return False


def _summary_row(name: str, rs: list[DownstreamResult], suites: list[str]) -> list[str]:
    cells = [name, fmt_ms(*mean_std(r.mean_bpb for r in rs))]
    for key in suites:
        cells.append(fmt_ms(*mean_std(r.aggregates.get(key, {}).get("value") for r in rs)))
    return cells


def _task_rows(results: dict[str, list[DownstreamResult]], names: list[str]) -> list[list[str]]:
    tasks = list(dict.fromkeys(t for rs in results.values() for r in rs for t in r.tasks))
    rows = []
    for task in tasks:
        cells = [task]
        for name in names:
            entries = [r.tasks[task] for r in results[name] if task in r.tasks]
            acc = mean_std(getattr(e, e.primary) for e in entries)
            bpb = mean_std(e.bpb for e in entries)
            cells.append(f"{fmt_ms(*acc, digits=3)} / {fmt_ms(*bpb, digits=3)}")
        rows.append(cells)
    return rows


def draw(runs: dict[str, list[MainRun]], colors: dict[str, str], out: Path, save) -> bool:
    """downstream_bpb.png, when some run scored tasks at several evaluations."""
    curves = {n: mean_curve([r.downstream_bpb for r in rs if r.final is not None])
              for n, rs in runs.items()}
    curves = {n: c for n, c in curves.items() if len(c[0]) > 1}
    if not curves:
        return False
    fig = Figure(figsize=(7, 4), layout="constrained")
    ax = fig.subplots()
    for name, (steps, values) in curves.items():
        ax.plot(steps, values, marker="o", markersize=3, label=name, color=colors[name])
    ax.set_xlabel("step")
    ax.set_ylabel("mean gold bits per byte")
    ax.set_title("Downstream tasks: mean gold bits per byte, seed mean")
    ax.legend(fontsize="small")
    save(fig, out / PLOT)
    return True
