"""Weights: specs (`natural`, `uniform`, `temperature:T`, `unimax:E`, a JSON file) and weights files.

`unimax` / `unimax:E` (Chung et al. 2023, arXiv 2304.09151) is the one spec that depends on the
run as well as the data: it spreads the run's token budget (steps × batch × seq_len) as uniformly
as it can while no domain is repeated more than E epochs (default `DEFAULT_MAX_EPOCHS`), so it
resolves only where that budget is known (`resolve_weights(..., budget_tokens=...)`).

A weights vector is always a float64 numpy array over the dataset's domains in sorted-name order,
summing to 1. A domain with weight 0 is never sampled. Weights files come in two layouts, both
read everywhere a weights file is taken (any order, not necessarily normalised):

- `doremi`, the reference DoReMi code's `{"train_domain_weights": {domain: weight},
  "eval_domain_weights": {...}}`: what `write_weights` writes unless told otherwise, and so every
  `domain_weights.json` (a proxy run, `DoReMiTrainer`, your own loop), which that code's tools read;
- `flat`, `{domain: weight}`: the layout to write by hand, and a pipeline's `mixtures/<name>.json`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from mixtune.errors import UserError
from mixtune.io import write_json_atomic

log = logging.getLogger(__name__)

SPEC_HELP = ("natural, uniform, temperature:T (T > 0), unimax or unimax:E (at most E > 0 epochs "
             "per domain; default 4) or a JSON file {domain: weight}")

DEFAULT_MAX_EPOCHS = 4.0
"""Epochs a domain may be repeated by default: Muennighoff et al. (2023, arXiv 2305.16264) find
little loss up to about 4; UniMax caps repetition the same way."""

UNIMAX_E_PROBLEM = "E must be a positive number of epochs, e.g. unimax:4"

Layout = Literal["doremi", "flat"]
LAYOUTS: tuple[Layout, ...] = ("doremi", "flat")


def spec_problem(spec: str) -> str | None:
    """What is wrong with a weights spec before any dataset is known (a rule for configs)."""
    spec = str(spec).strip()
    if spec in ("natural", "uniform"):
        return None
    if spec.startswith("temperature:"):
        try:
            t = float(spec.split(":", 1)[1])
        except ValueError:
            t = math.nan
        return None if t > 0 and math.isfinite(t) else "T must be a positive number, e.g. temperature:2"
    epochs = unimax_epochs(spec)
    if epochs is not None:
        return None if epochs > 0 and math.isfinite(epochs) else UNIMAX_E_PROBLEM
    if spec.endswith(".json") or Path(spec).exists():
        return None if Path(spec).is_file() else "no such weights file"
    return f"not understood; use {SPEC_HELP}"


def mixture_name(spec: str) -> str:
    """A short name for a weights spec: the file's stem, or the spec without ':'."""
    spec = str(spec)
    if spec.endswith(".json") or Path(spec).is_file():
        return Path(spec).stem
    return spec.replace(":", "")


def resolve_weights(
    spec: str,
    domains: Sequence[str],
    train_tokens: Mapping[str, int],
    budget_tokens: float | None = None,
) -> np.ndarray:
    """Turn a weights spec into normalised weights over `domains`.

    `natural` is each domain's share of training tokens (the reference DoReMi code's baseline);
    `temperature:T` is p_i ∝ n_i^(1/T): T=1 is natural, T→∞ approaches uniform; `unimax:E` is
    `unimax_weights` for a run of `budget_tokens` tokens (steps × batch × seq_len), which only
    it needs: the same spec gives different weights for a longer run.
    """
    spec = str(spec).strip()
    counts = np.array([float(train_tokens[d]) for d in domains])
    epochs = unimax_epochs(spec)
    if epochs is not None:
        return _resolve_unimax(spec, epochs, counts, budget_tokens)
    if spec == "natural":
        return normalise(counts, spec)
    if spec == "uniform":
        return np.full(len(domains), 1.0 / len(domains))
    if spec.startswith("temperature:"):
        try:
            t = float(spec.split(":", 1)[1])
        except ValueError:
            t = float("nan")
        if not (t > 0 and math.isfinite(t)):
            raise UserError(f"weights {spec!r}: T must be a positive number, e.g. temperature:2.")
        # In log space: n^(1/T) overflows for large counts and small T.
        logp = np.log(np.maximum(counts, 1e-300)) / t
        return normalise(np.where(counts > 0, np.exp(logp - logp.max()), 0.0), spec)
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        return read_weights(path, domains)
    raise UserError(f"weights {spec!r}: not understood. Use {SPEC_HELP}.")


