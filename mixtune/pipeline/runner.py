"""Runs a plan's stages: skips what is done, refuses what changed, redoes what was forced.

A plan is a generator that yields `Stage`s and receives each one's output path back, so stages
whose existence depends on earlier results (another DoReMi round) are planned as results arrive.
It may yield a `StageGroup` of independent stages (RegMix's swarm) and receive their outputs as a
list: those to do run as tasks on the group's executor, each decided and recorded as one stage.
For each stage the runner decides from its `stage.json` (see stage.py):

    an input was redone since it ran         redo it (and so, in turn, what depends on it)
    complete, same identity                  skip it
    complete, another identity               refuse, naming the changes (--force NAME redoes it)
    incomplete, another identity             start it over, with a notice (a failed or
                                             interrupted start must not lock a stage to the
                                             configuration it failed with)
    incomplete, same identity                resume it (training continues from its checkpoint)

`--force` clears the stages it names once, up front, and writes OUTPUT/.force.json; a rerun of the
same command after an interrupt finds that record and does not clear again, so stages the
interrupted run already redid are kept. The record is removed when the run completes.

Every rank walks the same plan. Rank 0 alone reads the records, decides and writes; the decision
is broadcast, so no rank ever acts on a record that rank 0 is changing.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator, Sequence
from functools import partial
from pathlib import Path
from uuid import uuid4

from mixtune import distributed
from mixtune.errors import UserError
from mixtune.executors import ExecutorOptions, run_calls
from mixtune.io import read_json, remove, verdict, write_json_atomic
from mixtune.pipeline.stage import (
    FORMAT_VERSION,
    RECORD,
    Stage,
    StageGroup,
    StageRecord,
    config_hash,
    matches,
)

log = logging.getLogger(__name__)

FORCE_RECORD = ".force.json"


class Runner:
    def __init__(self, out: Path, dist: distributed.Dist, force: Sequence[str] = (),
                 stages: Sequence[str] = ()):
        """`stages`: every stage name the plan may yield (what --force patterns are matched to)."""
        self.out, self.dist = Path(out), dist
        self.force, self.stages = sorted(set(force)), list(stages)
        self.run_ids: dict[str, str | None] = {}

    def drive(self, plan: Generator):
        """Run every stage `plan` yields; return the plan's return value."""
        self.clear_forced()
        try:
            stage = next(plan)
            while True:
                result = self.run_group(stage) if isinstance(stage, StageGroup) else self.run(stage)
                stage = plan.send(result)
        except StopIteration as done:
            result = done.value
        if self.dist.is_main:
            remove(self.out / FORCE_RECORD)  # the forced run is complete
        distributed.barrier()
        return result

    def clear_forced(self) -> None:
        """Remove the stages --force names, unless this --force run was already started."""
        if self.force and self.dist.is_main:
            record = self.out / FORCE_RECORD
            pending = read_json(record, f"delete {record}.") if record.is_file() else {}
            if pending.get("force") != self.force:
                cleared = [n for n in self.stages if any(matches(f, n) for f in self.force)
                           and _clear(self.out, n)]
                write_json_atomic(record, {"force": self.force, "cleared": cleared})
            elif not os.environ.get("MIXTUNE_LAUNCHED"):  # (the relaunch's parent cleared them)
                log.info("continuing the interrupted --force %s run: the stages it redid are "
                         "kept", " ".join(self.force))
        distributed.barrier()

    def run(self, stage: Stage) -> Path:
        if self._start(stage):
            self._run_here(stage)
        return self.out / stage.name / stage.output

    def run_group(self, group: StageGroup) -> list[Path]:
        """Run the stages of `group` that are not up to date, as tasks on its executor (one
        process of several runs them one after the other, as `run` does)."""
        todo = [stage for stage in group.stages if self._start(stage)]
        if group.executor is not None and self.dist.world_size == 1 and len(todo) > 1:
            self._run_tasks(todo, group.executor, self.out / group.logs)
        else:
            for stage in todo:
                self._run_here(stage)
        return [self.out / s.name / s.output for s in group.stages]

    def _run_here(self, stage: Stage) -> None:
        """Run a started stage in this process (every rank, or rank 0 alone) and record it
        complete."""
        log.info("stage %s: running", stage.name)
        if stage.all_ranks or self.dist.is_main:
            stage.run(self.out / stage.name)
        distributed.barrier()
        self._complete(stage)

    def _run_tasks(self, todo: list[Stage], executor: ExecutorOptions, logs: Path) -> None:
        """Run started stages as tasks on `executor` (a single process: no barrier to keep)."""
        log.info("stages %s: running as %d tasks (%s)", ", ".join(s.name for s in todo),
                 len(todo), executor.executor)
        # A task that fails stops the group: those that finished beside it are still recorded
        # complete, so that a rerun skips them.
        run_calls([partial(s.run, self.out / s.name) for s in todo], executor, logs,
                  on_finished=lambda i: self._complete(todo[i]))

    def _start(self, stage: Stage) -> bool:
        """Decide what to do with `stage`; False when it is up to date (skipped), else its record
        is written (incomplete) and it is to be run."""
        folder = self.out / stage.name
        inputs = {d: self.run_ids.get(d) for d in stage.deps}
        action, detail = distributed.on_main(lambda: self._decide(stage, folder, inputs))
        if action == "skip":
            log.info("stage %s: complete, skipped", stage.name)
            self.run_ids[stage.name] = detail
            return False
        if self.dist.is_main:
            if action == "restart":
                log.warning("stage %s: %s", stage.name, detail)
                remove(folder)
            elif action == "resume":  # said here: a task's own "resuming" is in its log alone
                log.info("stage %s: started by an earlier run; resuming it", stage.name)
            StageRecord(stage.name, config_hash(stage.identity), stage.identity,
                        inputs=inputs).write(folder)
        distributed.barrier()
        return True

    def _complete(self, stage: Stage) -> None:
        def complete() -> str:
            run_id = uuid4().hex
            inputs = {d: self.run_ids.get(d) for d in stage.deps}
            StageRecord(stage.name, config_hash(stage.identity), stage.identity, True, run_id,
                        inputs).write(self.out / stage.name)
            return run_id

        self.run_ids[stage.name] = distributed.on_main(complete)

    def _decide(self, stage: Stage, folder: Path, inputs: dict) -> tuple[str, str | None]:
        """("skip", run id), ("restart", why), ("resume", None) or ("run", None); rank 0 only."""
        rec = StageRecord.read(folder)
        if rec is None:
            return "run", None
        redone = [d for d in stage.deps if rec.inputs.get(d) != inputs[d]]
        if redone:
            return "restart", f"redoing it: {', '.join(redone)} was redone"
        if rec.format_version != FORMAT_VERSION:
            raise UserError(
                f"{folder / RECORD}: written by an older mixtune (format {rec.format_version}, "
                f"this one reads {FORMAT_VERSION}); rerun with --force {self.stages[0]} to redo "
                f"the run from its first stage (or --force {stage.name} for this one)."
            )
        # The identity as stage.json holds it (JSON), so that a tuple equals its list.
        wanted = json.loads(json.dumps(stage.identity, default=str))
        found = verdict(rec.config or {}, wanted, complete=rec.complete)
        if found.action == "refuse":
            raise UserError(
                f"stage {stage.name} finished with another configuration ({found.changes});"
                f" rerun with --force {stage.name} to redo it and the stages that depend on it."
            )
        if found.action == "restart":
            return "restart", f"left incomplete with other settings ({found.changes}); starting over"
        return found.action, rec.run_id if found.action == "skip" else None


def _clear(out: Path, name: str) -> bool:
    """Remove a stage's folder (or the link a reused run is); whether there was one."""
    path = out / name
    if not (path.exists() or path.is_symlink()):
        return False
    log.info("stage %s: cleared (--force)", name)
    remove(path)
    return True
