"""The report of a `mixtune run`: which mixture won, by how much, and the plots behind it.

Reads the output folder (`summary.json` and the run folders it names) and writes
`OUTPUT/report/report.md` with PNG plots beside it.

    collect    reading the output folder; the per-mixture numbers (`main_table`)
    tables     a mixture row as the report writes it (numbers and tables: mixtune.tables)
    plots      the figures
    markdown   the sections of report.md, `write_report`
"""

from mixtune.report.collect import load_summary, main_table
from mixtune.report.markdown import REPORT_DIR, write_report
from mixtune.report.plots import moving_average
from mixtune.report.tables import fmt_speedup
from mixtune.tables import fmt, fmt_ms, mean_std

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
