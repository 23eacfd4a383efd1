"""RegMix on a swarm someone already ran: read the mixtures and their measured results, fit a
regressor from mixture weights to a target, and search the simplex for the mixture with the lowest
predicted target (Liu et al., "RegMix: Data Mixture as Regression for Language Model
Pre-training", arXiv 2407.01492).

Two files describe a swarm. M.csv: the first column is the run id, then one column per training
domain holding that run's mixture weight. R.csv: the same ids in any order, then one column per
measured value (say, per-domain validation losses; they need not match the domains). RegMix's
published layout (`train_<domain>` columns in M, `metric/<name>_val_loss` in R) is read too.

Two regressors: LightGBM, as RegMix, and the log-linear data-mixing law
`L = c + k * exp(sum_j t_j * w_j)` (Ye et al., "Data Mixing Laws", arXiv 2403.16952), fitted in
plain numpy so it needs no optional dependency.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mixtune.errors import UserError

SUM_TOLERANCE = 0.01
"""Weights summing within 1 +- this are normalised silently: published swarms round each weight to
3 decimals, so a row of 17 domains can be off by up to 0.0085. Anything further is a wrong file."""

REGRESSORS = ("lightgbm", "loglinear")

LOW_RANK_CORRELATION = 0.5
"""An out-of-fold rank correlation below this is said to be too low to trust the fit's ranking."""

LIGHTGBM_ROUNDS = 1000
LIGHTGBM_PARAMS: dict[str, Any] = dict(
    # RegMix's LGBMRegressor, through LightGBM's own API (the sklearn wrapper would add
    # scikit-learn as a dependency for nothing): l2 regression, 1000 trees at learning rate 0.01.
    # RegMix early-stopped on a held-out swarm; we have none, and the small rate already keeps
    # 1000 trees from overfitting.
    objective="regression",
    learning_rate=0.01,
    # LightGBM's defaults (31 leaves, 20 rows per leaf) assume big tables: on a swarm of 20-500
    # runs a 20-row leaf forbids almost every split. 5 rows per leaf (`min_data_in_leaf`) and 15
    # leaves let the trees follow the mixture while a leaf's mean still averages a few runs' noise.
    num_leaves=15,
    # Same seed, same trees: one thread and LightGBM's deterministic mode.
    deterministic=True,
    force_col_wise=True,
    num_threads=1,
    verbosity=-1,
)

MIN_CONCENTRATION = 0.1
"""Candidate search: the smallest total Dirichlet concentration (alpha_0); near one-hot mixtures."""
MAX_CONCENTRATION_PER_DOMAIN = 5.0
"""The largest alpha_0 is this times the number of domains: each alpha_i ~ 5 x its prior share
times k, so those candidates sit close to the prior."""


@dataclass(frozen=True)
class Swarm:
    """A swarm of proxy runs: run `i` trained on mixture `weights[i]` and measured `measures[*][i]`."""

    ids: list[str]
    domains: list[str]
    weights: np.ndarray  # [n, k] float64, each row sums to 1
    measures: dict[str, np.ndarray]  # measure name -> [n] float64, rows in `ids` order; NaN: not
    # measured (an empty cell), refused when a target needs it


class Model(Protocol):
    """A fitted regressor from mixture weights [m, k] to the predicted target [m]."""

    def predict(self, weights: np.ndarray) -> np.ndarray: ...

    @property
    def k_domains(self) -> int:
        """k: the domains it was fitted on."""
        ...


# ---- reading a swarm ---------------------------------------------------------------------------


