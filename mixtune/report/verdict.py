"""The report's answer to "which mixture should I train on?", and how sure it is.

Every mixture is compared with the reference mixture on the run's target (mixing/target.py,
lower is better), seed by seed: a main run and the reference's main run of the same seed share
the seed's initialisation and data order, so their difference cancels much of the seed-to-seed
noise both carry. Per mixture, over the seeds both finished:

    d_s = target(mixture, seed s) − target(reference, seed s)
    mean, sample std, and the 90% interval mean ± t(0.95, n−1)·std/√n   (Student's t)

A mixture *beats the reference beyond the seed spread* when its whole interval is below 0. The
verdict is one of three sentences: the best such mixture beats the reference (train on it); some
mixture is better on average but none beyond the spread (the difference is within noise: keep
the reference, the cheapest mixture, which needs no method's runs); no mixture is better on
average (keep the reference). One seed never makes a win: there is no spread to judge it by,
and the verdict says how many seeds would resolve the observed difference at the spread seen
elsewhere in the run, if any. Each mixture's interval is at 90% on its own: with many mixtures
one may clear it by chance, which is why the verdict wants the interval, not the mean, and
several seeds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

LEVEL = 0.90
MAX_SEEDS = 1000
"""Beyond this many seeds a difference is called unresolvable at its spread."""

# Student's t quantile t(0.95, df) for df = 1..30 (two-sided 90%); Cornish–Fisher beyond.
_T95 = [6.3138, 2.9200, 2.3534, 2.1318, 2.0150, 1.9432, 1.8946, 1.8595, 1.8331, 1.8125,
        1.7959, 1.7823, 1.7709, 1.7613, 1.7531, 1.7459, 1.7396, 1.7341, 1.7291, 1.7247,
        1.7207, 1.7171, 1.7139, 1.7109, 1.7081, 1.7056, 1.7033, 1.7011, 1.6991, 1.6973]
_Z95 = 1.6448536269514722

BEATS, WITHIN_NOISE, NONE_BETTER, NO_DATA = "beats", "within_noise", "none_better", "no_data"


def t95(df: int) -> float:
    """The 95th percentile of Student's t with `df` degrees of freedom (df ≥ 1)."""
    if df < 1:
        raise ValueError(f"df {df}: at least 1")
    if df <= len(_T95):
        return _T95[df - 1]
    z = _Z95
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass
class Comparison:
    """One mixture against the reference, paired by seed."""

    mixture: str
    seeds: list[str]
    """The seeds both finished, in order."""
    diffs: list[float]
    """Per seed: the mixture's target minus the reference's (below 0: the mixture is better)."""
    value: float | None = None
    """The mixture's mean target over its finished seeds (all of them, paired or not)."""
    predicted: float | None = None
    """What a method predicted for its target (RegMix), where it did."""
    mean: float | None = None
    std: float | None = None
    low: float | None = None
    high: float | None = None
    seeds_needed: int | None = None
    """Seeds that would put 0 outside the interval at this mean and spread (None: unknown)."""

    @property
    def n(self) -> int:
        return len(self.diffs)

    @property
    def beats(self) -> bool:
        return self.n >= 2 and self.high is not None and self.high < 0

    @property
    def worse(self) -> bool:
        return self.n >= 2 and self.low is not None and self.low > 0

    @property
    def same(self) -> bool:
        """The reference's own models: not a difference of 0 that a spread could hide, but the
        same numbers on every seed (a run links a mixture whose weights are the reference's, as
        RegMix's fallback to the token-share prior is, to the reference's runs)."""
        return self.n >= 1 and all(d == 0.0 for d in self.diffs)


def interval(diffs: list[float]) -> tuple[float | None, float | None, float | None, float | None]:
    """(mean, sample std, low, high) of the 90% t-interval; std and bounds None below 2 values."""
    if not diffs:
        return None, None, None, None
    mean = float(np.mean(diffs))
    if len(diffs) < 2:
        return mean, None, None, None
    std = float(np.std(diffs, ddof=1))
    half = t95(len(diffs) - 1) * std / math.sqrt(len(diffs))
    return mean, std, mean - half, mean + half


def seeds_to_resolve(mean: float | None, std: float | None) -> int | None:
    """The fewest seeds n ≥ 2 whose 90% interval around `mean` excludes 0 at spread `std` (None:
    unknown spread, no difference, or more than MAX_SEEDS)."""
    if mean is None or std is None or mean == 0:
        return None
    if std == 0:
        return 2
    for n in range(2, MAX_SEEDS + 1):
        if t95(n - 1) * std / math.sqrt(n) < abs(mean):
            return n
    return None


