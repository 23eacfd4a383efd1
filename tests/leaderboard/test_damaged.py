"""Damaged records (issue 23, item 2): each kind is skipped with a note naming its file and field,
and the board still renders, in every format; `--out` at a folder (item 7).

A tree laid out as `mixtune run` lays it out, by hand: OUTPUT/data/dataset, and two main runs,
`natural` (left whole) and `victim` (whose records each case damages).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixtune.errors import UserError
from mixtune.io import write_json_atomic
from mixtune.leaderboard.write import leaderboard_text, write_board
from mixtune.provenance import (
    DATASET_RECORD,
    MODEL_RECORD,
    RecordError,
    model_record,
    new_record,
    read_record,
    write_eval_record,
    write_model_record,
)
from mixtune.records import Metrics
from tests.leaderboard.test_board import table_lines
from tests.leaderboard.test_html import assert_well_formed

FORMATS = ("md", "csv", "html")


def _run(out: Path, mixture: str, ppl: float) -> Path:
    """A finished main run: its model record, one evaluation, metrics.jsonl with two evaluations."""
    dataset = out / "data" / "dataset"
    ds = json.loads((dataset / DATASET_RECORD).read_text())
    run = out / "main" / mixture / "seed-0"
    model = write_model_record(
        run, dataset_name="dataset", dataset_uuid=ds["uuid"], dataset_path=str(dataset.resolve()),
        method="static", mixture={"name": mixture, "spec": mixture, "weights": {"a": 0.5, "b": 0.5}},
        hyperparameters={"scale": "tiny", "tokens": 4096, "seed": 0, "global_bs": 4, "seq_len": 32})
    write_eval_record(run, model, Core=0.1, Core_tasks="1/22",
                      eval_metrics={"average_log_ppl": ppl, "mean_bpb": ppl / 2,
                                    "icl": {"hellaswag": 0.3}})
    rows = [{"kind": "eval", "step": s, "average": ppl + 1 / s, "log_ppl": {"a": ppl}}
            for s in (8, 16)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


@pytest.fixture
def tree(tmp_path):
    out = tmp_path / "out"
    write_json_atomic(out / "data" / "dataset" / DATASET_RECORD, new_record("dataset", kind="dataset"))
    _run(out, "natural", 3.0)
    _run(out, "victim", 3.5)
    return out


def _edit(path: Path, change) -> None:
    """Rewrite the JSON record at `path` with `change(record)` applied (its return value, if any,
    replaces it)."""
    record = json.loads(path.read_text())
    new = change(record)
    path.write_text(json.dumps(record if new is None else new))


def _model(out):
    return out / "main" / "victim" / "seed-0" / MODEL_RECORD


def _eval(out):
    return next((out / "main" / "victim" / "seed-0" / "evals").glob("*.json"))


def _dataset(out):
    return out / "data" / "dataset" / DATASET_RECORD


def _set(*keys, value):
    def change(record):
        for key in keys[:-1]:
            record = record[key]
        record[keys[-1]] = value
    return change


def _drop(*keys):
    def change(record):
        for key in keys[:-1]:
            record = record[key]
        del record[keys[-1]]
    return change


def _folder(out):
    folder = out / "main" / "victim" / "seed-0" / "evals" / "x.json"
    folder.mkdir()
    return folder


def _replace_with_folder(path: Path) -> Path:
    path.unlink()
    path.mkdir()
    return path


# name: (damage(out) -> the damaged file, what the note says of it; None: no note, the row stays)
DAMAGE = {
    "model: a JSON list": (lambda o: _bytes(_model(o), b"[1, 2]"), "not a JSON object"),
    "eval: a JSON list": (lambda o: _bytes(_eval(o), b"[1]"), "not a JSON object"),
    "dataset: a JSON list": (lambda o: _bytes(_dataset(o), b"[]"), "not a JSON object"),
    "model: cut short": (lambda o: _bytes(_model(o), b'{"uuid": "ab'), "not valid JSON"),
    "eval: not UTF-8": (lambda o: _bytes(_eval(o), b'{"uuid": "\xff\xfe"}'), "not valid JSON"),
    "model: no uuid": (lambda o: _json(_model(o), _drop("uuid")), '"uuid" is missing'),
    "eval: no uuid": (lambda o: _json(_eval(o), _drop("uuid")), '"uuid" is missing'),
    "dataset: no uuid": (lambda o: _json(_dataset(o), _drop("uuid")), '"uuid" is missing'),
    "eval: no model_uuid": (lambda o: _json(_eval(o), _drop("model_uuid")), '"model_uuid" is missing'),
    "eval: model_uuid 7": (lambda o: _json(_eval(o), _set("model_uuid", value=7)), '"model_uuid" is 7'),
    "model: no hyperparameters": (lambda o: _json(_model(o), _drop("hyperparameters")),
                                  '"hyperparameters" is missing'),
    "model: hyperparameters a string": (lambda o: _json(_model(o), _set("hyperparameters", value="x")),
                                        '"hyperparameters" is "x", not a mapping'),
    "model: mixture null": (lambda o: _json(_model(o), _set("mixture", value=None)), '"mixture" is null'),
    "model: mixture without a name": (lambda o: _json(_model(o), _drop("mixture", "name")),
                                      '"mixture.name" is missing'),
    "model: weights a list": (lambda o: _json(_model(o), _set("mixture", "weights", value=[1])),
                              '"mixture.weights" is [1]'),
    "model: tokens many": (lambda o: _json(_model(o), _set("hyperparameters", "tokens", value="many")),
                           '"hyperparameters.tokens" is "many", not an integer'),
    "model: seed a string": (lambda o: _json(_model(o), _set("hyperparameters", "seed", value="0")),
                             '"hyperparameters.seed" is "0"'),
    "model: no dataset_name": (lambda o: _json(_model(o), _drop("dataset_name")),
                               '"dataset_name" is missing'),
    "model: a folder": (lambda o: _replace_with_folder(_model(o)), "a folder"),
    "eval: Core high": (lambda o: _json(_eval(o), _set("Core", value="high")),
                        '"Core" is "high", not a number'),
    "eval: eval_metrics a list": (lambda o: _json(_eval(o), _set("eval_metrics", value=[1])),
                                  '"eval_metrics" is [1], not a mapping'),
    "eval: a task's score text": (lambda o: _json(_eval(o), _set("eval_metrics", "icl", "hellaswag",
                                                                   value="x")),
                                  '"eval_metrics.icl.hellaswag" is "x"'),
    "eval: creation_date 5": (lambda o: _json(_eval(o), _set("creation_date", value=5)),
                              '"creation_date" is 5, not text'),
    "eval: of another kind": (lambda o: _json(_eval(o), _set("kind", value="model")),
                              '"kind" is "model"'),
    "evals/x.json a folder": (_folder, "a folder"),
    "metrics.jsonl: not UTF-8": (lambda o: _append(o / "main" / "victim" / "seed-0" / "metrics.jsonl",
                                                   b'{"kind": "eval", "step": 20, "x": "\xff"}\n'),
                                 None),
}


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _json(path: Path, change) -> Path:
    _edit(path, change)
    return path


def _append(path: Path, data: bytes) -> Path:
    with open(path, "ab") as f:
        f.write(data)
    return path


def _rows(text: str, fmt: str) -> list[str]:
    """The mixtures the board ranks, in order."""
    if fmt == "md":
        return [line.split("|")[3].strip() for line in table_lines(text)[2:]]
    if fmt == "csv":
        import csv
        import io

        return [r["mixture"] for r in csv.DictReader(io.StringIO(text))]
    assert_well_formed(text)
    return [m for m in ("natural", "victim") if f'data-v="{m}"' in text]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_record_is_a_note_not_a_traceback(tree, kind, fmt):
    damage, says = DAMAGE[kind]
    damaged = damage(tree)
    text, notes = leaderboard_text([tree], fmt, tasks=True)
    rows = _rows(text, fmt)
    if says is None:  # a damaged line of metrics.jsonl is skipped, as a torn line is
        assert rows == ["natural", "victim"] and notes == []
        return
    # A dataset's models still rank, without its record; a folder named like an evaluation
    # takes nothing from the run's real one.
    kept = kind.startswith(("dataset", "evals/"))
    assert rows == (["natural", "victim"] if kept else ["natural"])
    mine = [n for n in notes if str(damaged) in n]
    assert len(mine) == 1 and mine[0].startswith("skipped ") and says in mine[0], notes
    # The run whose model record is damaged gets one note, not another for its evaluation.
    assert not any("is not under the given folders" in n for n in notes), notes


def test_the_command_prints_the_board_and_the_note(tree):
    _edit(_model(tree), _set("hyperparameters", "tokens", value="many"))
    proc = subprocess.run([sys.executable, "-m", "mixtune", "leaderboard", str(tree)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "| natural |" in proc.stdout and "victim" not in proc.stdout
    assert f"note: skipped {_model(tree)}: field \"hyperparameters.tokens\"" in proc.stderr


def test_read_record_names_the_file_and_the_field(tree):
    _edit(_model(tree), _set("mixture", "weights", "a", value="half"))
    with pytest.raises(RecordError) as caught:
        model_record(_model(tree).parent)
    message = str(caught.value)
    assert isinstance(caught.value, UserError) and "\n" not in message
    assert message.startswith(f"{_model(tree)}: field \"mixture.weights.a\" is \"half\", not a number")
    # A reader that needs more asks for it; a record of another kind is not taken for one.
    with pytest.raises(RecordError, match='"hyperparameters.lr" is missing'):
        read_record(tree / "main" / "natural" / "seed-0" / MODEL_RECORD, "model",
                    {"hyperparameters.lr": "number"})
    with pytest.raises(RecordError, match='"kind" is "eval"'):
        read_record(_eval(tree), "model")


def test_metrics_with_bytes_that_are_not_utf8_keep_their_other_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(b'{"kind": "eval", "step": 4, "average": 2.0}\n'
                     b'{"kind": "eval", "step": 6, "average": "\xff"}\n'
                     b'{"kind": "eval", "step": 8, "average": 1.5}\n')
    assert Metrics.read(path).eval_average == {4: 2.0, 8: 1.5}


# -- --out --------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
def test_out_at_a_folder_writes_leaderboard_in_it(tmp_path, fmt):
    assert write_board(tmp_path, "board", fmt) == tmp_path / f"leaderboard.{fmt}"
    assert (tmp_path / f"leaderboard.{fmt}").read_text() == "board"
    new = f"{tmp_path}/new/"  # a path ending in / is a folder, made if need be
    assert write_board(new, "board", fmt) == tmp_path / "new" / f"leaderboard.{fmt}"
    assert write_board(tmp_path / "b.txt", "board", fmt) == tmp_path / "b.txt"  # a file: as named


def test_out_that_cannot_be_written_is_one_line(tmp_path):
    (tmp_path / "leaderboard.md").mkdir()
    with pytest.raises(UserError, match="leaderboard.md: a folder"):
        write_board(tmp_path, "board")
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a file, not a folder"):
        write_board(tmp_path / "file" / "board.md", "board")


def test_the_command_writes_into_a_folder_given_to_out(tree, tmp_path):
    def board(*args):
        return subprocess.run([sys.executable, "-m", "mixtune", "leaderboard", str(tree), *args],
                              capture_output=True, text=True)

    folder = tmp_path / "boards"
    folder.mkdir()
    proc = board("--format", "csv", "--out", str(folder))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == f"leaderboard: {folder / 'leaderboard.csv'}\n"
    assert (folder / "leaderboard.csv").read_text().startswith("rank,dataset,mixture")
    (folder / "leaderboard.md").mkdir()
    proc = board("--out", str(folder))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().endswith("leaderboard.md in it.") and proc.stderr.count("\n") == 1
