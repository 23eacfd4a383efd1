"""How the report writes numbers: fixed digits, mean ± std over seeds, '—' where none exists,
and Markdown tables of them."""

from __future__ import annotations

NONE = "—"  # shown wherever a number does not exist (run missing, target never reached)


def fmt(value: float | None, digits: int = 4) -> str:
    return NONE if value is None else f"{value:.{digits}f}"


def fmt_ms(mean: float | None, std: float | None, digits: int = 4) -> str:
    """'1.2345 ± 0.0123', just the mean for one seed, '—' for none."""
    if mean is None:
        return NONE
    return fmt(mean, digits) + ("" if std is None else f" ± {std:.{digits}f}")


def fmt_speedup(row: dict) -> str:
    """A `main_table` row's speed-up: '2.0× (step 50)', '—' when the target was never reached."""
    if row["speedup"] is None:
        return NONE
    return f"{row['speedup']:.1f}× (step {row['speedup_step']})"


def md_table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; `align` has one letter per column: l(eft) or r(ight)."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]


def label(row: dict) -> str:
    """A mixture's name as column or row heading: the reference is marked as such."""
    return row["mixture"] + (" (reference)" if row["is_reference"] else "")


def text_table(table: list[dict]) -> list[str]:
    """The mixtures as plain-text lines for a terminal: average and worst-case log-ppl, DoReMi's
    worst-case and average excess (mean ± std over seeds), speed-up (of the seed-mean curve)."""
    base = next((r["excess_baseline"] for r in table if r.get("excess_baseline")), None)
    head = f"{'mixture':<22} {'average log-ppl':>17} {'worst-case':>17} "
    if base:
        head += f"{'worst excess':>17} {'average excess':>17} "
    lines = [head + f"{'speed-up':>16}"]
    for r in table:
        line = (f"{label(r):<22} {fmt_ms(r['average'], r['average_std']):>17} "
                f"{fmt_ms(r['worst'], r['worst_std']):>17} ")
        if base:
            line += (f"{fmt_ms(r['worst_excess'], r['worst_excess_std']):>17} "
                     f"{fmt_ms(r['average_excess'], r['average_excess_std']):>17} ")
        lines.append(line + f"{fmt_speedup(r):>16}")
    if base:
        lines.append(f"excess: log-ppl above {base}, per domain; DoReMi minimises its worst case")
    return lines