def compare(values: dict[str, dict[str, float]], reference: str,
            predicted: dict[str, float] | None = None) -> list[Comparison]:
    """Every mixture but the reference against it: `values` is {mixture: {seed: target}} of the
    finished main runs. Best mean difference first (those without a paired seed last)."""
    ref = values.get(reference, {})
    spread = _unpaired_spread(values)
    out = []
    for name, by_seed in values.items():
        if name == reference:
            continue
        seeds = [s for s in by_seed if s in ref]
        c = Comparison(name, seeds, [by_seed[s] - ref[s] for s in seeds],
                       value=float(np.mean(list(by_seed.values()))) if by_seed else None,
                       predicted=(predicted or {}).get(name))
        c.mean, c.std, c.low, c.high = interval(c.diffs)
        # One paired seed: the spread the run shows elsewhere, if it shows one.
        c.seeds_needed = seeds_to_resolve(c.mean, c.std if c.n >= 2 else spread)
        out.append(c)
    return sorted(out, key=lambda c: (c.mean is None, c.mean if c.mean is not None else 0.0))


def _unpaired_spread(values: dict[str, dict[str, float]]) -> float | None:
    """The spread of a difference between two mixtures' runs estimated from single mixtures'
    seeds (√2 × their pooled std), for comparisons that have one paired seed; None without any
    mixture of 2 seeds. Unpaired, so larger than a paired spread usually is: seeds it asks for
    are an upper estimate."""
    groups = [list(v.values()) for v in values.values() if len(v) >= 2]
    if not groups:
        return None
    pooled = sum(float(np.var(g, ddof=1)) * (len(g) - 1) for g in groups) \
        / sum(len(g) - 1 for g in groups)
    return math.sqrt(2 * pooled)


@dataclass
class Verdict:
    """The recommended mixture, one of the three outcomes, and the evidence."""

    target: str | dict
    reference: str
    outcome: str
    """beats / within_noise / none_better / no_data."""
    recommended: str | None
    comparisons: list[Comparison] = field(default_factory=list)
    reference_value: float | None = None
    """The reference's mean target over its finished seeds."""
    tied: list[str] = field(default_factory=list)
    """Other mixtures that beat the reference and are within noise of the best of them (paired by
    seed): the recommendation is the cheapest of these and the best."""
    costs: dict[str, float] = field(default_factory=dict)
    """Each mixture's compute beyond its main runs, as a share of one main run (0: fixed)."""

    def to_json(self) -> dict:
        out = asdict(self)
        for c, obj in zip(self.comparisons, out["comparisons"], strict=True):
            obj.update(n=c.n, beats=c.beats, worse=c.worse)
        return out


def decide(values: dict[str, dict[str, float]], reference: str, target,
           predicted: dict[str, float] | None = None,
           costs: dict[str, float] | None = None) -> Verdict:
    """The verdict from {mixture: {seed: target}} of the finished main runs. Where several
    mixtures beat the reference and are within noise of the best of them, the cheapest of those
    (`costs`: compute beyond the main runs; unknown counts as dearest) is the one recommended."""
    comparisons = compare(values, reference, predicted)
    paired = [c for c in comparisons if c.n]
    ref = list(values.get(reference, {}).values())
    v = Verdict(target, reference, NO_DATA, None, comparisons,
                float(np.mean(ref)) if ref else None, costs=dict(costs or {}))
    winners = [c for c in paired if c.beats]
    if not ref or not paired:
        return v
    if winners:
        best = winners[0].mixture
        v.tied = [c.mixture for c in winners[1:] if not _separated(values, c.mixture, best)]
        v.outcome = BEATS
        v.recommended = min([best, *v.tied], key=lambda m: v.costs.get(m, math.inf))
    else:
        v.outcome = WITHIN_NOISE if any(c.mean < 0 for c in paired) else NONE_BETTER
        v.recommended = reference
    return v


def _separated(values: dict[str, dict[str, float]], a: str, b: str) -> bool:
    """Whether a and b differ beyond the seed spread, paired by seed (2 seeds or more)."""
    seeds = [s for s in values.get(a, {}) if s in values.get(b, {})]
    _, _, low, high = interval([values[a][s] - values[b][s] for s in seeds])
    return low is not None and (low > 0 or high < 0)


def _md_bold(text: str) -> str:
    return f"**{text}**"


def _md_code(text: str) -> str:
    return f"`{text}`"


