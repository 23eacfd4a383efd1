"""Tables and the statistics shown in them, one module for the report, the leaderboard, the
methods' report sections, the CLI and the benchmarks, so that every table looks alike:

    fmt, fmt_ms, NONE     numbers at fixed digits, mean ± std over seeds, '—' where none exists
    md_table              a Markdown table
    aligned, from_dicts   a plain-text table for the terminal (names left, numbers right)
    mean_std, mean_curve  the statistics over seeds every comparison is made with
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

NONE = "—"  # shown wherever a number does not exist (run missing, target never reached)


def fmt(value: float | None, digits: int = 4) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def fmt_ms(mean: float | None, std: float | None, digits: int = 4) -> str:
    """'1.2345 ± 0.0123', just the mean for one seed, '—' for none."""
    if mean is None:
        return NONE
    return fmt(mean, digits) + ("" if std is None else f" ± {std:.{digits}f}")


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; `align` has one letter per column: l(eft) or r(ight)."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table: `rows[0]` is the header; every row has as many cells as it. The first
    column left-aligned (names), the others right-aligned (numbers), a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def from_dicts(rows: list[dict]) -> list[str]:
    """`aligned` for rows of the same keys (the header), values as `str` gives them."""
    if not rows:
        return []
    cols = list(rows[0])
    return aligned([cols] + [[str(r[c]) for c in cols] for r in rows])


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
