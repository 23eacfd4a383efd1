"""The leaderboard in each of its formats, and beside a pipeline's report."""

from __future__ import annotations

import os
from pathlib import Path

from mixtune.errors import UserError
from mixtune.io import write_text_atomic
from mixtune.leaderboard.board import Row, collect, curves, to_board, to_csv, to_markdown


def leaderboard_text(paths: list[Path], fmt: str = "md", *, tasks: bool = False,
                     proxies: bool = False, title: str = "mixtune leaderboard",
                     rank_by: str = "auto") -> tuple[str, list[str]]:
    """The leaderboard of the models under `paths` as md, csv or html, ranked by `rank_by` (auto,
    core, mean_bpb, avg_log_ppl: board.ranking); and the join's notes."""
    rows, notes = collect(paths, proxies=proxies, rank_by=rank_by)
    return render(rows, fmt, tasks=tasks, title=title, rank_by=rank_by), notes


def render(rows: list[Row], fmt: str = "md", *, tasks: bool = False,
           title: str = "mixtune leaderboard", rank_by: str = "auto") -> str:
    if fmt == "csv":
        return to_csv(rows, tasks=tasks, rank_by=rank_by)
    if fmt == "html":
        from mixtune.leaderboard.html import render_html

        return render_html(to_board(rows, title, curves(rows, rank_by), rank_by=rank_by))
    return to_markdown(rows, tasks=tasks, rank_by=rank_by)


def write_board(out: str | os.PathLike, text: str, fmt: str = "md") -> Path:
    """`mixtune leaderboard --out OUT`: the board written to the file OUT, or, where OUT is a
    folder (one that exists, or a path ending in /), to OUT/leaderboard.<md|csv|html>; the file
    written. A path that cannot hold a file is a UserError naming it, not a traceback."""
    target = Path(out)
    if os.fspath(out).endswith(("/", os.sep)) or target.is_dir():
        target = target / f"leaderboard.{fmt}"
    if target.is_dir():
        raise UserError(f"{target}: a folder; give --out a file name, or a folder without a "
                        f"folder named leaderboard.{fmt} in it.")
    blocked = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocked is not None:
        raise UserError(f"{target}: {blocked} is a file, not a folder; give --out another path.")
    try:
        write_text_atomic(target, text)
    except PermissionError as e:
        raise UserError(f"{target}: cannot be written ({e.strerror}); give --out another "
                        "path.") from None
    return target


def write_leaderboard(output: Path, report_dir: Path, rank_by: str = "auto") -> tuple[str, list[str]]:
    """`report_dir/leaderboard.{md,html}` for a pipeline's main models (not the references and
    proxies of its rounds, trained for other budgets), ranked by `rank_by` (as
    `mixtune leaderboard --rank-by`; the report passes "avg_log_ppl", its own ranking); the
    Markdown table, with the line below it that says by which measure."""
    main = Path(output) / "main"
    if not main.is_dir():
        return "(no main model has finished yet)\n", []
    rows, notes = collect([main], rank_by=rank_by)
    md = render(rows, rank_by=rank_by)
    write_text_atomic(report_dir / "leaderboard.md", md)
    write_text_atomic(report_dir / "leaderboard.html",
                      render(rows, "html", title=f"{Path(output).name}: leaderboard", rank_by=rank_by))
    return md, notes
