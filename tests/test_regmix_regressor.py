"""benchmarks/regmix_regressor.py: the paired table of a refitted RegMix, on hand-written runs."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from mixtune.errors import UserError

_spec = importlib.util.spec_from_file_location(
    "regmix_regressor", Path(__file__).parents[1] / "benchmarks" / "regmix_regressor.py")
rr = importlib.util.module_from_spec(_spec)
sys.modules["regmix_regressor"] = rr
_spec.loader.exec_module(rr)


def _runs(scale: Path, folder: str, averages: list[float]) -> None:
    for seed, avg in enumerate(averages):
        run = scale / folder / f"seed-{seed}"
        run.mkdir(parents=True)
        (run / "eval.json").write_text(json.dumps({"average": avg}))


def test_table_pairs_each_mixture_with_natural_and_the_refit_with_each(tmp_path):
    _runs(tmp_path, "main/natural", [2.0, 2.1, 2.2])
    _runs(tmp_path, "main/regmix", [2.05, 2.16, 2.24])  # worse than natural by 0.05 ± 0.01
    _runs(tmp_path, "main/uniform", [1.95, 2.05, 2.15])
    (tmp_path / "main" / "unimax").mkdir()  # never ran: no row
    _runs(tmp_path, "extra/regmix-loglinear", [1.9, 2.0, 2.1])  # better by exactly 0.1
    rows = rr.table(tmp_path, "regmix-loglinear", [0, 1, 2])
    by = {r[0]: r for r in rows[1:]}
    assert rows[0][4] == "regmix-loglinear − it"
    assert list(by) == ["natural", "regmix", "uniform", "regmix-loglinear"]
    assert by["natural"][1:] == ["2.1000 ± 0.1000", "—", "—", "-0.1000 ± 0.0000",
                                 "[-0.1000, -0.1000]"]
    assert by["regmix"][2] == "+0.0500 ± 0.0100" and by["regmix"][4] == "-0.1500 ± 0.0100"
    assert by["uniform"][4] == "-0.0500 ± 0.0000"
    assert by["regmix-loglinear"][2] == "-0.1000 ± 0.0000" and by["regmix-loglinear"][4] == "—"


def test_a_seed_not_finished_is_left_out_of_the_pairs(tmp_path):
    _runs(tmp_path, "main/natural", [2.0, 2.1, 2.2])
    _runs(tmp_path, "extra/regmix-loglinear", [1.9])
    by = {r[0]: r for r in rr.table(tmp_path, "regmix-loglinear", [0, 1, 2])[1:]}
    assert by["regmix-loglinear"][1] == "1.9000" and by["regmix-loglinear"][2] == "—"


def test_a_study_without_a_swarm_is_refused(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "study.yaml").write_text("seeds: [0]\n")
    with pytest.raises(UserError, match="no scale with a finished swarm"):
        rr.scales(tmp_path)