def read_swarm(mixtures_csv: Path | str, results_csv: Path | str) -> Swarm:
    """Read M.csv (id, one weight column per domain) and R.csv (id, one column per measure).

    Every problem is a one-line `UserError` naming the file, the row (1-based data row and id)
    and the column."""
    m_path, r_path = Path(mixtures_csv), Path(results_csv)
    m_ids, domains, weights = read_mixtures(m_path)
    if len(domains) < 2:
        raise UserError(f"{m_path}: header: one domain ({domains[0]!r}); a mixture needs two or "
                        "more.")
    unused = np.flatnonzero(weights.max(axis=0) == 0)
    if unused.size:
        raise UserError(f"{m_path}: column {domains[unused[0]]!r}: 0 in every run, so the swarm "
                        "says nothing of that domain; drop the column, or add runs that train on "
                        "it.")
    _, r_ids, measures, r_rows = _read_table(r_path)
    measures = _unique([_measure_name(c) for c in measures], r_path)
    _check_same_ids(m_ids, r_ids, m_path, r_path)
    if len(m_ids) < len(domains) + 1:
        raise UserError(f"{m_path}: {len(m_ids)} runs for {len(domains)} domains; a regression "
                        f"needs at least domains + 1 = {len(domains) + 1} runs.")
    order = {rid: i for i, rid in enumerate(r_ids)}
    values = np.empty((len(m_ids), len(measures)))
    for i, rid in enumerate(m_ids):  # R's rows, put in M's order
        j = order[rid]
        # An empty cell is a measure the run lacks (NaN): refused only if the target needs it.
        values[i] = [math.nan if not c else _number(c, _where(r_path, j, rid), name)
                     for c, name in zip(r_rows[j], measures, strict=True)]
    return Swarm(ids=m_ids, domains=domains, weights=weights,
                 measures={name: values[:, j].copy() for j, name in enumerate(measures)})


def read_mixtures(path: Path | str) -> tuple[list[str], list[str], np.ndarray]:
    """A mixtures CSV alone (M.csv's layout, or RegMix's `train_<domain>` columns): its ids, its
    domains and the weights [n, k], each row summing to 1."""
    _, ids, domains, weights = _read_mixtures(Path(path))
    return ids, domains, weights


def _read_mixtures(path: Path) -> tuple[str, list[str], list[str], np.ndarray]:
    id_column, ids, domains, rows = _read_table(path)
    if all(d.startswith("train_") for d in domains):  # RegMix's published M.csv
        domains = _unique([d.removeprefix("train_") for d in domains], path)
    weights = np.empty((len(ids), len(domains)))
    for i, (rid, cells) in enumerate(zip(ids, rows, strict=True)):
        weights[i] = _weight_row(cells, domains, _where(path, i, rid))
    return id_column, ids, domains, weights


def _read_table(path: Path) -> tuple[str, list[str], list[str], list[list[str]]]:
    """(the id column's name, ids, column names after the id column, cells per row) of a CSV;
    refuses a ragged file, duplicate ids or columns and empty ids."""
    try:
        # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name;
        # skipinitialspace: `a, "b"` is two cells, as it reads.
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f, skipinitialspace=True) if any(c.strip() for c in r)]
    except FileNotFoundError:
        raise UserError(f"{path}: not found.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a readable CSV file ({e}).") from None
    if not rows or len(rows[0]) < 2:
        raise UserError(f"{path}: expected a header row: the id column, then one or more columns.")
    header = [c.strip() for c in rows[0]]
    columns = _unique(header[1:], path)
    ids: list[str] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows[1:]):
        rid = row[0].strip()
        if len(row) != len(header):
            raise UserError(f"{_where(path, i, rid)}: {len(row)} cells, the header has "
                            f"{len(header)}.")
        if not rid:
            raise UserError(f"{path}: row {i + 1}, column {header[0]!r}: empty id.")
        if rid in seen:
            raise UserError(f"{_where(path, i, rid)}, column {header[0]!r}: duplicate id "
                            f"(also row {seen[rid] + 1}).")
        seen[rid] = i
        ids.append(rid)
    if not ids:
        raise UserError(f"{path}: no data rows under the header.")
    return header[0], ids, columns, [[c.strip() for c in row[1:]] for row in rows[1:]]


def _unique(columns: list[str], path: Path) -> list[str]:
    seen: set[str] = set()
    for c in columns:
        if not c:
            raise UserError(f"{path}: header: an empty column name.")
        if c in seen:
            raise UserError(f"{path}: header, column {c!r}: duplicate column.")
        seen.add(c)
    return columns


def _measure_name(column: str) -> str:
    """`metric/the_pile_arxiv_val_loss` -> `the_pile_arxiv` (RegMix's R.csv); others unchanged."""
    if not column.startswith("metric/"):
        return column
    name = column.removeprefix("metric/")
    return name.removesuffix("_val_loss") or name


