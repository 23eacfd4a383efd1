"""Tables and the statistics shown in them, one module for the report, the leaderboard, the
methods' report sections, the CLI and the benchmarks, so that every table looks alike:

    fmt, fmt_ms, NONE     numbers at fixed digits, mean ± std over seeds, '—' where none exists
    md_table              a Markdown table
    md_text, md_code, Md  names in Markdown: escaped, so a name cannot add columns or markup
    csv_cell              a CSV cell a spreadsheet will not run as a formula
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


class Md(str):
    """Text that is Markdown already (formatting such as **bold** around names that went through
    `md_text` or `md_code`): `md_table` keeps such a cell as it is."""


_MD_ESCAPES = {"\\": "\\\\", "&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "\\|", "`": "\\`"}


def md_text(value: object) -> Md:
    """A name (a folder's, a YAML key, a task's) as Markdown text, in a table cell or in prose:
    `< > &` as entities (a viewer that passes HTML through gets no tag from it), `|` and the
    backtick backslash-escaped (no new column, no code span), line breaks as spaces (no new
    row or paragraph). Rendered, it reads as the name."""
    text = " ".join(str(value).splitlines())
    return Md("".join(_MD_ESCAPES.get(c, c) for c in text))


def md_code(value: object) -> Md:
    """A name (a path) as a code span, `like/this`; one that holds a character Markdown reads
    (`< > & | \\`, a backtick, a line break) as `md_text` instead, so that no raw `<` or `|`
    ever stands in the page (a code span could not escape them in every viewer)."""
    text = md_text(value)
    return Md(f"`{text}`") if text == str(value) else text


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; `align` has one letter per column: l(eft) or r(ight). A cell that is
    plain text is escaped here (`md_text`: a name cannot add a column or markup); a cell that
    is `Md` is Markdown already and kept as it is."""
    rule = [Md("---" if a == "l" else "---:") for a in align]
    return ["| " + " | ".join(c if isinstance(c, Md) else md_text(c) for c in cells) + " |"
            for cells in [header, rule, *rows]]


CSV_FORMULA = ("=", "+", "-", "@", "\t", "\r")
"""How a spreadsheet knows a cell for a formula (OWASP, "CSV injection")."""


def csv_cell(value):
    """A CSV cell a spreadsheet will not run: text starting with `= + - @`, a tab or a carriage
    return gets a leading ' (OWASP's advice); numbers, and text that is one number (-1.5), are
    data and stay as they are."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


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
