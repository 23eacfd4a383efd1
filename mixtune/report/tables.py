"""How the report writes a mixture's row (speed-up, name, the terminal table); the number and
table helpers themselves are `mixtune.tables`."""

from __future__ import annotations

from mixtune.tables import NONE, fmt_ms


def fmt_speedup(row: dict) -> str:
    """A `main_table` row's speed-up: '2.0× (step 50)', '—' when the target was never reached."""
    if row["speedup"] is None:
        return NONE
    return f"{row['speedup']:.1f}× (step {row['speedup_step']})"


def label(row: dict) -> str:
    """A mixture's name as column or row heading: the reference is marked as such."""
    return row["mixture"] + (" (reference)" if row["is_reference"] else "")


def text_table(table: list[dict], target: str | None = None) -> list[str]:
    """The mixtures as plain-text lines for a terminal: the run's target when it is not the
    average (`target`: its name; the rows are ranked by it), average and worst-case log-ppl,
    DoReMi's worst-case and average excess (mean ± std over seeds), speed-up (of the seed-mean
    curve)."""
    base = next((r["excess_baseline"] for r in table if r.get("excess_baseline")), None)
    head = f"{'mixture':<22} " + (f"{'target':>17} " if target else "")
    head += f"{'average log-ppl':>17} {'worst-case':>17} "
    if base:
        head += f"{'worst excess':>17} {'average excess':>17} "
    lines = [head + f"{'speed-up':>16}"]
    for r in table:
        line = f"{label(r):<22} "
        if target:
            line += f"{fmt_ms(r['objective'], r['objective_std']):>17} "
        line += (f"{fmt_ms(r['average'], r['average_std']):>17} "
                 f"{fmt_ms(r['worst'], r['worst_std']):>17} ")
        if base:
            line += (f"{fmt_ms(r['worst_excess'], r['worst_excess_std']):>17} "
                     f"{fmt_ms(r['average_excess'], r['average_excess_std']):>17} ")
        lines.append(line + f"{fmt_speedup(r):>16}")
    if target:
        lines.append(f"target: {target} (lower is better), which ranks the rows")
    if base:
        lines.append(f"excess: log-ppl above {base}, per domain; DoReMi minimises its worst case")
    return lines