def _where(path: Path, index: int, rid: str) -> str:
    return f"{path}: row {index + 1} (id {rid!r})"


def _check_same_ids(m_ids: list[str], r_ids: list[str], m_path: Path, r_path: Path) -> None:
    r_set, m_set = set(r_ids), set(m_ids)
    for i, rid in enumerate(m_ids):
        if rid not in r_set:
            raise UserError(f"{_where(m_path, i, rid)}, column id: no row with this id in {r_path}.")
    for i, rid in enumerate(r_ids):
        if rid not in m_set:
            raise UserError(f"{_where(r_path, i, rid)}, column id: no row with this id in {m_path}.")


def _number(cell: str, where: str, column: str) -> float:
    """A finite float, or a UserError naming the cell."""
    try:
        value = float(cell)
    except ValueError:
        what = "empty" if not cell else f"not a number ({cell!r})"
        raise UserError(f"{where}, column {column!r}: {what}.") from None
    if not math.isfinite(value):
        raise UserError(f"{where}, column {column!r}: {cell!r} is not a finite number.")
    return value


def _weight_row(cells: list[str], domains: list[str], where: str) -> np.ndarray:
    row = np.array([_number(c, where, d) for c, d in zip(cells, domains, strict=True)])
    for value, domain in zip(row, domains, strict=True):
        if value < 0:
            raise UserError(f"{where}, column {domain!r}: negative weight {value:g}.")
    total = float(row.sum())
    if abs(total - 1.0) > SUM_TOLERANCE + 1e-9:  # 0.33 * 3 is 0.9900000000000001 in floats
        raise UserError(f"{where}, columns {domains[0]!r}..{domains[-1]!r}: the weights sum to "
                        f"{total:.4g}, not 1 (+-{SUM_TOLERANCE}).")
    return row / total


# ---- targets -----------------------------------------------------------------------------------


