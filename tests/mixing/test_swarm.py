"""RegMix as an offline method of `mixtune run`: the swarm, its table, the fit, the proposal."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import mixtune.pipeline.plan as plan_module
from mixtune.errors import UserError
from mixtune.mixing.swarm import check_target, swarm_size, target_value
from mixtune.pipeline import run_pipeline
from mixtune.pipeline.config import load_run_config

pytest.importorskip("lightgbm")

SYNTHETIC = {"train_tokens": 12_000, "validation_tokens": 1_000, "doc_len": 64, "seq_len": 32}


def write_config(path: Path, output: Path, **over) -> Path:
    cfg = {
        "output": str(output),
        "data": {"synthetic": dict(SYNTHETIC)},
        "proxy": {"scale": "tiny", "steps": 6, "batch_size": 8},
        "main": {"scale": "tiny", "steps": 8, "batch_size": 8},
        "mixtures": ["reference", "regmix"], "seeds": [0],
        "regmix": {"proxies": 6, "candidates": 2000, "top": 20, "workers": 1},
        "train": {"checkpoint_every": 2, "eval_max_tokens_per_domain": 128},
    }
    cfg.update(over)
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def run_ids(out: Path, n: int) -> dict[str, str | None]:
    return {f"proxy-{i:03d}": json.loads((out / f"regmix/proxy-{i:03d}/stage.json").read_text())
            .get("run_id") if (out / f"regmix/proxy-{i:03d}/stage.json").is_file() else None
            for i in range(n)}


# -- units -----------------------------------------------------------------------------------------

def test_swarm_size_default_and_minimum():
    assert swarm_size(None, 2) == 8 and swarm_size(None, 5) == 20
    with pytest.raises(UserError, match="at least domains \\+ 1 = 6"):
        swarm_size(5, 5)


def test_a_fit_to_doubt_is_a_warning_when_the_run_ends():
    from mixtune.mixing.swarm import RegMix

    assert RegMix.warnings({"proxies": 12, "rank_correlation": 0.8}) == []
    assert "0.07, too low to trust" in RegMix.warnings({"proxies": 12, "rank_correlation": 0.07})[0]
    assert "learned nothing" in RegMix.warnings({"proxies": 8, "flat_fit": True,
                                                 "rank_correlation": 0.0})[0]
    with pytest.raises(UserError, match="run.yaml: regmix.proxies 3: a regression over 3"):
        swarm_size(3, 3, "run.yaml: regmix.proxies")


def test_target_is_checked_against_the_domains():
    assert check_target({"a": 1.0}, ["a", "b"]) == {"a": 1.0}
    assert check_target("downstream:core", ["a"]) == "downstream:core"
    with pytest.raises(UserError, match="no domain 'web'.*the dataset has a, b"):
        check_target({"web": 0.7, "a": 0.3}, ["a", "b"])


def test_target_value_average_leaves_downstream_measures_out():
    measures = {"a": 2.0, "b": 4.0, "downstream": 100.0}
    assert target_value(measures, "average", ["a", "b"]) == pytest.approx(3.0)
    assert target_value(measures, {"a": 3, "b": 1}, ["a", "b"]) == pytest.approx(2.5)
    assert target_value(measures, "downstream", ["a", "b"]) == 100.0
    assert target_value({"a": 2.0}, "average", ["a", "b"]) is None


@pytest.mark.parametrize("section, message", [
    ({"proxies": 1}, "proxies 1: must be at least 2"),
    ({"top": 50, "candidates": 10}, "top 50: at most candidates"),
    ({"target": {"a": -1}}, "weight of 'a' is -1"),
    ({"target": "downstream:core"}, "the proxies score no tasks"),
    ({"regressor": "xgboost"}, "xgboost"),
])
def test_bad_regmix_options_are_refused_when_the_config_loads(tmp_path, section, message):
    path = write_config(tmp_path / "c.yaml", tmp_path / "out", regmix=section)
    with pytest.raises(UserError, match=message):
        load_run_config(path)


# -- the swarm in a run ----------------------------------------------------------------------------

pytestmark_slow = pytest.mark.slow


@pytestmark_slow
def test_an_unknown_target_domain_stops_the_run_before_any_proxy_trains(tmp_path):
    path = write_config(tmp_path / "c.yaml", tmp_path / "out", regmix={"target": "web"})
    with pytest.raises(UserError, match="regmix.target: no domain 'web'") as e:
        run_pipeline(path)
    assert str(e.value).startswith(f"{path}: regmix.target")  # names the YAML it came from
    assert not (tmp_path / "out" / "regmix").exists()


@pytestmark_slow
def test_a_weights_file_the_dataset_refuses_names_the_yaml_and_its_key(tmp_path):
    (tmp_path / "w.json").write_text('{"web": 1}')
    path = write_config(tmp_path / "c.yaml", tmp_path / "out", mixtures=["reference", "w.json"])
    with pytest.raises(UserError, match=r"c.yaml: mixtures\[1\]: weights file .*w.json: "
                                        "unknown domain"):
        run_pipeline(path)


@pytestmark_slow
def test_regmix_finds_the_domain_only_its_own_data_lowers(tmp_path):
    """Disjoint generated domains: each domain's loss falls only with its own data. For the
    target `repeat` the fit must push its weight far above its token share (1/5)."""
    data = {"synthetic": {**SYNTHETIC, "disjoint": True}}
    # A main run of 2048 tokens takes 0.17 epochs of a domain of 12k tokens: a cap of 0.05 epochs
    # stands in for the 4 epochs of a long run on a small domain.
    path = write_config(tmp_path / "c.yaml", tmp_path / "out", data=data, max_epochs=0.05,
                        proxy={"scale": "tiny", "steps": 20, "batch_size": 8},
                        regmix={"proxies": 12, "target": "repeat", "regressor": "loglinear",
                                "candidates": 5000, "top": 20, "workers": 1})
    out = run_pipeline(path)
    summary = json.loads((out / "summary.json").read_text())
    capped = summary["capped"]["regmix"]["capped"]["repeat"]
    share = summary["mixtures"]["regmix"]["repeat"]
    assert share * capped["epochs_before"] / capped["epochs_after"] > 0.5  # what RegMix proposed
    assert capped["epochs_after"] == pytest.approx(0.05)  # what the main run trains on
    assert share < 0.5 and "regmix** capped at 0.05 epochs" in \
        (out / "report" / "report.md").read_text()
    record = summary["methods"]["regmix"]
    assert record["rank_correlation"] > 0.5
    assert record["predicted"]["regmix"] < record["predicted"]["natural"]
    rows = read_csv(out / "regmix" / "swarm.csv")
    assert len(rows) == 12 and "train_repeat" in rows[0] and "repeat" in rows[0]
    report = (out / "report" / "report.md").read_text()
    assert "## RegMix" in report and "| regmix |" in report


@pytestmark_slow
def test_a_killed_swarm_resumes_without_retraining_finished_proxies(tmp_path, monkeypatch,
                                                                    caplog):
    path = write_config(tmp_path / "c.yaml", tmp_path / "out")
    real, calls = plan_module._train, []

    def dies_on_the_fourth(tc, brief, folder):
        calls.append(tc.out)
        if len(calls) == 4 and "regmix/proxy" in tc.out:
            raise KeyboardInterrupt  # as ^C in the middle of the swarm
        real(tc, brief, folder)

    monkeypatch.setattr(plan_module, "_train", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(path)
    monkeypatch.setattr(plan_module, "_train", real)
    before = run_ids(tmp_path / "out", 6)
    finished = [p for p, rid in before.items() if rid]
    assert finished == ["proxy-000", "proxy-001", "proxy-002"]  # the swarm trains first
    caplog.clear()
    with caplog.at_level("INFO", logger="mixtune"):
        out = run_pipeline(path)
    assert "stage regmix/proxy-003: started by an earlier run; resuming it" in caplog.text
    assert "stage regmix/proxy-000: complete, skipped" in caplog.text
    after = run_ids(out, 6)
    assert all(after[p] == before[p] for p in finished)  # never retrained
    assert all(after.values())
    assert len(read_csv(out / "regmix" / "swarm.csv")) == 6


@pytestmark_slow
def test_the_swarm_as_two_local_tasks_equals_the_sequential_swarm(tmp_path):
    pytest.importorskip("datatrove")
    seq = run_pipeline(write_config(tmp_path / "a.yaml", tmp_path / "a"))
    par = run_pipeline(write_config(tmp_path / "b.yaml", tmp_path / "b",
                                    regmix={"proxies": 6, "candidates": 2000, "top": 20,
                                            "workers": 2}))
    a, b = read_csv(seq / "regmix" / "swarm.csv"), read_csv(par / "regmix" / "swarm.csv")
    assert [r["id"] for r in a] == [r["id"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        np.testing.assert_allclose([float(ra[k]) for k in ra if k != "id"],
                                   [float(rb[k]) for k in rb if k != "id"], rtol=1e-5)
    assert (par / "regmix" / "logs").is_dir()  # they did run as executor tasks


@pytestmark_slow
def test_every_method_and_baseline_trains_and_is_reported(tmp_path):
    path = write_config(tmp_path / "c.yaml", tmp_path / "out",
                        mixtures=["reference", "uniform", "unimax", "doremi", "regmix"])
    out = run_pipeline(path)
    summary = json.loads((out / "summary.json").read_text())
    names = {"natural", "uniform", "unimax", "doremi", "regmix"}
    assert names <= set(summary["mixtures"]) and names <= set(summary["main_runs"])
    for name in names:
        for rel in summary["main_runs"][name].values():
            assert (out / rel / "eval.json").is_file()
    assert names <= set(summary["methods"]["regmix"]["predicted"])
    report = (out / "report" / "report.md").read_text()
    section = report.split("## RegMix", 1)[1].split("\n## ", 1)[0]
    for name in names:
        assert f"| {name} |" in section
    assert "not yet" not in section  # every mixture measured
    assert "FLOPs" in section and report.count("training FLOPs") == 2  # RegMix's and DoReMi's
    # the leaderboard names every mixture, those that are one model in one row ("uniform = unimax")
    board = (out / "report" / "leaderboard.md").read_text().splitlines()
    rows = [line.split("|")[3].strip() for line in board if line.startswith("| ") and "---" not in line]
    assert names <= {name for cell in rows[1:] for name in cell.split(" = ")}
    # once: DoReMi's reference (natural, at the proxy's steps) is a method's run, not a row
    assert sum("natural" in cell.split(" = ") for cell in rows[1:]) == 1
