"""Plain-text tables for the terminal: the first column left-aligned (names), the others
right-aligned (numbers), a rule under the header. One helper, so every command's tables look alike."""

from __future__ import annotations

from collections.abc import Sequence


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """`rows[0]` is the header; every row has as many cells as it."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def from_dicts(rows: list[dict]) -> list[str]:
    """Rows of the same keys (the header), values as `str` gives them."""
    if not rows:
        return []
    cols = list(rows[0])
    return aligned([cols] + [[str(r[c]) for c in cols] for r in rows])
