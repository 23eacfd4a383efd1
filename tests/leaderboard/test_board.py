"""Records link every score to its model and dataset; the leaderboard ranks and joins them."""

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from mixtune.io import write_json_atomic
from mixtune.leaderboard.board import collect, curves, to_board, to_csv, to_markdown
from mixtune.pipeline import run_pipeline
from mixtune.provenance import (
    DATASET_RECORD,
    MODEL_RECORD,
    new_record,
    read_record,
    write_eval_record,
    write_model_record,
)
from tests.pipeline.test_pipeline import write_config


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """A short `mixtune run`: tiny models, two mixtures, two seeds, the dataset's generated tasks."""
    tmp = tmp_path_factory.mktemp("board")
    cfg = write_config(tmp / "run.yaml", tmp / "out", mixtures=["reference", "doremi"], seeds=[0, 1],
                       doremi={"rounds": 1}, main={"scale": "tiny", "steps": 12, "batch_size": 8, "eval_every": 6},
                       eval={"tasks": "dataset", "limit": 8})
    return run_pipeline(cfg)


@pytest.mark.slow
def test_every_row_resolves_eval_model_dataset(pipeline):
    rows, notes = collect([pipeline / "main"])
    assert notes == []
    assert [r.first.model["mixture"]["name"] for r in rows] and len(rows) == 2
    dataset = read_record(pipeline / "data" / "dataset" / DATASET_RECORD) \
        if (pipeline / "data" / "dataset" / DATASET_RECORD).is_file() else None
    for row in rows:
        assert len(row.entries) == 2 and [e.model["hyperparameters"]["seed"] for e in row.entries] == [0, 1]
        for e in row.entries:
            model = read_record(e.run / MODEL_RECORD)
            assert e.evaluation["model_uuid"] == model["uuid"] == e.model["uuid"]
            assert e.evaluation["dataset_uuid"] == model["dataset_uuid"] == e.dataset["uuid"]
            assert e.dataset["kind"] == "dataset" and e.dataset["num_tokens"] > 0
            if dataset is not None:
                assert e.dataset["uuid"] == dataset["uuid"]
            assert e.evaluation["eval_metrics"]["average_log_ppl"] is not None
            assert e.evaluation["eval_metrics"]["mean_bpb"] is not None  # the generated tasks
        assert row.stat("avg_log_ppl")["n"] == 2
    # Ranked: no CORE here, so by mean BPB.
    bpb = [r.stat("mean_bpb")["mean"] for r in rows]
    assert bpb == sorted(bpb)
    # The report ends with the same leaderboard, and its page.
    report = (pipeline / "report" / "report.md").read_text()
    assert "## Leaderboard" in report and to_markdown(rows).splitlines()[2].split("|")[2] in report
    assert (pipeline / "report" / "leaderboard.html").is_file()
    # No CORE task here: the plot falls back to mean BPB, one point per evaluation of the runs.
    plot = curves(rows)
    assert plot["metric"] == "mean BPB" and len(plot["series"]) == 2
    assert [p[0] for p in plot["series"][0]["points"]] == [6 * 8 * 32, 12 * 8 * 32]


