"""Names from folders, YAML and task files in Markdown and CSV (issue 23, item 4): a name such as
`a|b<img src=x onerror=alert(1)>` adds no column to a table and no tag to a Markdown viewer that
passes HTML through; a CSV cell such as `=cmd|...` is not a formula to a spreadsheet.

The run folders are written by hand, laid out as `mixtune run` lays them out, with such names for
the output folder (the dataset's name on the board), mixtures, domains, tasks and a proxy's run.
"""

import csv
import html
import io
import json
import re
from pathlib import Path

from mixtune.io import write_json_atomic
from mixtune.leaderboard.board import collect, to_board, to_csv, to_markdown
from mixtune.leaderboard.html import render_html
from mixtune.provenance import DATASET_RECORD, new_record, write_eval_record, write_model_record
from mixtune.report import write_report
from mixtune.report.progress import write_progress
from mixtune.tables import Md, csv_cell, md_code, md_table, md_text

EVIL = "a|b<img src=x onerror=alert(1)>"
MIXTURE, DOMAIN, TASK = f"{EVIL} m", f"{EVIL} d", f"{EVIL} t"
FORMULA = "=cmd|' /C calc'!A0"


# -- the helpers -----------------------------------------------------------------------------------

def cells(line: str) -> list[str]:
    """A Markdown table row's cells as GFM splits them: on every `|` not escaped by a backslash."""
    assert line.startswith("| ") and line.endswith(" |"), line
    parts = re.findall(r"((?:\\.|[^|\\])*)\|", line[1:])
    return [p.strip() for p in parts]


def unescape(cell: str) -> str:
    """The text a viewer shows for an escaped cell."""
    return html.unescape(re.sub(r"\\(.)", r"\1", cell))


def tables(md: str) -> list[list[list[str]]]:
    """Every table in `md`: its rows' cells, the rule row left out."""
    found, current = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            current.append(cells(line))
        elif current:
            found.append([current[0], *current[2:]])
            current = []
    return found


def assert_safe(md: str) -> None:
    """No raw tag; every table's rows as wide as its header; rendered (where markdown-it-py is
    installed) with HTML passed through, no tag of a name's."""
    assert "<img" not in md and "<" not in md.replace("&lt;", "")
    for table in tables(md):
        assert {len(row) for row in table} == {len(table[0])}, table
    try:
        from markdown_it import MarkdownIt
    except ImportError:
        return
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert not re.search(r"<[^>]*onerror", rendered)  # the report's own figures are <img> here


def test_md_text_escapes_what_markdown_reads():
    assert md_text("a|b") == r"a\|b" and md_text("<b>&") == "&lt;b&gt;&amp;"
    assert md_text("x`y\\z") == r"x\`y\\z" and md_text("two\nlines\r\nhere") == "two lines here"
    assert unescape(md_text(EVIL)) == EVIL and md_text("plain name-1.5") == "plain name-1.5"
    assert md_code("runs/a") == "`runs/a`" and md_code(EVIL) == md_text(EVIL)


def test_md_table_escapes_text_cells_and_keeps_markdown_ones():
    lines = md_table(["name", "value"], [[EVIL, Md("**1.0**")], ["plain", "2|3"]], "lr")
    assert [len(cells(line)) for line in lines] == [2, 2, 2, 2]
    assert cells(lines[2]) == [md_text(EVIL), "**1.0**"] and unescape(cells(lines[3])[1]) == "2|3"


def test_csv_cell_neutralises_formulas_not_numbers():
    for text in ("=1+1", "+cmd", "-cmd", "@SUM(A1)", "\tx", "\rx", FORMULA):
        assert csv_cell(text) == "'" + text
    for value in ("-1.5", "+2", "-1e-3", -1.5, 3, "", "name", "a=b"):
        assert csv_cell(value) == value


# -- the leaderboard -------------------------------------------------------------------------------

def _board_tree(root: Path) -> Path:
    """A `mixtune run` output named EVIL with two main runs: mixture MIXTURE scored on TASK, and
    mixture FORMULA with a negative CORE and a task named like a formula."""
    out = root / EVIL
    dataset = out / "data" / "dataset"
    write_json_atomic(dataset / DATASET_RECORD, new_record("dataset", kind="dataset"))
    ds = json.loads((dataset / DATASET_RECORD).read_text())
    for mixture, core, task in ((MIXTURE, 0.2, TASK), (FORMULA, -0.05, "@SUM(A1)")):
        run = out / "main" / mixture / "seed-0"
        model = write_model_record(
            run, dataset_name="dataset", dataset_uuid=ds["uuid"], dataset_path=str(dataset),
            method="static", mixture={"name": mixture, "spec": mixture, "weights": {DOMAIN: 1.0}},
            hyperparameters={"scale": "tiny", "tokens": 1024, "seed": 0})
        write_eval_record(run, model, Core=core, eval_metrics={"average_log_ppl": 3.0,
                                                               "icl": {task: 0.5}})
    return out


def test_the_board_in_markdown(tmp_path):
    rows, notes = collect([_board_tree(tmp_path)])
    assert notes == [] and len(rows) == 2
    md = to_markdown(rows, tasks=True)
    assert_safe(md)
    (head, *body), = tables(md)
    assert len(head) == 13 and unescape(head[-1]) == TASK
    assert [unescape(c) for c in body[0][1:3]] == [EVIL, MIXTURE]
    assert unescape(body[1][2]) == FORMULA


