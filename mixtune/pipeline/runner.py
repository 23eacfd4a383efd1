"""Runs a plan's stages: skips what is done, refuses what changed, redoes what was forced.

A plan is a generator that yields `Stage`s and receives each one's output path back, so stages
whose existence depends on earlier results (another DoReMi round) are planned as results arrive.
For each stage the runner decides from its `stage.json` (see stage.py):

    complete, same identity, same inputs     skip it
    complete, another identity               refuse, naming the changes (--force NAME redoes it)
    complete, an input was redone            redo it (and so, in turn, what depends on it)
    incomplete, another identity or inputs   start it over, with a notice (a failed start must
                                             not lock a stage to a bad configuration)
    incomplete, same identity and inputs     resume it (training continues from its checkpoint)

`--force` clears the matching stages once, up front, and writes OUTPUT/.force.json; a rerun of the
same command after an interrupt finds that record and does not clear again, so stages the
interrupted run already redid are kept. The record is removed when the run completes. Every rank
walks the same plan; rank 0 alone writes records, and barriers keep the ranks together.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator, Sequence
from pathlib import Path
from uuid import uuid4

from mixtune import distributed
from mixtune.errors import UserError
from mixtune.io import describe_changes, remove, write_json_atomic
from mixtune.pipeline.stage import RECORD, Stage, StageRecord, config_hash, matches

log = logging.getLogger(__name__)

FORCE_RECORD = ".force.json"


class Runner:
    def __init__(self, out: Path, dist: distributed.Dist, force: Sequence[str] = ()):
        self.out, self.dist, self.force = Path(out), dist, sorted(set(force))
        self.run_ids: dict[str, str | None] = {}

    def drive(self, plan: Generator):
        """Run every stage `plan` yields; return the plan's return value."""
        self.clear_forced()
        try:
            stage = next(plan)
            while True:
                stage = plan.send(self.run(stage))
        except StopIteration as done:
            result = done.value
        if self.dist.is_main:
            remove(self.out / FORCE_RECORD)  # the forced run is complete
        distributed.barrier()
        return result

    def clear_forced(self) -> None:
        """Remove the stages --force names, unless this --force run was already started."""
        if not self.force:
            return
        if self.dist.is_main:
            record = self.out / FORCE_RECORD
            pending = json.loads(record.read_text()) if record.is_file() else {}
            if pending.get("force") == self.force:
                log.info("continuing the interrupted --force %s run: the stages it redid are kept",
                         " ".join(self.force))
            else:
                cleared = []
                for marker in sorted(self.out.glob(f"**/{RECORD}")):
                    name = marker.parent.relative_to(self.out).as_posix()
                    if any(matches(f, name) for f in self.force):
                        log.info("stage %s: cleared (--force)", name)
                        remove(marker.parent)
                        cleared.append(name)
                write_json_atomic(record, {"force": self.force, "cleared": cleared})
        distributed.barrier()

    def run(self, stage: Stage) -> Path:
        folder = self.out / stage.name
        h = config_hash(stage.identity)
        inputs = {d: self.run_ids.get(d) for d in stage.deps}
        rec = StageRecord.read(folder)
        if rec is not None:
            changes = describe_changes(rec.config or {}, stage.identity)
            if rec.complete and rec.config_hash != h:
                raise UserError(
                    f"stage {stage.name} finished with another configuration ({changes or 'changed'}); "
                    f"rerun with --force {stage.name} to redo it and the stages that depend on it."
                )
            redone = [d for d in stage.deps if rec.inputs is not None and rec.inputs.get(d) != inputs[d]]
            if rec.complete and not redone:
                log.info("stage %s: complete, skipped", stage.name)
                self.run_ids[stage.name] = rec.run_id
                return folder / stage.output
            if rec.complete or redone or rec.config_hash != h:
                why = (f"redone, as {', '.join(redone)} was redone" if redone else
                       f"it was left incomplete with other settings ({changes}); starting over")
                log.warning("stage %s: %s", stage.name, why)
                if self.dist.is_main:
                    remove(folder)
                distributed.barrier()
        if self.dist.is_main:
            StageRecord(stage.name, h, stage.identity, inputs=inputs).write(folder)
        distributed.barrier()
        log.info("stage %s: running", stage.name)
        if stage.all_ranks or self.dist.is_main:
            stage.run(folder)
        distributed.barrier()
        if self.dist.is_main:
            StageRecord(stage.name, h, stage.identity, True, uuid4().hex, inputs).write(folder)
        distributed.barrier()
        self.run_ids[stage.name] = StageRecord.read(folder).run_id
        return folder / stage.output