def target_parts(swarm: Swarm, target: str | Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """The target as measures [n, m] and their weights [m] summing to 1: "average" (every measure
    alike), one measure's name, or a {measure: weight} mapping. A measure itself named "average"
    (RegMix's `metric/average`) is that column, not a second mean over the columns."""
    if isinstance(target, str) and target == "average" and "average" not in swarm.measures:
        mix = dict.fromkeys(swarm.measures, 1.0)
    else:
        mix = {target: 1.0} if isinstance(target, str) else dict(target)
    if not mix:
        raise UserError("target: an empty mapping; name one or more measures.")
    # RegMix's column names (`metric/web_val_loss`) name the measure they were read as.
    mix = {n if n in swarm.measures else _measure_name(n): w for n, w in mix.items()}
    for name, w in mix.items():
        if name not in swarm.measures:
            raise UserError(f"target: no measure {name!r}; the measures are "
                            f"{', '.join(swarm.measures)} (or \"average\").")
        if isinstance(w, bool) or not isinstance(w, int | float):
            raise UserError(f"target: weight {w!r} for {name!r}; use a non-negative number.")
        if not (math.isfinite(w) and w >= 0):
            raise UserError(f"target: weight {w!r} for {name!r}; use a non-negative number.")
    total = sum(mix.values())
    if total <= 0:
        raise UserError("target: the weights sum to 0; give at least one a positive weight.")
    parts = np.stack([swarm.measures[name] for name in mix], axis=1)
    missing = np.argwhere(np.isnan(parts))
    if missing.size:
        i, j = missing[0]
        raise UserError(f"target: run {swarm.ids[i]!r} has no value for {list(mix)[j]!r} (an empty "
                        "cell); measure it, drop the run, or leave the measure out of the target.")
    return parts, np.array([w / total for w in mix.values()])


def target_values(swarm: Swarm, target: str | Mapping[str, float]) -> np.ndarray:
    """The value to minimise per run (see `target_parts`)."""
    parts, mix = target_parts(swarm, target)
    return parts @ mix


# ---- regressors --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LightGBMModel:
    """A fitted `lightgbm.Booster`."""

    booster: Any

    def predict(self, weights: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(np.asarray(weights, dtype=np.float64)),
                          dtype=np.float64)

    @property
    def k_domains(self) -> int:
        return int(self.booster.num_feature())


@dataclass(frozen=True)
class LogLinearModel:
    """`L = c + k * exp(weights @ t)`. Mixture weights sum to 1, so adding s to every t_j and
    dividing k by exp(s) changes nothing: t is reported centred (mean 0).

    Predictions are bounded to [low, high], the swarm's measured range widened by its own width
    on each side: far from what the swarm measured the law's extrapolation is no evidence. A
    swarm that leaves a domain open (4 runs over 3 domains, one never above 3% of a mixture) is
    interpolated exactly by exponents in the hundreds, which predicted 4e73 for the uniform
    mixture. LightGBM's predictions are bounded by the measured range by construction. (A prior
    on t, tried instead, kept the exponents small but moved the out-of-fold rank correlation
    both ways on two swarms and cost the generated study's proposal 0.003: README.)"""

    c: float
    k: float
    t: np.ndarray  # [k_domains]
    low: float = -math.inf
    high: float = math.inf

    @property
    def k_domains(self) -> int:
        return len(self.t)

    def predict(self, weights: np.ndarray) -> np.ndarray:
        weights = np.asarray(weights, dtype=np.float64)
        if self.k == 0:  # a flat law (0 · an overflowed exp would be NaN)
            return np.full(len(weights), float(np.clip(self.c, self.low, self.high)))
        with np.errstate(over="ignore"):  # far outside the swarm: +-inf, then the bound
            return np.clip(self.c + self.k * np.exp(weights @ self.t), self.low, self.high)


@dataclass(frozen=True)
class SumModel:
    """A target that is a weighted sum of measures, as a weighted sum of one fitted law per
    measure: the data mixing law (Ye et al., arXiv 2403.16952) fits each domain's loss and sums
    them, since a sum of exponentials is no exponential of the mixture."""

    parts: tuple[tuple[float, Model], ...]

    def predict(self, weights: np.ndarray) -> np.ndarray:
        return sum(w * model.predict(weights) for w, model in self.parts)

    @property
    def k_domains(self) -> int:
        return self.parts[0][1].k_domains


def fit(weights: np.ndarray, y: np.ndarray, regressor: str = "lightgbm", seed: int = 0) -> Model:
    """Fit `regressor` ("lightgbm" or "loglinear") from mixtures [n, k] to targets [n]."""
    weights, y = np.asarray(weights, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if weights.ndim != 2 or y.shape != (weights.shape[0],):
        raise UserError(f"fit: weights [n, k] and y [n] expected, got {weights.shape} and "
                        f"{y.shape}.")
    for name, values in (("weights", weights), ("y", y)):
        bad = np.flatnonzero(~np.isfinite(values).reshape(len(values), -1).all(axis=1))
        if bad.size:
            raise UserError(f"fit: {name}, row {bad[0]}: not a finite number (NaN or inf).")
    if regressor == "lightgbm":
        return _fit_lightgbm(weights, y, seed)
    if regressor == "loglinear":
        return _fit_loglinear(weights, y, seed)
    raise UserError(f"regressor: {regressor!r} is not one of {', '.join(REGRESSORS)}.")


def fit_parts(weights: np.ndarray, parts: np.ndarray, mix: np.ndarray,
              regressor: str = "lightgbm", seed: int = 0) -> Model:
    """Fit the target `parts @ mix` (measures [n, m], weights [m]; see `target_parts`). LightGBM
    fits the target itself, as RegMix does; the log-linear law is fitted per measure and summed
    (`SumModel`), as the data mixing law paper does."""
    parts, mix = np.asarray(parts, dtype=np.float64), np.asarray(mix, dtype=np.float64)
    if regressor == "loglinear" and np.count_nonzero(mix) > 1:
        return SumModel(tuple((float(m), fit(weights, parts[:, j], regressor, seed))
                              for j, m in enumerate(mix) if m > 0))
    return fit(weights, parts @ mix, regressor, seed)


def min_data_in_leaf(n: int) -> int:
    """Rows per LightGBM leaf: 5, or a third of a swarm under 15 runs (at least 2). Two leaves
    of 5 need 10 rows: on the default swarm of 3 domains (12 proxies) the cross-validation's
    fits of 9 or 10 runs could not split, so its rho read 0.00 on a noise-free law (0.78 with a
    third); 15 runs and more are fitted as before."""
    return min(5, max(2, n // 3))


def _fit_lightgbm(weights: np.ndarray, y: np.ndarray, seed: int) -> LightGBMModel:
    try:
        import lightgbm  # optional: only this regressor needs it
    except ImportError:
        raise UserError("regressor 'lightgbm' needs LightGBM: pip install 'mixtune[regmix]' "
                        "(or use regressor 'loglinear').") from None
    params = {**LIGHTGBM_PARAMS, "seed": seed, "min_data_in_leaf": min_data_in_leaf(len(y))}
    data = lightgbm.Dataset(weights, label=y, params=params)
    return LightGBMModel(lightgbm.train(params, data, num_boost_round=LIGHTGBM_ROUNDS))


def _fit_loglinear(weights: np.ndarray, y: np.ndarray, seed: int,
                   restarts: int = 5) -> LogLinearModel:
    """Least squares by Levenberg-Marquardt from `restarts` seeded starts; keeps the best.

    The loss surface of an exponential law has flat valleys, so one start can stall; a handful of
    random t's (c and k then set by linear least squares) finds the basin reliably."""
    with np.errstate(over="ignore"):
        squares = float(np.dot(y, y))
    if not math.isfinite(squares):  # past the float limit: no least squares in float64
        raise UserError(f"the log-linear law: no finite fit to targets from {y.min():g} to "
                        f"{y.max():g}; rescale them (losses, bits per byte) or use lightgbm.")
    rng = np.random.default_rng(seed)
    best, best_sse = None, math.inf
    for r in range(restarts):
        t0 = np.zeros(weights.shape[1]) if r == 0 else rng.normal(0.0, 1.0, weights.shape[1])
        c0, k0 = _linear_ck(weights, y, t0)
        params = _levenberg_marquardt(weights, y, np.concatenate([[c0, k0], t0]))
        sse = _sse(weights, y, params)
        if sse < best_sse:
            best, best_sse = params, sse
    assert best is not None  # the first start's linear (c, k) is finite when y·y is
    c, k, t = best[0], best[1], best[2:]
    shift = float(t.mean())  # the gauge: weights sum to 1, so k * exp(s) and t - s are the same law
    span = float(np.ptp(y))
    return LogLinearModel(c=float(c), k=float(k * math.exp(shift)), t=t - shift,
                          low=float(y.min()) - span, high=float(y.max()) + span)


def _linear_ck(weights: np.ndarray, y: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """For fixed t the law is linear in (c, k): solve that by least squares."""
    design = np.column_stack([np.ones(len(y)), np.exp(weights @ t)])
    (c, k), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(c), float(k)


def _sse(weights: np.ndarray, y: np.ndarray, params: np.ndarray) -> float:
    """Sum of squared residuals of `c + k exp(W t) - y`; a wild trial step overflows to inf (or
    NaN), which the caller rejects."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum((params[0] + params[1] * np.exp(weights @ params[2:]) - y) ** 2))


def _levenberg_marquardt(weights: np.ndarray, y: np.ndarray, params: np.ndarray,
                         iterations: int = 500, tol: float = 1e-12) -> np.ndarray:
    """Minimise the squared residuals of `c + k exp(W t) - y` over params = [c, k, t...]."""
    damping = 1e-3
    sse = _sse(weights, y, params)
    for _ in range(iterations):
        e = np.exp(weights @ params[2:])
        r = params[0] + params[1] * e - y
        jac = np.column_stack([np.ones_like(e), e, (params[1] * e)[:, None] * weights])
        jtj, jtr = jac.T @ jac, jac.T @ r
        # Marquardt's scaling plus a tiny ridge: t's gauge direction makes J^T J singular.
        diag = np.diag(jtj) + 1e-12
        while damping < 1e12:
            try:
                trial = params + np.linalg.solve(jtj + damping * np.diag(diag), -jtr)
            except np.linalg.LinAlgError:  # numerically singular: damp harder
                damping *= 10.0
                continue
            trial_sse = _sse(weights, y, trial)
            if np.isfinite(trial_sse) and trial_sse < sse:
                break
            damping *= 10.0
        else:
            return params  # no downhill step at any damping: a minimum
        improvement = sse - trial_sse
        params, sse, damping = trial, trial_sse, max(damping / 10.0, 1e-12)
        if improvement <= tol * max(sse, 1e-30):
            break
    return params


def is_flat(model: Model, weights: np.ndarray) -> bool:
    """Whether `model` predicts one value for every row of `weights`: a regressor that learned
    nothing (LightGBM on fewer runs than two of its leaves hold), whose "best" candidates would
    be an arbitrary few."""
    return bool(np.ptp(model.predict(weights)) == 0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (ties get their average rank); 0.0 if either side is constant,
    as constant predictions rank nothing."""
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / denominator if denominator > 0 else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties averaged."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def cross_validated_rank_correlation(weights: np.ndarray, values: np.ndarray, regressor: str,
                                     folds: int = 5, seed: int = 0,
                                     mix: np.ndarray | None = None) -> float:
    """Spearman between the target and out-of-fold predictions: each run predicted by a regressor
    fitted without its fold (folds from a seeded shuffle). What RegMix reports, minus a second
    swarm. `values`: the target [n]; with `mix`, the measures [n, m] whose `mix`-weighted sum is
    the target, fitted one by one (`fit_parts`). 0.0 when every fold's fit is flat (`is_flat`):
    each fold's constant would otherwise make a correlation out of nothing."""
    weights, values = np.asarray(weights, dtype=np.float64), np.asarray(values, dtype=np.float64)
    if mix is None:
        parts, mix = values[:, None], np.ones(1)
    else:
        parts, mix = values, np.asarray(mix, dtype=np.float64)
    y = parts @ mix
    folds = min(folds, len(y))
    if folds < 2:
        raise UserError(f"cross-validation needs at least 2 runs and 2 folds, got {len(y)} runs.")
    fold_of = np.empty(len(y), dtype=np.int64)
    fold_of[np.random.default_rng(seed).permutation(len(y))] = np.arange(len(y)) % folds
    predicted = np.empty(len(y))
    flat = 0
    for f in range(folds):
        held = fold_of == f
        model = fit_parts(weights[~held], parts[~held], mix, regressor, seed=seed)
        predicted[held] = model.predict(weights[held])
        flat += is_flat(model, weights[~held])
    return 0.0 if flat == folds else spearman(predicted, y)


# ---- search ------------------------------------------------------------------------------------


def candidate_mixtures(k_domains: int, prior: Sequence[float] | np.ndarray | None,
                       samples: int, seed: int) -> np.ndarray:
    """`samples` mixtures [samples, k] drawn as Dirichlet(alpha_0 * prior), one alpha_0 per draw,
    log-uniform in [MIN_CONCENTRATION, MAX_CONCENTRATION_PER_DOMAIN * k].

    RegMix draws its swarm with the total concentration varied over [0.1, 5] so that both
    near-prior and sparse mixtures appear; we widen the top end with k so that, for many domains
    too, the concentrated end reaches the prior's neighbourhood (alpha_i ~ 5 k p_i), while
    alpha_0 = 0.1 puts nearly all weight on one or two domains. `prior` is the domains' token
    shares (None: uniform)."""
    p = _prior(k_domains, prior)
    rng = np.random.default_rng(seed)
    log_lo, log_hi = math.log(MIN_CONCENTRATION), math.log(MAX_CONCENTRATION_PER_DOMAIN * k_domains)
    alpha0 = np.exp(rng.uniform(log_lo, log_hi, size=(samples, 1)))
    # Dirichlet as normalised Gammas, which takes a different alpha per row in one call.
    gammas = rng.standard_gamma(alpha0 * p)
    totals = gammas.sum(axis=1, keepdims=True)
    # With alpha_i << 1 every Gamma of a row can underflow to 0. Such a row is the Dirichlet's
    # limit, a one-hot corner: pick its domain with probability p_i, as that limit does.
    empty = np.flatnonzero(totals[:, 0] <= 0)
    gammas[empty, rng.choice(k_domains, size=len(empty), p=p)] = 1.0
    return gammas / gammas.sum(axis=1, keepdims=True)


def _prior(k_domains: int, prior: Sequence[float] | np.ndarray | None) -> np.ndarray:
    if prior is None:
        return np.full(k_domains, 1.0 / k_domains)
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (k_domains,):
        raise UserError(f"prior: {p.size} values for {k_domains} domains.")
    if not (np.all(np.isfinite(p)) and np.all(p > 0)):
        raise UserError("prior: every domain needs a positive, finite token share.")
    return p / p.sum()


def propose(model: Model, k_domains: int, prior: Sequence[float] | np.ndarray | None = None,
            samples: int = 100_000, top: int = 100, seed: int = 0) -> np.ndarray:
    """The mixture RegMix proposes: the mean of the `top` candidates (see `candidate_mixtures`)
    with the lowest predicted target. Averaging, as RegMix, smooths the regressor's noise out of
    a single argmin. Returns float64 [k_domains] summing to 1."""
    if not 1 <= top <= samples:
        raise UserError(f"top: {top}; use 1 <= top <= samples ({samples}).")
    fitted = getattr(model, "k_domains", k_domains)
    if k_domains < 2 or fitted != k_domains:
        raise UserError(f"propose: k_domains {k_domains}; the model was fitted on {fitted} "
                        "domains (a mixture needs 2 or more).")
    candidates = candidate_mixtures(k_domains, prior, samples, seed)
    predicted = model.predict(candidates)
    best = np.argsort(predicted, kind="stable")[:top]
    mixture = candidates[best].mean(axis=0)
    return mixture / mixture.sum()


# ---- a swarm someone already ran: `mixtune swarm fit` ------------------------------------------


@dataclass
class SwarmFit:
    """What `mixtune swarm fit` reports: the proposal for the target, its predicted value beside
    the swarm's mean mixture's and uniform's, and how well the regressor ranks held-out runs."""

    domains: list[str]
    proposal: np.ndarray
    predicted: dict[str, float]
    """Predicted target of the proposal, the swarm's mean mixture and the uniform mixture."""
    rank_correlation: float
    """Spearman between out-of-fold predictions and the measured target."""
    model: Model
    flat: bool = False
    """The fit predicts one value for every run (`is_flat`): the proposal is the swarm's mean."""


def fit_swarm(swarm: Swarm, target: str | Mapping[str, float], regressor: str = "lightgbm",
              seed: int = 0) -> SwarmFit:
    """Fit the regressor on the whole swarm and search around the swarm's mean mixture (the
    prior it was drawn around, as near as the files tell)."""
    parts, mix = target_parts(swarm, target)
    model = fit_parts(swarm.weights, parts, mix, regressor, seed)
    k = len(swarm.domains)
    prior = swarm.weights.mean(axis=0)
    flat = is_flat(model, swarm.weights)
    proposal = prior / prior.sum() if flat else propose(model, k, prior, seed=seed)
    baselines = np.stack([proposal, prior / prior.sum(), np.full(k, 1.0 / k)])
    values = model.predict(baselines)
    return SwarmFit(
        swarm.domains, proposal,
        {"proposal": float(values[0]), "swarm mean": float(values[1]), "uniform": float(values[2])},
        cross_validated_rank_correlation(swarm.weights, parts, regressor, seed=seed, mix=mix),
        model, flat)


def parse_target(text: str) -> str | dict[str, float]:
    """`average`, a measure's name, or JSON `{"measure": weight, ...}` (as the CLI takes it)."""
    import json

    if not text.lstrip().startswith("{"):
        return text
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--target {text}: not valid JSON ({e}).") from None
    if not obj or not all(isinstance(v, int | float) and not isinstance(v, bool)
                          for v in obj.values()):
        raise UserError(f"--target {text}: give {{measure: weight, ...}} with numeric weights.")
    return {str(k): float(v) for k, v in obj.items()}


def read_candidates(path: Path | str, domains: list[str]) -> tuple[str, list[str], np.ndarray]:
    """Mixtures to predict (M.csv's layout): the id column's name, the ids and the weights [n, k];
    their domains must be the swarm's. Read before the fit, so a wrong file costs no fit."""
    id_column, ids, theirs, weights = _read_mixtures(Path(path))
    if theirs != domains:
        raise UserError(f"{path}: header: its domains {theirs} differ from the swarm's {domains} "
                        "(the same columns, in the same order).")
    return id_column, ids, weights