def test_the_board_in_csv_and_html(tmp_path):
    rows, _ = collect([_board_tree(tmp_path)])
    table = list(csv.reader(io.StringIO(to_csv(rows, tasks=True))))
    head, first, second = table
    assert {len(r) for r in table} == {len(head)}
    assert head[-5:-3] == ["'@SUM(A1)", TASK]  # a header cell is a cell
    assert first[1:3] == [EVIL, MIXTURE] and second[2] == "'" + FORMULA
    assert second[head.index("core")] == "-0.05"  # a negative number is data
    page = render_html(to_board(rows))
    assert "<img" not in page and html.escape(EVIL) in page


# -- the report ------------------------------------------------------------------------------------

DOMAINS = ["web", DOMAIN]
MIXTURES = {MIXTURE: {"web": 0.5, DOMAIN: 0.5}, "uniform": {"web": 0.2, DOMAIN: 0.8}}


def _main_run(out: Path, mixture: str, offset: float) -> None:
    run = out / "main" / mixture / "seed-0"
    rows = []
    for step in (10, 20):
        log_ppl = {"web": 2.0 + offset - step / 100, DOMAIN: 2.5 + offset - step / 100}
        result = {"log_ppl": log_ppl, "tokens": dict.fromkeys(DOMAINS, 100),
                  "average": sum(log_ppl.values()) / 2, "worst": log_ppl[DOMAIN],
                  "worst_domain": DOMAIN}
        rows += [{"kind": "train", "step": step, "loss": 3.0 - step / 100, "mean_loss": 3.0,
                  "domain_sequences": {"web": 2, DOMAIN: 2}},
                 {"kind": "eval", "step": step, **result}]
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "eval.json").write_text(json.dumps({"step": 20, "split": "validation", **result}))
    model = write_model_record(
        run, dataset_name="dataset", dataset_uuid=None, dataset_path=str(out / "data" / "dataset"),
        method="static", mixture={"name": mixture, "spec": mixture, "weights": MIXTURES[mixture]},
        hyperparameters={"scale": "tiny", "tokens": 1024, "seed": 0})
    write_eval_record(run, model, eval_metrics={"average_log_ppl": result["average"]})


def _report_tree(root: Path) -> Path:
    out = root / EVIL
    _main_run(out, MIXTURE, 0.0)
    _main_run(out, "uniform", 0.1)
    history = [{"step": s, "weights": {"web": 0.5 - s / 1000, DOMAIN: 0.5 + s / 1000}}
               for s in range(1, 21)]
    proxy = out / "round-1" / EVIL
    proxy.mkdir(parents=True)
    (proxy / "weights_history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    rounds = [{"round": 1, "reference_weights": MIXTURES["uniform"], "linf": 0.1,
               "doremi_weights": MIXTURES[MIXTURE], "proxy_run": f"round-1/{EVIL}"},
              {"round": 2, "proxy_run": f"round-2/{EVIL}"}]  # no history: named by its path
    regmix = {"proxies": 8, "regressor": EVIL, "target": {DOMAIN: 1}, "rank_correlation": 0.9,
              "predicted": {MIXTURE: 2.0, "uniform": 2.1}}
    summary = {"format_version": 2, "domains": DOMAINS, "reference_mixture": MIXTURE,
               "mixtures": MIXTURES, "methods": {"doremi": {"rounds": rounds}, "regmix": regmix},
               "main_runs": {MIXTURE: {"seed-0": f"main/{MIXTURE}/seed-0",
                                       "seed-1": f"main/{MIXTURE}/seed-1"},  # never ran
                             "uniform": {"seed-0": "main/uniform/seed-0"}},
               "dataset": f"data/{EVIL}", "max_epochs": 4.0,
               "capped": {MIXTURE: {"capped": {DOMAIN: {"epochs_before": 8, "epochs_after": 4}}}},
               "epochs": {}}
    (out / "summary.json").write_text(json.dumps(summary))
    return out


def test_the_report_and_its_leaderboard(tmp_path):
    """Every section that names a mixture, a domain, a path or a regressor."""
    out = _report_tree(tmp_path)
    md = write_report(out).read_text()
    assert_safe(md)
    weights = next(t for t in tables(md) if t[0][0] == "domain")
    assert [unescape(c) for c in weights[0]] == ["domain", MIXTURE, "uniform"]
    assert [unescape(r[0]) for r in weights[1:]] == DOMAINS
    regmix = next(t for t in tables(md) if t[0][0] == "mixture" and len(t[0]) == 3)
    assert [unescape(r[0]) for r in regmix[1:]] == [MIXTURE, "uniform"]
    assert md_text(EVIL) in md.split("## Leaderboard")[1]  # the board's dataset: the output's name
    board = (out / "report" / "leaderboard.md").read_text()
    assert_safe(board) and "<img" not in (out / "report" / "leaderboard.html").read_text()


def test_the_report_of_a_run_under_way(tmp_path):
    stage = tmp_path / "round-1" / EVIL
    write_json_atomic(stage / "stage.json", {"complete": False})
    (stage / "config.yaml").write_text("steps: 20\n")
    (stage / "weights_history.jsonl").write_text(
        json.dumps({"step": 1, "weights": {DOMAIN: 0.5, "web": 0.5}}) + "\n")
    md = write_progress(tmp_path, tmp_path / "report").read_text()
    assert_safe(md)
    (head, row), = tables(md)
    assert len(row) == len(head) == 3 and unescape(row[0]) == f"round-1/{EVIL}"
    assert DOMAIN in unescape(row[2])
