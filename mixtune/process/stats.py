"""What each step of a processing run kept and dropped, per domain, merged across tasks.

Every task of every stage leaves datatrove's `stats/<rank>.json` (counts per block); the blocks
mixtune wraps count `docs_in/<domain>`, `chars_out/<domain>`, `dropped/<domain>/<reason>`, ....
They are summed here into one JSON (`process_stats.json` in the output), shown as a table and
drawn as a bar chart.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from mixtune.process.blocks import CHARS_IN, CHARS_OUT, DOCS_IN, DOCS_OUT, DROPPED, SKIPPED

STATS_FILE = "process_stats.json"
READ, WRITE = "read", "write"  # the names of the first and the last block


def _total(value) -> float:
    return value.get("total", 0) if isinstance(value, dict) else value


def merge(stage_logs: list[Path], step_names: list[str]) -> dict:
    """{"steps": [{"step", "domains": {d: {docs_in, chars_in, docs_out, chars_out, dropped}}}],
    "domains": {d: {docs_in, chars_in, docs_out, chars_out}}} from the stages' per-task files.

    `step_names` orders the steps ("read" first); a step's counts may come from several stages.
    The totals per domain are what was read and what was written (a step limited to some
    domains does not count the others that pass it)."""
    steps: dict[str, dict] = {name: defaultdict(_domain_counts) for name in [*step_names, WRITE]}
    for logs in stage_logs:
        for path in sorted((logs / "stats").glob("*.json")):
            for block in json.loads(path.read_text()):
                name = block["name"].split(": ", 1)[-1]
                if name not in steps:
                    continue
                for label, value in block["stats"].items():
                    _add(steps[name], label, _total(value))
    out_steps = [{"step": name, "domains": {d: dict(c) for d, c in sorted(steps[name].items())}}
                 for name in step_names]
    first, last = out_steps[0]["domains"], steps[WRITE]
    domains = {}
    for d in sorted(first):
        domains[d] = {DOCS_IN: first[d][DOCS_OUT], CHARS_IN: first[d][CHARS_OUT],
                      DOCS_OUT: last.get(d, {}).get(DOCS_OUT, 0),
                      CHARS_OUT: last.get(d, {}).get(CHARS_OUT, 0),
                      SKIPPED: first[d][SKIPPED]}
    return {"steps": out_steps, "domains": domains}


def _domain_counts() -> dict:
    return {DOCS_IN: 0, CHARS_IN: 0, DOCS_OUT: 0, CHARS_OUT: 0, DROPPED: {}, SKIPPED: {}}


def _add(counts: dict, label: str, value: float) -> None:
    parts = label.split("/", 2)
    if parts[0] in (DOCS_IN, CHARS_IN, DOCS_OUT, CHARS_OUT) and len(parts) == 2:
        counts[parts[1]][parts[0]] += int(value)
    elif parts[0] in (DROPPED, SKIPPED) and len(parts) == 3:
        reasons = counts[parts[1]][parts[0]]
        reasons[parts[2]] = reasons.get(parts[2], 0) + int(value)


def read(folder: Path) -> dict:
    return json.loads((Path(folder) / STATS_FILE).read_text())


def rows(stats: dict) -> list[dict]:
    """One row per step (all domains): documents and characters in and out, top drop reasons."""
    out = []
    for step in stats["steps"]:
        counts = step["domains"].values()
        docs_in = sum(c[DOCS_IN] for c in counts)
        docs_out = sum(c[DOCS_OUT] for c in counts)
        reasons: dict[str, int] = defaultdict(int)
        for c in counts:
            for r, n in c[DROPPED].items():
                reasons[r] += n
        top = sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        out.append({
            "step": step["step"],
            "docs in": docs_in if step["step"] != READ else "",
            "docs out": docs_out,
            "kept %": f"{100 * docs_out / docs_in:.1f}" if docs_in else "",
            "chars out": sum(c[CHARS_OUT] for c in counts),
            "dropped (top reasons)": ", ".join(f"{r} {n}" for r, n in top),
        })
    return out


def domain_rows(stats: dict) -> list[dict]:
    return [{"domain": d, "docs in": c[DOCS_IN], "docs out": c[DOCS_OUT],
             "kept %": f"{100 * c[DOCS_OUT] / c[DOCS_IN]:.1f}" if c[DOCS_IN] else "",
             "chars in": c[CHARS_IN], "chars out": c[CHARS_OUT],
             "chars kept %": f"{100 * c[CHARS_OUT] / c[CHARS_IN]:.1f}" if c[CHARS_IN] else ""}
            for d, c in stats["domains"].items()]


def plot(stats: dict, path: Path) -> None:
    """Documents each step dropped, stacked by domain (one bar per step), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [s for s in stats["steps"] if s["step"] != READ]
    domains = sorted(stats["domains"])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(steps) + 2), 3.6))
    bottom = [0] * len(steps)
    for d in domains:
        dropped = [s["domains"].get(d, {}).get(DOCS_IN, 0) - s["domains"].get(d, {}).get(
            DOCS_OUT, 0) for s in steps]
        ax.bar(range(len(steps)), dropped, bottom=bottom, label=d)
        bottom = [b + x for b, x in zip(bottom, dropped, strict=True)]
    ax.set_xticks(range(len(steps)), [s["step"] for s in steps], rotation=30, ha="right")
    ax.set_ylabel("documents dropped")
    ax.set_title("What each step dropped, by domain")
    ax.legend(fontsize=7, frameon=False, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
