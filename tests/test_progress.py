"""Progress without a terminal: a line per `every` seconds through logging, none when not shown."""

import io
import logging
import sys

from mixtune.progress import Progress


def test_log_lines_and_a_silent_counter(monkeypatch, caplog):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, not a terminal
    caplog.set_level(logging.INFO, logger="mixtune.progress")
    shown = Progress("eval", 4, unit="item", every=0)
    hidden = Progress("eval", 4, unit="item", every=0, show=False)  # another rank's
    for p in (shown, hidden):
        p.update(1, task="piqa")
        p.update(3, task="arc_easy")
        p.close()
    lines = [r.getMessage() for r in caplog.records]
    assert [line.split(", ")[:2] for line in lines] == [
        ["eval: item 1/4 (25%)", "task piqa"], ["eval: item 4/4 (100%)", "task arc_easy"]]
    assert "item/s" in lines[0] and "ETA" in lines[0]
    assert hidden.n == 4 and sys.stderr.getvalue() == ""
