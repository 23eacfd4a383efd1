"""One model identity, one row, one name: a main run reused from DoReMi's round-1 reference (a link,
main/natural/seed-0 -> round-1/reference) ranks with the main runs of its other seeds."""

import json
import os
from pathlib import Path

import pytest

from mixtune.io import write_json_atomic
from mixtune.leaderboard.board import collect, to_markdown
from mixtune.mixing.iterated_doremi import reference_file
from mixtune.pipeline import run_pipeline
from mixtune.provenance import (
    DATASET_RECORD,
    MODEL_RECORD,
    new_record,
    read_record,
    write_eval_record,
    write_model_record,
)
from tests.leaderboard.test_board import table_lines
from tests.pipeline.test_pipeline import write_config

UNIFORM = {"a": 0.5, "b": 0.5}


def _run(run: Path, out: Path, name: str, spec: Path, seed: int, ppl: float) -> None:
    """A finished static run as `mixtune run` leaves it, trained on the weights file `spec`."""
    dataset = out / "data" / "dataset"
    ds = read_record(dataset / DATASET_RECORD)
    model = write_model_record(
        run, dataset_name="dataset", dataset_uuid=ds["uuid"], dataset_path=str(dataset),
        method="static", mixture={"name": name, "spec": str(spec), "weights": UNIFORM},
        hyperparameters={"scale": "tiny", "tokens": 1024, "seed": seed, "mixing": {"weights": str(spec)}})
    write_eval_record(run, model, eval_metrics={"average_log_ppl": ppl})


@pytest.fixture
def older_output(tmp_path):
    """An output of a mixtune before the reference weights were named after their mixture: round-1's
    reference trained on round-1/reference_weights.json (its record names mixture
    `reference_weights`), and main/natural/seed-0 links to it; seed 1 trained on its own."""
    out = tmp_path / "out"
    write_json_atomic(out / "data" / "dataset" / DATASET_RECORD, new_record("dataset", kind="dataset"))
    write_json_atomic(out / "summary.json", {"main_runs": {}})
    _run(out / "round-1" / "reference", out, "reference_weights",
         out / "round-1" / "reference_weights.json", 0, 3.0)
    _run(out / "main" / "natural" / "seed-1", out, "natural", out / "mixtures" / "natural.json", 1, 3.2)
    (out / "main" / "natural" / "seed-0").symlink_to(Path("..", "..", "round-1", "reference"),
                                                   target_is_directory=True)
    return out


@pytest.mark.parametrize("where", [("main",), ()])
def test_a_reused_reference_is_one_row_with_the_other_seeds(older_output, where):
    """Asked for the main runs (the report) or the whole output (the reference is found twice)."""
    rows, notes = collect([older_output.joinpath(*where)])
    assert notes == [] and len(rows) == 1
    (row,) = rows
    assert [e.model["hyperparameters"]["seed"] for e in row.entries] == [0, 1]
    assert row.stat("avg_log_ppl")["n"] == 2
    assert row.entries[0].run == older_output / "main" / "natural" / "seed-0"  # the main run's place
    (line,) = table_lines(to_markdown(rows))[2:]
    assert "| natural |" in line and "| 0,1 |" in line and "reference_weights" not in line


def test_another_mixture_with_the_same_name_is_another_row(older_output):
    other = dict(UNIFORM, a=0.25, b=0.75)
    path = older_output / "main" / "natural" / "seed-1" / MODEL_RECORD
    record = json.loads(path.read_text())
    record["mixture"]["weights"] = other
    path.write_text(json.dumps(record))
    rows, _ = collect([older_output / "main"])
    assert len(rows) == 2  # the numbers count, not only the name


def test_mixtures_that_are_one_model_are_named_together(tmp_path):
    """UniMax's weights equal uniform's when no domain hits its epoch cap: `mixtune run` links
    main/unimax/seed-S to ../uniform/seed-S, and the board's one row names both."""
    out = tmp_path / "out"
    write_json_atomic(out / "data" / "dataset" / DATASET_RECORD, new_record("dataset", kind="dataset"))
    write_json_atomic(out / "summary.json", {"main_runs": {}})
    for seed in (0, 1):
        _run(out / "main" / "uniform" / f"seed-{seed}", out, "uniform",
             out / "mixtures" / "uniform.json", seed, 3.0 + seed)
        (out / "main" / "unimax" / f"seed-{seed}").parent.mkdir(parents=True, exist_ok=True)
        (out / "main" / "unimax" / f"seed-{seed}").symlink_to(Path("..", "uniform", f"seed-{seed}"),
                                                              target_is_directory=True)
    _run(out / "main" / "natural" / "seed-0", out, "natural", out / "mixtures" / "natural.json", 0, 3.5)
    for paths in ([out / "main"], [out]):
        rows, notes = collect(paths)
        assert notes == []
        assert {r.first.mixture: len(r.entries) for r in rows} == {"uniform = unimax": 2, "natural": 1}
    rows, _ = collect([out / "main" / "uniform"])  # the links not among the folders: its own name
    assert [r.first.mixture for r in rows] == ["uniform"]


def test_links_round_a_circle_end(older_output):
    os.symlink(older_output, older_output / "main" / "loop", target_is_directory=True)
    rows, notes = collect([older_output])
    assert notes == [] and len(rows) == 1 and len(rows[0].entries) == 2


def test_reference_weights_are_named_after_their_mixture(tmp_path):
    assert reference_file(tmp_path, 1, "natural") == "round-1/natural.json"
    assert reference_file(tmp_path, 1, str(tmp_path / "mine.json")) == "round-1/mine.json"
    assert reference_file(tmp_path, 3, "natural") == "round-3/doremi-round2.json"
    # A folder an older mixtune started keeps its file: its reference's config.yaml names it.
    write_json_atomic(tmp_path / "round-1" / "reference_weights.json", UNIFORM)
    assert reference_file(tmp_path, 1, "natural") == "round-1/reference_weights.json"
    assert reference_file(tmp_path, 2, "natural") == "round-2/doremi-round1.json"


@pytest.mark.slow
def test_a_run_reusing_its_reference_ranks_natural_once_with_both_seeds(tmp_path):
    """`mixtune run` with mixtures reference + doremi, two seeds, main runs of the reference's
    settings: main/natural/seed-0 is the round-1 reference; natural is one row, seeds 0,1."""
    same = {"scale": "tiny", "steps": 4, "batch_size": 8, "eval_every": 2}
    cfg = write_config(tmp_path / "run.yaml", tmp_path / "out", mixtures=["reference", "doremi"],
                       seeds=[0, 1], doremi={"rounds": 1}, proxy=same, main=same)
    out = run_pipeline(cfg)
    natural = out / "main" / "natural" / "seed-0"
    assert natural.is_symlink() and natural.resolve() == (out / "round-1" / "reference").resolve()
    assert read_record(natural / MODEL_RECORD)["mixture"]["name"] == "natural"
    for paths in ([out / "main"], [out]):
        rows, notes = collect(paths)
        assert notes == []
        seeds = {r.first.mixture: [e.model["hyperparameters"]["seed"] for e in r.entries] for r in rows}
        assert seeds == {"natural": [0, 1], "doremi": [0, 1]}
    board = table_lines((out / "report" / "leaderboard.md").read_text())[2:]
    assert len(board) == 2 and any("| natural |" in line and "| 0,1 |" in line for line in board)
