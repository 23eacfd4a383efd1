"""Weights: specs (`natural`, `uniform`, `temperature:T`, a JSON file) and weights files.

A weights vector is always a float64 numpy array over the dataset's domains in sorted-name order,
summing to 1. A domain with weight 0 is never sampled. Weights files come in two layouts, both
read everywhere a weights file is taken (any order, not necessarily normalised):

- `doremi`, the reference DoReMi code's `{"train_domain_weights": {domain: weight},
  "eval_domain_weights": {...}}`: what `write_weights` writes unless told otherwise, and so every
  `domain_weights.json` (a proxy run, `DoReMiTrainer`, your own loop), which that code's tools read;
- `flat`, `{domain: weight}`: the layout to write by hand, and a pipeline's `mixtures/<name>.json`.
"""

from __future__ import annotations

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

SPEC_HELP = "natural, uniform, temperature:T (T > 0) or a JSON file {domain: weight}"

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
    spec: str, domains: Sequence[str], train_tokens: Mapping[str, int]
) -> np.ndarray:
    """Turn a weights spec into normalised weights over `domains`.

    `natural` is each domain's share of training tokens (the reference DoReMi code's baseline);
    `temperature:T` is p_i ∝ n_i^(1/T): T=1 is natural, T→∞ approaches uniform.
    """
    spec = str(spec).strip()
    counts = np.array([float(train_tokens[d]) for d in domains])
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
    if isinstance(obj, dict) and isinstance(obj.get("train_domain_weights"), dict):
        obj = obj["train_domain_weights"]
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
    omitted = [d for d in domains if d not in obj]
    if omitted:
        log.warning("%s leaves out domain(s) %s: they get weight 0 and are never sampled.",
                    where, ", ".join(omitted))
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
    total = w.sum()
    if not (total > 0 and math.isfinite(total)):
        raise UserError(
            f"{where}: all weights are zero; at least one domain needs a positive weight."
        )
    return w / total


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
