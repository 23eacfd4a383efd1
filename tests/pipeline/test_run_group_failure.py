"""A group of stages run as executor tasks, one of which fails: those that finished beside it
are recorded complete (a rerun skips them), and the failure reaches the caller."""

import time
from functools import partial
from pathlib import Path

import pytest
import torch

from mixtune.distributed import Dist
from mixtune.executors import ExecutorOptions
from mixtune.pipeline.runner import Runner
from mixtune.pipeline.stage import Stage, StageGroup, StageRecord

ONE = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
NAMES = ["a", "b", "c"]


class Boom(Exception):
    pass


def _write(folder: Path, fail: bool = False, wait_for: tuple[Path, ...] = ()) -> None:
    """A stage's work: count its runs in its folder; or, once `wait_for` exist, fail."""
    if fail:
        deadline = time.monotonic() + 60
        while not all(p.exists() for p in wait_for):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{folder.name}: the other tasks did not finish")
            time.sleep(0.05)
        raise Boom(f"{folder.name} failed")
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "runs").open("a") as f:
        f.write("ran\n")


def group_plan(out: Path, workers: int, fail: str | None):
    # With workers, the failing task waits for the others' completion markers (datatrove's), so
    # that they finished before it fails. (Module functions in partials: spawned tasks unpickle
    # them.)
    others = tuple(out / "tasks" / "tasks" / "completions" / f"{NAMES.index(n):05d}"
                   for n in NAMES if n != fail and workers > 1)
    stages = [Stage(n, {"n": n}, partial(_write, fail=n == fail, wait_for=others))
              for n in NAMES]
    outputs = yield StageGroup(stages, ExecutorOptions(workers=workers))
    return outputs


def drive(out: Path, workers: int, fail: str | None = None):
    return Runner(out, ONE, stages=NAMES).drive(group_plan(out, workers, fail))


def runs(out: Path) -> dict[str, int]:
    return {n: len((out / n / "runs").read_text().split()) if (out / n / "runs").is_file() else 0
            for n in NAMES}


def complete(out: Path) -> dict[str, bool]:
    return {n: StageRecord.read(out / n).complete for n in NAMES}


def test_tasks_run_one_by_one_record_those_before_the_failure(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # one worker: the tasks run in this process
    with pytest.raises(Boom, match="b failed"):
        drive(tmp_path, workers=1, fail="b")
    assert complete(tmp_path) == {"a": True, "b": False, "c": False}
    drive(tmp_path, workers=1)  # the rerun runs only what did not finish
    assert complete(tmp_path) == {"a": True, "b": True, "c": True}
    assert runs(tmp_path) == {"a": 1, "b": 1, "c": 1}


def test_tasks_in_processes_record_those_that_finished_beside_the_failure(tmp_path):
    # Two workers (spawned processes); c fails once a's and b's tasks are marked finished.
    with pytest.raises(Boom, match="c failed"):
        drive(tmp_path, workers=2, fail="c")
    assert complete(tmp_path) == {"a": True, "b": True, "c": False}
    # The rerun has one stage to do: it runs in this process, not as a task.
    assert drive(tmp_path, workers=2) == [tmp_path / n for n in NAMES]
    assert runs(tmp_path) == {"a": 1, "b": 1, "c": 1}
    assert complete(tmp_path) == {"a": True, "b": True, "c": True}
