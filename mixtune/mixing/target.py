"""What a mixture is chosen for, and judged on: the run's target.

    average                  the mean per-domain validation log-ppl (DoReMi's headline number)
    <domain>                 one domain's validation log-ppl
    {domain: weight, ...}    a weighted mean of domains' log-ppl
    downstream               the mean gold bits per byte of the downstream tasks scored
    downstream:<suite>       that suite's (e.g. downstream:core); the run's eval: must score tasks

Lower is better for every target. RegMix fits its regression to it; the report's verdict
compares every mixture with the reference on it, seed by seed. A run's measures are read from a
run folder's final evaluation (eval.json): one number per domain, and per downstream aggregate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from mixtune.errors import UserError
from mixtune.records import AVERAGE_TARGET, DownstreamResult, EvalFile, EvalResult, finite

DOWNSTREAM = "downstream"
AVERAGE = AVERAGE_TARGET


def target_problem(target) -> str | None:
    """What is wrong with a target before the dataset's domains are known."""
    if isinstance(target, str):
        return None if target.strip() else "name average, a domain, {domain: weight} or downstream"
    if not target:
        return "an empty mapping; give {domain: weight, ...}"
    for name, w in target.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not (math.isfinite(w) and w >= 0):
            return f"weight of {name!r} is {w!r}; use numbers >= 0"
    return None if sum(target.values()) > 0 else "the weights sum to 0"


def is_downstream(target) -> bool:
    return isinstance(target, str) and (target == DOWNSTREAM or target.startswith(DOWNSTREAM + ":"))


def check_target(target, domains: list[str], label: str = "target"):
    """The target, checked against the dataset's domains before anything trains."""
    names = [target] if isinstance(target, str) else list(target)
    for name in names:
        if name != AVERAGE and not is_downstream(name) and name not in domains:
            raise UserError(f"{label}: no domain {name!r}; the dataset has "
                            f"{', '.join(domains)} (or average, downstream[:suite]).")
    return target


def measure_weights(target, domains: list[str]) -> str | dict[str, float]:
    """The target as measures and weights: `average` is the mean per-domain validation loss (not a
    mean that would take the downstream measures in)."""
    return dict.fromkeys(domains, 1.0) if target == AVERAGE else target


def target_value(measures: dict[str, float], target, domains: list[str]) -> float | None:
    """The target of one run's measures (None when one it needs is missing)."""
    mix = measure_weights(target, domains)
    mix = {mix: 1.0} if isinstance(mix, str) else mix
    if any(finite(measures.get(m)) is None for m, w in mix.items() if w > 0):
        return None
    total = sum(mix.values())
    return sum(w / total * measures[m] for m, w in mix.items() if w > 0)


def run_measures(folder: Path) -> dict[str, float]:
    """A run folder's final measures (`measures`), {} without a final evaluation (eval.json)."""
    path = Path(folder) / "eval.json"
    if not path.is_file():
        return {}
    final = EvalFile.from_json(json.loads(path.read_text()))
    downstream = DownstreamResult.from_json(final.downstream) if final.downstream else None
    return measures(final.result, downstream)


def measures(result: EvalResult, downstream: DownstreamResult | None) -> dict[str, float]:
    """A run's measures: log-ppl per domain, `downstream` and `downstream:<suite>` gold bits per
    byte where it scored tasks."""
    out = {d: v for d, v in result.log_ppl.items() if v is not None}
    if downstream is not None:
        if downstream.mean_bpb is not None:
            out[DOWNSTREAM] = downstream.mean_bpb
        for suite, agg in downstream.aggregates.items():
            if finite(agg.get("bpb")) is not None:
                out[f"{DOWNSTREAM}:{suite}"] = finite(agg["bpb"])
    return out


def target_text(target) -> str:
    """The target as the report names it."""
    if isinstance(target, dict):
        return " + ".join(f"{w:g}·{d}" for d, w in target.items()) + " validation log-ppl"
    if target == AVERAGE:
        return "average validation log-ppl"
    if is_downstream(target):
        suite = target.partition(":")[2]
        return f"gold bits per byte of {suite + ' ' if suite else ''}downstream tasks"
    return f"{target} validation log-ppl"
