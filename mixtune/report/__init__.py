"""The report of a `mixtune run`: which mixture won, by how much, and the plots behind it.

Reads the output folder (`summary.json` and the run folders it names) and writes
`OUTPUT/report/report.md` with PNG plots beside it.

    collect    reading the output folder; the per-mixture numbers (`main_table`)
    tables     number formatting and Markdown tables
    plots      the figures
    markdown   the sections of report.md, `write_report`
"""

from mixtune.report.collect import load_summary, main_table, mean_std
from mixtune.report.markdown import REPORT_DIR, write_report
from mixtune.report.plots import moving_average
from mixtune.report.tables import fmt, fmt_ms, fmt_speedup

__all__ = [
    "REPORT_DIR",
    "fmt",
    "fmt_ms",
    "fmt_speedup",
    "load_summary",
    "main_table",
    "mean_std",
    "moving_average",
    "write_report",
]