def unimax_epochs(spec: str) -> float | None:
    """E of a `unimax` (DEFAULT_MAX_EPOCHS) or `unimax:E` spec, NaN where E is not a number;
    None for any other spec."""
    spec = str(spec).strip()
    if spec == "unimax":
        return DEFAULT_MAX_EPOCHS
    if not spec.startswith("unimax:"):
        return None
    try:
        return float(spec.split(":", 1)[1])
    except ValueError:
        return math.nan


def _resolve_unimax(
    spec: str, epochs: float, counts: np.ndarray, budget_tokens: float | None
) -> np.ndarray:
    if not (epochs > 0 and math.isfinite(epochs)):
        raise UserError(f"weights {spec!r}: {UNIMAX_E_PROBLEM}.")
    if budget_tokens is None:
        raise UserError(
            f"weights {spec!r}: needs the run's token budget (steps × batch × seq_len); pass "
            "budget_tokens, or use it where a training run is set up (mixtune train, a run's mixtures)."
        )
    return unimax_weights(counts, budget_tokens, epochs)


def unimax_weights(
    domain_tokens: np.ndarray, budget_tokens: float, max_epochs: float = DEFAULT_MAX_EPOCHS
) -> np.ndarray:
    """UniMax (Chung et al. 2023, arXiv 2304.09151, Algorithm 1): the most uniform split of a
    run's `budget_tokens` over domains such that none is repeated more than `max_epochs` times.

    Domains are visited from fewest tokens to most (ties in domain order); each takes
    min(budget left / domains left, max_epochs·n_i) tokens, so what a small domain cannot use is
    shared by the larger ones. Weights are the allocations over the budget. When even every
    domain at `max_epochs` cannot fill the budget, the allocations (each domain at exactly
    `max_epochs`) are normalised instead: the natural mixture, every domain repeated equally and
    more than `max_epochs` times, the least repetition possible.
    """
    n = np.asarray(domain_tokens, dtype=np.float64)
    budget = float(budget_tokens)
    if not (budget > 0 and math.isfinite(budget)):
        raise UserError(f"unimax: token budget {budget_tokens!r} must be a positive number of tokens.")
    if not (max_epochs > 0 and math.isfinite(max_epochs)):
        raise UserError(f"unimax: max_epochs {max_epochs!r} must be a positive number of epochs.")
    if n.ndim != 1 or not np.all(np.isfinite(n)) or np.any(n < 0):
        raise ValueError(f"unimax: domain_tokens must be a vector of counts >= 0, got {n!r}")
    if not n.sum() > 0:
        raise UserError("unimax: every domain has 0 training tokens; there is nothing to sample.")
    alloc = np.zeros_like(n)
    left = budget
    for rank, i in enumerate(np.argsort(n, kind="stable")):
        alloc[i] = min(left / (len(n) - rank), max_epochs * n[i])
        left -= alloc[i]
    if alloc.sum() < budget * (1 - 1e-12):
        log.warning("unimax: %.4g tokens exceed %g epochs of all %.4g tokens; every domain is "
                    "repeated %.3g times (natural weights).",
                    budget, max_epochs, n.sum(), budget / max(n.sum(), 1e-300))
    return normalise(alloc, f"unimax:{max_epochs:g}")


