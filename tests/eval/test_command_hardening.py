"""`mixtune eval RUN` finds the run's dataset from any folder (issue 23, item 9a)."""

import json
from pathlib import Path

import pytest
import yaml

from mixtune.errors import UserError
from mixtune.eval.command import dataset_of


def fake_run(root: Path, data: str, recorded: str | None) -> Path:
    """A run folder as training leaves it: config.yaml with `data` as given, and final/."""
    run = root / "run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": data}))
    if recorded is not None:
        (run / "final" / "mixtune.json").write_text(json.dumps({"dataset": recorded}))
    return run


def test_a_relative_dataset_is_found_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "work" / "ds").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    run = fake_run(tmp_path, "ds", str(tmp_path / "work" / "ds"))  # trained in work/
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert dataset_of(run) == str(tmp_path / "work" / "ds")


def test_a_dataset_found_nowhere_asks_for_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = fake_run(tmp_path, "ds", "/gone/ds")
    with pytest.raises(UserError, match=r"its dataset ds \(recorded as /gone/ds in .*mixtune.json"
                                        r"\) is not found from .*; pass --data DATASET"):
        dataset_of(run)
    (tmp_path / "ds").mkdir()  # as given, from here: a run without the record, or one moved
    assert dataset_of(run) == "ds"
    assert dataset_of(fake_run(tmp_path / "b", "/abs/ds", None)) == "/abs/ds"


@pytest.mark.slow
def test_eval_of_a_run_trained_elsewhere(synthetic_dataset, tmp_path, monkeypatch):
    from mixtune.eval.command import run_eval
    from mixtune.eval.config import EvalOptions
    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    monkeypatch.chdir(synthetic_dataset.parent)
    out = run(train_config(data=synthetic_dataset.name, out=str(tmp_path / "run"), scale="tiny",
                           steps=2, batch_size=4, eval_max_tokens_per_domain=64))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = run_eval(str(out), EvalOptions(max_tokens_per_domain=64))
    assert set(result["log_ppl"]) == set(json.loads(
        (synthetic_dataset / "manifest.json").read_text())["domains"])