def sentence(v: Verdict, name=str, target_text=str, digits: int = 4, *, bold=_md_bold,
             code=_md_code) -> str:
    """The verdict in one sentence (two where it helps), names as `name` writes them; Markdown
    by default, plain text with `bold` and `code` as `str`."""
    ref = name(v.reference)
    what = target_text(v.target)
    if v.outcome == NO_DATA:
        return (f"No verdict yet: it needs finished main runs of the reference mixture {ref} and "
                "of another mixture with the same seed.")
    if v.outcome == BEATS:
        return _beats_sentence(v, name, what, digits, bold)
    same = [name(c.mixture) for c in v.comparisons if c.same]
    alias = (f"; {_listed(same)} {'is' if len(same) == 1 else 'are'} {ref} itself (the same "
             "weights, so the same models)") if same else ""
    best = next((c for c in v.comparisons if c.n and not c.same), None)
    if best is None:
        return (f"{bold(f'Keep the reference mixture {ref}')}: no other mixture to compare"
                f"{alias}.")
    evidence = _evidence(best, digits)
    if v.outcome == WITHIN_NOISE:
        need = _seeds_needed(best, code)
        return (f"{bold(f'Keep the reference mixture {ref}')}: the difference is within noise. "
                f"The best on average, {name(best.mixture)}, is {evidence} on the {what}, which "
                f"the seed spread does not separate from 0{need}{alias}.")
    worst = [name(c.mixture) for c in v.comparisons if c.worse]
    worse = f" ({', '.join(worst)} worse beyond the spread)" if worst else ""
    return (f"{bold(f'Keep the reference mixture {ref}')}: no mixture beats it on the {what}: "
            f"the closest, {name(best.mixture)}, is {evidence}{worse}{alias}.")


def _beats_sentence(v: Verdict, name, what: str, digits: int, bold) -> str:
    pick = next(c for c in v.comparisons if c.mixture == v.recommended)
    text = (f"{bold(f'Train on {name(pick.mixture)}')}: it beats the reference mixture {name(v.reference)} "
            f"on the {what} beyond the seed spread: {_evidence(pick, digits)}")
    group = [m for m in [next(c.mixture for c in v.comparisons if c.beats), *v.tied]
             if m != pick.mixture]
    if group:
        cost = v.costs.get(pick.mixture)
        why = ("the best on average; their costs are unknown" if cost is None else
               "which costs least (no method's runs in this run)" if cost == 0 else
               f"which costs least ({cost:.0%} of a main run beyond its own)")
        text += (f". {_beat([name(m) for m in group])} it too, within noise of "
                 f"{name(pick.mixture)}, {why}")
    rest = [name(c.mixture) for c in v.comparisons
            if c.beats and c.mixture != pick.mixture and c.mixture not in group]
    if rest:
        text += f"; {_beat(rest, 'also ')} it, by less beyond the spread"
    # A lower mean the spread does not separate from the reference is no win, but hiding it
    # would make the pick look like the best on average.
    lower = [name(c.mixture) for c in v.comparisons
             if not c.beats and c.n >= 2 and c.mean is not None and c.mean < pick.mean]
    if lower:
        text += (f"; {_listed(lower)} {'is' if len(lower) == 1 else 'are'} lower on average, "
                 f"but within noise of {name(v.reference)}")
    return text + "."


def _listed(names: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _beat(names: list[str], also: str = "") -> str:
    """"a beats", "a and b beat", "a, b and c beat": the names with their verb."""
    return f"{_listed(names)} {also}{'beats' if len(names) == 1 else 'beat'}"


def _evidence(c: Comparison, digits: int) -> str:
    if c.n < 2:
        return f"{c.mean:+.{digits}f} with one seed (no spread: one seed never makes a win)"
    return (f"{c.mean:+.{digits}f} ± {c.std:.{digits}f} over {c.n} seeds (90% interval "
            f"[{c.low:+.{digits}f}, {c.high:+.{digits}f}])")


def _seeds_needed(c: Comparison, code) -> str:
    if c.seeds_needed is None:
        return (f"; the spread between seeds is unknown: run at least 3 seeds "
                f"({code('seeds: [0, 1, 2]')})"
                if c.n < 2 else "; no feasible number of seeds would resolve a difference this "
                "small at this spread")
    if c.n >= c.seeds_needed:  # the interval excludes 0 on the other side: the mixture is worse
        return ""
    basis = "its" if c.n >= 2 else "the run's unpaired"
    return (f"; about {c.seeds_needed} seeds would resolve a difference this size at {basis} "
            "spread")
