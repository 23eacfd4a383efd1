"""The leaderboard in each of its formats, and beside a pipeline's report."""

from __future__ import annotations

from pathlib import Path

from mixtune.io import write_text_atomic
from mixtune.leaderboard.board import collect, curves, to_board, to_csv, to_markdown


def leaderboard_text(paths: list[Path], fmt: str = "md", *, tasks: bool = False,
                     proxies: bool = False, title: str = "mixtune leaderboard") -> tuple[str, list[str]]:
    """The leaderboard of the models under `paths` as md, csv or html; and the join's notes."""
    rows, notes = collect(paths, proxies=proxies)
    if fmt == "csv":
        return to_csv(rows, tasks=tasks), notes
    if fmt == "html":
        from mixtune.leaderboard.html import render_html

        return render_html(to_board(rows, title, curves(rows))), notes
    return to_markdown(rows, tasks=tasks), notes


def write_leaderboard(output: Path, report_dir: Path) -> tuple[str, list[str]]:
    """`report_dir/leaderboard.{md,html}` for a pipeline's main models (not the references and
    proxies of its rounds, trained for other budgets); the Markdown table."""
    main = Path(output) / "main"
    if not main.is_dir():
        return "(no main model has finished yet)\n", []
    md, notes = leaderboard_text([main])
    html, _ = leaderboard_text([main], "html", title=f"{Path(output).name}: leaderboard")
    write_text_atomic(report_dir / "leaderboard.md", md)
    write_text_atomic(report_dir / "leaderboard.html", html)
    return md, notes