@pytest.mark.slow
def test_leaderboard_command_formats(pipeline, tmp_path):
    def run(*args):
        proc = subprocess.run([sys.executable, "-m", "mixtune", "leaderboard", str(pipeline / "main"),
                               *args],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    md = run("--tasks")
    # the run's verdict (from its summary.json) stands above the table
    assert md.startswith("Verdict, out: ") and "\n\n| # | dataset | mixture |" in md
    assert "doremi" in md and "natural" in md
    table = list(csv.DictReader(io.StringIO(run("--format", "csv"))))
    assert len(table) == 2 and all(len(r["model_uuids"].split()) == 2 for r in table)
    run("--format", "html", "--out", str(tmp_path / "board.html"))
    page = (tmp_path / "board.html").read_text()
    assert page.count('class="row') >= 2 and "http://" not in page and "https://" not in page
    everything = subprocess.run([sys.executable, "-m", "mixtune", "leaderboard", str(pipeline),
                                 "--proxies"], capture_output=True, text=True).stdout
    assert "doremi proxy" not in md and "doremi proxy" in everything


def test_an_evaluation_writes_a_new_record_never_rewrites(tmp_path):
    from mixtune.provenance import model_record, write_eval_record, write_model_record

    model = write_model_record(tmp_path, dataset_uuid="d", hyperparameters={})
    a = write_eval_record(tmp_path, model, x=1)
    b = write_eval_record(tmp_path, model, x=2)
    assert a != b and json.loads(a.read_text())["x"] == 1 and json.loads(b.read_text())["x"] == 2
    assert json.loads(a.read_text())["model_uuid"] == model_record(tmp_path)["uuid"]
    head = json.loads(a.read_text())
    assert {"uuid", "name", "creation_date", "mixtune_version", "git_commit"} <= set(head)


def test_missing_folder_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mixtune", "leaderboard", str(tmp_path / "nope")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "no such folder" in proc.stderr and "Traceback" not in proc.stderr


def table_lines(md: str) -> list[str]:
    """The lines of the board's table (head, rule, rows), without the line below it."""
    return [line for line in md.splitlines() if line.startswith("|")]


def _trained(run, dataset, mixture, ppl):
    """The records a finished static run leaves: its model's and one evaluation's."""
    ds = read_record(dataset / DATASET_RECORD)
    model = write_model_record(
        run, dataset_name=dataset.name, dataset_uuid=ds["uuid"], dataset_path=str(dataset.resolve()),
        method="static", mixture={"name": mixture, "spec": mixture, "weights": {"a": 1.0}},
        hyperparameters={"scale": "tiny", "tokens": 1024, "seed": 0})
    write_eval_record(run, model, eval_metrics={"average_log_ppl": ppl})


def test_the_dataset_column_names_the_dataset(tmp_path):
    """Every `mixtune run` prepares its data into OUTPUT/data/dataset: the board names such a
    dataset after its run, and any other after its folder, never `dataset` for them all."""
    runs = {"pile-run": tmp_path / "pile-run" / "data" / "dataset",
            "c4-run": tmp_path / "c4-run" / "data" / "dataset", "mydata": tmp_path / "mydata"}
    for i, (name, folder) in enumerate(runs.items()):
        write_json_atomic(folder / DATASET_RECORD, new_record(folder.name, kind="dataset"))
        _trained(tmp_path / name / "main" / "natural" / "seed-0", folder, "natural", ppl=3.0 + i)
    rows, notes = collect([tmp_path])
    assert notes == [] and len(rows) == 3
    names = ["pile-run", "c4-run", "mydata"]  # ranked by average log-ppl
    assert [line.split("|")[2].strip() for line in table_lines(to_markdown(rows))[2:]] == names
    assert [r["dataset"] for r in csv.DictReader(io.StringIO(to_csv(rows)))] == names
    assert [r["values"]["dataset"] for r in to_board(rows)["rows"]] == names


def test_a_doremi_reference_is_on_the_board_only_as_a_main_run(tmp_path):
    """DoReMi's round reference (OUTPUT/round-1/reference, on round-1/natural.json) is a method's
    run, like a proxy: shown with --proxies only, not as a second `natural` row. A main run
    identical to it is that run (a link), and stays."""
    data = tmp_path / "out" / "data" / "dataset"
    write_json_atomic(data / DATASET_RECORD, new_record("dataset", kind="dataset"))
    ds = read_record(data / DATASET_RECORD)

    def trained(run, spec, ppl, tokens):
        model = write_model_record(
            run, dataset_name="out", dataset_uuid=ds["uuid"], dataset_path=str(data),
            method="static", mixture={"name": "natural", "spec": str(spec), "weights": {"a": 1.0}},
            hyperparameters={"scale": "tiny", "tokens": tokens, "seed": 0})
        write_eval_record(run, model, eval_metrics={"average_log_ppl": ppl})

    out = tmp_path / "out"
    trained(out / "round-1" / "reference", out / "round-1" / "natural.json", 3.5, 512)
    trained(out / "main" / "natural" / "seed-0", "natural", 3.0, 1024)
    assert [r.first.model["hyperparameters"]["tokens"] for r in collect([out])[0]] == [1024]
    assert len(collect([out], proxies=True)[0]) == 2
    # The main run is the reference run itself: one model, found at both places, on the board.
    shutil.rmtree(out / "main" / "natural" / "seed-0")
    (out / "main" / "natural" / "seed-0").symlink_to(out / "round-1" / "reference")
    assert [r.first.model["hyperparameters"]["tokens"] for r in collect([out])[0]] == [512]


def test_a_run_with_its_own_target_says_the_board_ranks_otherwise(tmp_path):
    """The verdict above the board is on the run's target; the board ranks by its own measure,
    so a run whose target is not the average says so (the order could contradict the verdict)."""
    data = tmp_path / "out" / "data" / "dataset"
    write_json_atomic(data / DATASET_RECORD, new_record("dataset", kind="dataset"))
    _trained(tmp_path / "out" / "main" / "natural" / "seed-0", data, "natural", ppl=3.0)
    for target, noted in (({"web": 1.0}, True), ("average", False)):
        write_json_atomic(tmp_path / "out" / "summary.json",
                          {"target": target, "verdict": {"sentence": "Keep natural."}})
        md = to_markdown(collect([tmp_path / "out"])[0])
        assert md.startswith("Verdict, out: Keep natural.")
        assert ("not by this run's target; the run's report ranks by the target." in md) == noted
