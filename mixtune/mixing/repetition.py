"""How often a main run repeats each domain, and a cap on it.

A main run of T tokens on weights w takes w_i·T tokens of domain i, which has n_i tokens: w_i·T/n_i
epochs. A mixture tuned on small proxies (DoReMi, RegMix) can favour a small domain that a long
main run would then repeat many times, and repeated data stops helping: Muennighoff et al. (2023,
arXiv 2305.16264) find little loss up to about 4 epochs and fast-shrinking returns after.
`cap_repetition` keeps a proposal within `max_epochs` while changing it as little as the cap
allows; `unimax_weights` (in `mixtune.data.weights`, where the `unimax:E` spec resolves) builds a
mixture under the same cap from the token counts alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixtune.data.weights import DEFAULT_MAX_EPOCHS, unimax_weights
from mixtune.errors import UserError

__all__ = ["DEFAULT_MAX_EPOCHS", "Capped", "cap_repetition", "epochs_of", "unimax_weights"]


@dataclass
class Capped:
    """A mixture after `cap_repetition`, with the repetition it implies before and after."""

    weights: np.ndarray
    """The capped mixture (sums to 1)."""
    epochs: np.ndarray
    """Epochs of each domain on `weights`: w_i·T/n_i (0 for an empty domain)."""
    epochs_before: np.ndarray
    """Epochs of each domain on the weights given (inf for weight on an empty domain)."""
    capped: np.ndarray
    """Which domains the cap holds at max_epochs (those over it, and any that taking a share of
    the excess pushed over it), or, when infeasible, every domain with data."""
    feasible: bool
    """False when the budget exceeds max_epochs × all the data: no mixture keeps the cap."""
    max_epochs: float

    def summary(self, domains) -> dict[str, Any]:
        """A JSON record: the cap, each capped domain's epochs before and after, feasibility."""
        return {
            "max_epochs": float(self.max_epochs),
            "capped": {
                d: {"epochs_before": _finite(b), "epochs_after": _finite(a)}
                for d, b, a, c in zip(domains, self.epochs_before, self.epochs, self.capped,
                                      strict=True)
                if c
            },
            "feasible": bool(self.feasible),
        }


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None  # JSON has no inf


def epochs_of(weights: np.ndarray, domain_tokens: np.ndarray, budget_tokens: float) -> np.ndarray:
    """w_i·T/n_i: how many times a run of `budget_tokens` on `weights` repeats each domain
    (0 for a domain with neither weight nor data, inf for weight on a domain without data)."""
    w, n = np.asarray(weights, dtype=np.float64), np.asarray(domain_tokens, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        e = w * float(budget_tokens) / n
    return np.where(w > 0, e, 0.0)


def cap_repetition(
    weights: np.ndarray,
    domain_tokens: np.ndarray,
    budget_tokens: float,
    max_epochs: float = DEFAULT_MAX_EPOCHS,
) -> Capped:
    """Cap each domain at `max_epochs` epochs of a run of `budget_tokens` tokens.

    Domain i may take at most c_i = max_epochs·n_i/T of the mixture. Water-filling: a domain over
    its cap is held at it and the excess goes to the uncapped domains in proportion to their
    weights, repeated until none is over (what one receives may push it over in turn). So the
    ratios among uncapped domains are kept, and weights that exceed no cap come back unchanged
    (the same values, bit for bit). A domain of weight 0 stays 0 unless the positive-weight
    domains all reach their caps with mass left over: that rest goes to the zero-weight domains
    in proportion to their capacity c_i, as the least change that keeps the cap. A domain with
    no tokens always gets 0. When Σc_i < 1 (T exceeds max_epochs × all the data) no mixture
    keeps the cap: the result is natural (∝ n_i), every domain at the same, lowest possible
    epochs, with `feasible` False.
    """
    w, n, budget = _check(weights, domain_tokens, budget_tokens, max_epochs)
    before = epochs_of(w, n, budget)
    caps = max_epochs * n / budget
    feasible = bool(caps.sum() >= 1)
    if not feasible:
        out, capped = n / n.sum(), n > 0
    elif not np.any(w > caps):
        out, capped = w.copy(), np.zeros(len(w), dtype=bool)
    else:
        out, capped = _water_fill(w, caps)
    return Capped(out, epochs_of(out, n, budget), before, capped, feasible, float(max_epochs))


def _water_fill(w: np.ndarray, caps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(`w` with the domains over their caps held at them and the rest spread as
    `cap_repetition` says, which domains are held). Needs Σcaps >= 1."""
    held = np.zeros(len(w), dtype=bool)
    out = w.copy()
    while True:
        over = ~held & (out > caps)
        if not over.any():
            return out, held
        held |= over
        out[held] = caps[held]
        rest = max(1.0 - caps[held].sum(), 0.0)
        free = ~held & (w > 0)
        if free.any():
            out[free] = rest * w[free] / w[free].sum()
            continue
        # Every positive-weight domain is at its cap: the zero-weight ones take what is left
        # (nothing but rounding when the caps held add up to 1).
        spare = ~held & (caps > 0)
        if rest > 1e-12 and spare.any():
            out[spare] = rest * caps[spare] / caps[spare].sum()
        return out, held


def _check(weights, domain_tokens, budget_tokens, max_epochs) -> tuple[np.ndarray, np.ndarray, float]:
    """The inputs as float64 vectors and a float, weights normalised; bad values refused."""
    w = np.asarray(weights, dtype=np.float64)
    n = np.asarray(domain_tokens, dtype=np.float64)
    if w.ndim != 1 or w.shape != n.shape:
        raise ValueError(f"cap_repetition: weights {w.shape} and domain_tokens {n.shape} differ")
    budget = float(budget_tokens)
    if not (budget > 0 and math.isfinite(budget)):
        raise UserError(f"repetition cap: token budget {budget_tokens!r} must be a positive number.")
    if not (max_epochs > 0 and math.isfinite(max_epochs)):
        raise UserError(f"repetition cap: max_epochs {max_epochs!r} must be a positive number.")
    if not (np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
        raise UserError(f"repetition cap: weights {w.tolist()} must be >= 0 with a positive sum.")
    if not (np.all(np.isfinite(n)) and np.all(n >= 0) and n.sum() > 0):
        raise UserError(f"repetition cap: domain tokens {n.tolist()} must be >= 0, some > 0.")
    if abs(w.sum() - 1.0) > 1e-9:
        w = w / w.sum()
    return w, n, budget
