"""The stage runner on stages that only write files: skip, refuse, restart, force, dependants."""

import json

import pytest
import torch

from mixtune.distributed import Dist
from mixtune.errors import UserError
from mixtune.pipeline.runner import FORCE_RECORD, Runner
from mixtune.pipeline.stage import Stage, StageRecord, matches

ONE = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


class Interrupt(Exception):
    pass


def plan(calls, settings=None, fail_at=None):
    """data -> a -> b (b reads a's output, and its identity holds a's result, as a main run's
    holds the weights a proxy produced); c reads data only."""
    settings = settings or {}

    def stage(name, deps=(), identity=None):
        def run(folder):
            if name == fail_at:
                raise Interrupt(name)
            calls.append(name)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "out.txt").write_text(f"{name} {settings.get(name, 0)}")

        identity = identity or {"setting": settings.get(name, 0)}
        return Stage(name, identity, run, deps=deps)

    yield stage("data")
    a = yield stage("a", ("data",))
    yield stage("b", ("data", "a"), {"setting": 0, "from_a": a.joinpath("out.txt").read_text()})
    yield stage("c", ("data",))
    return "done"


def drive(tmp_path, force=(), **kw):
    calls = []
    result = Runner(tmp_path, ONE, force, ["data", "a", "b", "c"]).drive(plan(calls, **kw))
    assert result == "done"
    return calls


def test_complete_stages_are_skipped(tmp_path):
    assert drive(tmp_path) == ["data", "a", "b", "c"]
    assert drive(tmp_path) == []
    rec = StageRecord.read(tmp_path / "b")
    assert rec.complete and rec.inputs == {"data": StageRecord.read(tmp_path / "data").run_id,
                                           "a": StageRecord.read(tmp_path / "a").run_id}


def test_a_changed_complete_stage_is_refused_then_forced_with_its_dependants(tmp_path):
    drive(tmp_path)
    assert StageRecord.read(tmp_path / "b").config["from_a"] == "a 0"
    with pytest.raises(UserError, match=r"stage a finished with another configuration "
                       r"\(setting: 0 -> 1\); rerun with --force a"):
        drive(tmp_path, settings={"a": 1})
    # b depends on a and is redone (its identity changed with a's output: not refused); c is kept.
    assert drive(tmp_path, force=["a"], settings={"a": 1}) == ["a", "b"]
    assert StageRecord.read(tmp_path / "b").config["from_a"] == "a 1"
    assert not (tmp_path / FORCE_RECORD).exists()
    assert drive(tmp_path, settings={"a": 1}) == []


def test_interrupted_forced_run_does_not_redo_what_it_finished(tmp_path):
    drive(tmp_path)
    with pytest.raises(Interrupt):  # --force data: data and a redone, then Ctrl-C during b
        drive(tmp_path, force=["data"], fail_at="b")
    assert (tmp_path / FORCE_RECORD).is_file()
    # The same command again: data and a are not cleared a second time; b and c still follow data.
    assert drive(tmp_path, force=["data"]) == ["b", "c"]
    assert not (tmp_path / FORCE_RECORD).exists()
    # A later --force is a new request: it clears again.
    assert drive(tmp_path, force=["c"]) == ["c"]


def test_a_failed_stage_takes_a_corrected_configuration(tmp_path):
    with pytest.raises(Interrupt):
        drive(tmp_path, settings={"a": 1}, fail_at="a")
    assert not StageRecord.read(tmp_path / "a").complete
    # The fixed setting is accepted (the incomplete stage starts over), not refused.
    assert drive(tmp_path, settings={"a": 2}) == ["a", "b", "c"]
    assert (tmp_path / "a" / "out.txt").read_text() == "a 2"


def test_an_incomplete_stage_with_the_same_configuration_resumes_in_place(tmp_path):
    with pytest.raises(Interrupt):
        drive(tmp_path, fail_at="b")
    (tmp_path / "b" / "partial").write_text("a checkpoint")
    assert drive(tmp_path) == ["b", "c"]
    assert (tmp_path / "b" / "partial").is_file()  # resumed, not wiped


def test_records_of_an_older_mixtune_are_refused_with_what_to_do(tmp_path):
    """A stage.json without this format's version is never trusted: refused with the --force
    that redoes the whole run (its first stage) when its inputs look current, redone when they
    were redone (mixtune 0.1 recorded none)."""
    drive(tmp_path)
    for name in ("data", "a", "b", "c"):
        rec = StageRecord.read(tmp_path / name)
        old = {k: v for k, v in vars(rec).items() if k != "format_version"}  # as f252c76 wrote it
        (tmp_path / name / "stage.json").write_text(json.dumps(old))
    with pytest.raises(UserError, match=r"data/stage.json: written by an older mixtune \(format 1, "
                       r"this one reads 2\); rerun with --force data to redo the run from its "
                       r"first stage \(or --force data for this one\)"):
        drive(tmp_path)
    assert drive(tmp_path, force=["data"]) == ["data", "a", "b", "c"]  # each then redone in turn
    assert drive(tmp_path) == []


def test_force_patterns():
    assert matches("main", "main/uniform/seed-0")
    assert matches("proxy", "round-2/proxy")
    assert matches("round-1/", "round-1/reference")
    assert matches("seed-1", "main/doremi/seed-1")
    assert not matches("main/uni", "main/uniform/seed-0")
    assert not matches("prox", "round-1/proxy")
