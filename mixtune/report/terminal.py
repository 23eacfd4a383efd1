"""What `mixtune run` and `mixtune demo` print when they finish: each mixture's weights, each
mixture's results, and the verdict, in plain text (the report has the same in Markdown)."""

from __future__ import annotations

from pathlib import Path


def print_outcome(out: Path) -> None:
    """The weights, the results table and the verdict of the finished run in `out`."""
    from mixtune.mixing.target import AVERAGE, target_text
    from mixtune.report.collect import OutputFolder
    from mixtune.report.tables import text_table
    from mixtune.report.verdict_section import plain_sentence

    folder = OutputFolder.read(out)  # summary.json and the runs, read once
    summary = folder.summary
    names = list(summary.mixtures)
    print("\n" + "domain".ljust(16) + "".join(n.rjust(12) for n in names))
    for d in summary.domains:
        print(d.ljust(16) + "".join(f"{summary.mixtures[n][d]:12.3f}" for n in names))
    target = None if summary.target == AVERAGE else target_text(summary.target)
    print("\n" + "\n".join(text_table(folder.table, target)))
    print(plain_sentence(folder.verdict))
    from mixtune.mixing import METHODS

    for name, record in summary.methods.items():  # a method's doubts about its own proposal
        method = METHODS.get(name)
        for line in method.warnings(record) if method is not None else []:
            print(f"warning: {line}")
