"""A stage of `mixtune run`: one named step whose outputs live in OUTPUT/<name>/.

Its `stage.json` records what it computes (its identity: the resolved settings, and its hash),
whether it completed, a run id given at completion, and the run ids of the stages it read from
when it ran. A stage is up to date when it is complete, its identity is unchanged and its inputs
are the runs it was computed from; a stage redone gets a new run id, so everything downstream of it
is redone too (as make does with timestamps, without trusting clocks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mixtune.executors import ExecutorOptions
from mixtune.io import read_json, write_json_atomic

RECORD = "stage.json"


@dataclass
class Stage:
    name: str
    """Its folder under the output, e.g. round-1/proxy or main/uniform/seed-0."""
    identity: dict
    """What it computes: a complete stage with another identity is refused."""
    run: Callable[[Path], None]
    """Produce the outputs in the given folder (resuming a partial run there if it can)."""
    deps: tuple[str, ...] = ()
    """Stages whose outputs it reads: when one is redone, so is this one."""
    output: str = ""
    """The path inside the folder that is handed back to the plan (e.g. the dataset)."""
    all_ranks: bool = True
    """Training runs on every rank; single-process work (data preparation) on rank 0 only."""


@dataclass
class StageGroup:
    """Stages independent of each other (RegMix's swarm), which the runner may run at once as
    tasks on an executor. Each keeps its own folder and record: a rerun skips those that finished,
    also beside one that failed. The plan gets back the list of their outputs."""

    stages: list[Stage]
    executor: ExecutorOptions | None = None
    """Where the tasks run (local processes, Ray); none, or one process of several (torchrun):
    one stage after the other, in this process."""
    logs: str = "tasks"
    """The tasks' log folder, under the output."""


FORMAT_VERSION = 2  # of stage.json: 2 records the inputs' run ids, always


@dataclass
class StageRecord:
    stage: str
    config_hash: str
    config: dict
    complete: bool = False
    run_id: str | None = None
    inputs: dict[str, str | None] = field(default_factory=dict)
    """Run ids of the dependencies when it ran."""
    format_version: int = FORMAT_VERSION

    @classmethod
    def read(cls, folder: Path) -> StageRecord | None:
        path = folder / RECORD
        if not path.is_file():
            return None
        obj = read_json(path, f"delete {folder} to redo the stage.")
        record = cls(**{f.name: obj.get(f.name) for f in fields(cls)})
        # An older record is read to tell whether its inputs were redone, never trusted beyond.
        record.inputs = record.inputs or {}
        record.format_version = record.format_version or 1
        return record

    def write(self, folder: Path) -> None:
        write_json_atomic(folder / RECORD, asdict(self))


def config_hash(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def matches(pattern: str, name: str) -> bool:
    """Whether `--force pattern` names stage `name`: the name itself, a folder above it
    (main, round-1), or one part of it (proxy, uniform, seed-0)."""
    pattern = pattern.rstrip("/")
    return pattern == name or name.startswith(pattern + "/") or pattern in name.split("/")