def read_weights(path: str | Path, domains: Sequence[str]) -> np.ndarray:
    """A weights file, `{domain: weight}` or DoReMi's `{"train_domain_weights": {...}}`, as a
    normalised vector over `domains`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path}: not found. Use {SPEC_HELP}.")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"weights file {path}: not valid JSON ({e}).") from None
    if isinstance(obj, dict) and "train_domain_weights" in obj:  # the doremi layout
        obj = obj["train_domain_weights"]
        if not isinstance(obj, dict):
            raise UserError(f"weights file {path}: train_domain_weights is {obj!r}; it must be "
                            "an object {domain: weight}.")
    if not isinstance(obj, dict) or not obj:
        raise UserError(f"weights file {path}: expected a JSON object {{domain: weight}}.")
    return weights_from_mapping(obj, domains, where=f"weights file {path}")


def weights_from_mapping(
    obj: Mapping, domains: Sequence[str], where: str = "weights"
) -> np.ndarray:
    known = set(domains)
    unknown = sorted(set(obj) - known)
    if unknown:
        raise UserError(
            f"{where}: unknown domain(s) {', '.join(map(repr, unknown))}; "
            f"the dataset has {', '.join(domains)}."
        )
    omitted = tuple(d for d in domains if d not in obj)
    if omitted:
        _warn_omitted(where, omitted)
    w = np.zeros(len(domains))
    for i, d in enumerate(domains):
        if d not in obj:
            continue  # a domain left out is excluded from training
        v = obj[d]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise UserError(
                f"{where}: weight of {d!r} is {v!r}; weights must be finite numbers >= 0."
            )
        w[i] = float(v)
    return normalise(w, where)


def normalise(w: np.ndarray, where: str) -> np.ndarray:
    w = np.asarray(w, dtype=np.float64)
    top = w.max() if w.size else 0.0
    if not (top > 0 and math.isfinite(top)):
        raise UserError(
            f"{where}: all weights are zero; at least one domain needs a positive weight."
        )
    # Scaled by the largest first: the sum of weights near the float maximum (1e308 each)
    # overflows to inf.
    w = w / top
    return w / w.sum()


def as_dict(weights: np.ndarray, domains: Sequence[str]) -> dict[str, float]:
    return {d: float(w) for d, w in zip(domains, weights, strict=True)}


def write_weights(
    path: str | Path,
    weights: np.ndarray | Mapping[str, float],
    domains: Sequence[str] | None = None,
    layout: Layout = "doremi",
) -> Path:
    """Write weights atomically: the reference DoReMi code's `{"train_domain_weights": w,
    "eval_domain_weights": w}` (the default, as `mixtune doremi` writes them), or `{domain: w}`
    with `layout="flat"`. `weights` is a vector over `domains` or a mapping."""
    check_layout(layout)
    if isinstance(weights, Mapping):
        named = {str(d): float(w) for d, w in weights.items()}
    else:
        if domains is None:
            raise ValueError("write_weights: a weights vector needs its domains")
        named = as_dict(np.asarray(weights, dtype=np.float64), domains)
    # As the reference code writes a proposal: the same weights under both keys.
    obj = {"train_domain_weights": named, "eval_domain_weights": named} if layout == "doremi" \
        else named
    path = Path(path)
    write_json_atomic(path, obj)
    return path


def check_layout(layout: str) -> None:
    """Refuse an unknown weights-file layout before any work that would end in writing it."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown weights layout {layout!r}; use one of {', '.join(LAYOUTS)}")


@functools.cache
def _warn_omitted(where: str, omitted: tuple[str, ...]) -> None:
    """Once per process: a run reads its weights more than once (the loop, the model record)."""
    log.warning("%s leaves out domain(s) %s: they get weight 0 and are never sampled.",
                where, ", ".join(omitted))
