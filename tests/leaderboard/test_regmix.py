"""RegMix on the leaderboard: its swarm proxies are proxies (shown only with --proxies), and what
it predicted for each mixture of a `mixtune run` stands beside what that mixture's runs measured.

The records are built by hand, laid out as `mixtune run` lays them out: OUTPUT/data/dataset,
OUTPUT/main/<mixture>/seed-S, OUTPUT/regmix/proxy-NNN with its mixture in OUTPUT/regmix/mixtures,
and OUTPUT/summary.json with methods.regmix.predicted.
"""

import csv
import io
import json

import pytest

from mixtune.io import write_json_atomic
from mixtune.leaderboard.board import collect, to_board, to_csv, to_markdown
from mixtune.leaderboard.html import render_html
from mixtune.provenance import DATASET_RECORD, new_record, write_eval_record, write_model_record
from tests.leaderboard.test_board import table_lines
from tests.leaderboard.test_html import assert_well_formed

COLUMN = "RegMix predicted (average)"


def _output(root, predicted=None, target="average"):
    """A `mixtune run` output folder with its dataset, and its summary when `predicted` is given."""
    dataset = root / "data" / "dataset"
    write_json_atomic(dataset / DATASET_RECORD, new_record("dataset", kind="dataset"))
    if predicted is not None:
        write_json_atomic(root / "summary.json", {"methods": {"regmix": {
            "target": target, "predicted": predicted}}})
    return root


def _run(run, output, mixture, ppl, *, seed=0, spec=None, method="static"):
    """The records a finished run leaves under `run`: its model's and one evaluation's."""
    dataset = output / "data" / "dataset"
    ds = json.loads((dataset / DATASET_RECORD).read_text())
    model = write_model_record(
        run, dataset_name="dataset", dataset_uuid=ds["uuid"], dataset_path=str(dataset.resolve()),
        method=method, mixture={"name": mixture, "weights": {"a": 1.0},
                                "spec": str(spec or output / "mixtures" / f"{mixture}.json")},
        hyperparameters={"scale": "tiny", "tokens": 1024, "seed": seed})
    write_eval_record(run, model, eval_metrics={"average_log_ppl": ppl})


def _mixtures(rows):
    return [r.first.model["mixture"]["name"] for r in rows]


def test_swarm_proxies_are_listed_only_when_asked(tmp_path):
    """RegMix's swarm are static runs on random mixtures: hidden like DoReMi's proxies, told apart
    by their mixture lying in regmix/mixtures; a run of the user's named proxy-… is no proxy."""
    out = _output(tmp_path / "out")
    _run(out / "main" / "natural" / "seed-0", out, "natural", 3.0)
    for i in range(2):
        name = f"proxy-{i:03d}"
        _run(out / "regmix" / name, out, name, 2.8 + i / 10, spec=out / "regmix" / "mixtures" / f"{name}.json")
    _run(out / "doremi" / "round-1" / "proxy", out, "doremi proxy", 2.5, method="doremi")
    _run(tmp_path / "mine" / "proxy-007", out, "proxy-007", 3.5, spec=tmp_path / "proxy-007.json")
    rows, notes = collect([tmp_path])
    assert notes == [] and _mixtures(rows) == ["natural", "proxy-007"]
    rows, _ = collect([tmp_path], proxies=True)
    assert _mixtures(rows) == ["doremi proxy", "proxy-000", "proxy-001", "natural", "proxy-007"]


def test_predicted_beside_measured(tmp_path):
    """A main run shows RegMix's prediction for its mixture, once however many seeds; a run
    elsewhere, or a mixture without a prediction, shows none; a second run with another target
    gets a column of its own."""
    out = _output(tmp_path / "out", {"natural": 5.1, "uniform": 5.3, "regmix": 4.9})
    for seed in (0, 1):
        _run(out / "main" / "natural" / f"seed-{seed}", out, "natural", 3.0 + seed / 10, seed=seed)
    _run(out / "main" / "uniform" / "seed-0", out, "uniform", 3.2)
    _run(out / "main" / "mine" / "seed-0", out, "mine", 3.3)  # not in the summary
    _run(out / "elsewhere" / "regmix", out, "regmix", 3.4)  # not a main run
    other = _output(tmp_path / "other", {"natural": 1.25}, target={"web": 1, "code": 2})
    _run(other / "main" / "natural" / "seed-0", other, "natural", 3.6)
    rows, notes = collect([tmp_path])
    assert notes == [] and _mixtures(rows) == ["natural", "uniform", "mine", "regmix", "natural"]
    other_column = "RegMix predicted (1·web, 2·code)"

    lines = table_lines(to_markdown(rows))
    head = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert head[-2:] == [COLUMN, other_column]
    cells = [[c.strip() for c in line.split("|")[1:-1]][-2:] for line in lines[2:]]
    assert cells == [["5.100", "—"], ["5.300", "—"], ["—", "—"], ["—", "—"], ["—", "1.250"]]

    table = list(csv.DictReader(io.StringIO(to_csv(rows, tasks=True))))
    assert [r[COLUMN] for r in table] == ["5.1", "5.3", "", "", ""]
    assert [r[other_column] for r in table] == ["", "", "", "", "1.25"]

    board = to_board(rows)
    column = next(c for c in board["columns"] if c["label"] == COLUMN)
    assert column["better"] == "lower" and column["kind"] == "number"
    assert [r["values"][column["key"]] for r in board["rows"]] == [5.1, 5.3, None, None, None]
    page = render_html(board)
    assert_well_formed(page)
    assert f">{COLUMN}</button>" in page and 'data-v="5.1">5.100<' in page


@pytest.mark.parametrize("summary", [
    None, "{not json", "[1, 2]", '{"methods": []}', '{"methods": {"regmix": {"predicted": 3}}}',
    '{"methods": {"regmix": {"predicted": {"natural": "5.1"}}}}',
    '{"methods": {"regmix": {"predicted": {"natural": NaN}}}}',
    '{"methods": {"regmix": {"predicted": {"natural": true}}}}',
    '{"methods": {"regmix": {"predicted": {"uniform": 5.1}}}}',
    '{"methods": {"doremi": {"rounds": 1}}}',
])
def test_no_prediction_no_column(tmp_path, summary):
    """A summary that is missing, damaged or says nothing for the mixture costs the column, never
    the board."""
    out = _output(tmp_path / "out")
    if summary is not None:
        (out / "summary.json").write_text(summary)
    _run(out / "main" / "natural" / "seed-0", out, "natural", 3.0)
    rows, notes = collect([out])
    assert notes == [] and _mixtures(rows) == ["natural"]
    assert "RegMix" not in to_markdown(rows) and "RegMix" not in to_csv(rows)
    assert "RegMix" not in render_html(to_board(rows))


def test_a_target_without_a_name_is_the_default(tmp_path):
    """A summary written without `target` predicted RegMix's default: average."""
    out = _output(tmp_path / "out")
    write_json_atomic(out / "summary.json", {"methods": {"regmix": {"predicted": {"natural": 5}}}})
    _run(out / "main" / "natural" / "seed-0", out, "natural", 3.0)
    rows, _ = collect([out / "main"])
    assert COLUMN in to_markdown(rows) and "| 5.000 |" in to_markdown(rows)
