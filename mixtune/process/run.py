"""`mixtune process`: raw sources → a filtered, deduplicated corpus that `mixtune prepare` reads.

A pipeline's steps become datatrove stages. Per-document steps run inside a stage, task by task
(each task a shard of the input files); a dedup step needs the whole corpus first, so it ends a
stage and adds its own (signatures, a global search), and the next stage starts with its filter:

    stage 1:  read sources → steps → hand-over shards        (N tasks)
    dedup:    signatures of each shard → find duplicates     (N tasks, then fewer)
    stage 2:  read shard → dedup filter → steps → ...        (N tasks)
    last:     ... → OUT.work/output/[split/]<domain>/<rank>.jsonl.zst
    publish:  merge the statistics, write the record, rename the output to OUT   (1 task)

Everything lives in OUT.work/ until the end: datatrove's completion markers there make a rerun
skip finished tasks, and OUT appears only when complete. One process at a time into an OUT
(lock.py); work submitted to Slurm runs after it has returned, unlocked.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from datatrove.pipeline.base import PipelineStep

from mixtune import lock
from mixtune.data.sources import check_layout
from mixtune.errors import UserError
from mixtune.executors import Stage
from mixtune.io import (
    publish,
    read_json,
    remove,
    start_work,
    verdict,
    work_dir,
    write_json_atomic,
)
from mixtune.process import stats as process_stats
from mixtune.process.blocks import (
    Counted,
    DomainWriter,
    ShardReader,
    ShardWriter,
    SourceReader,
)
from mixtune.process.config import ProcessOptions
from mixtune.process.ops import Step, domains_problem
from mixtune.process.pipelines import load_pipeline

log = logging.getLogger(__name__)

RECORD = "dataset_record.json"
STATS_PNG = "process_stats.png"


def step_labels(steps: list[Step]) -> list[str]:
    return [f"{i + 1} {s.op}" for i, s in enumerate(steps)]


def plan(steps: list[Step], opts: ProcessOptions, work: Path) -> list[Stage]:
    """The stages that run `steps` on `opts.sources` with `opts.tasks` tasks."""
    labels = step_labels(steps)
    stages: list[Stage] = []
    read: PipelineStep = SourceReader(opts.sources, opts.text_field, opts.domain_field,
                                      opts.skip_bad_records)
    segment: list[PipelineStep] = []
    part = 1
    for label, step in zip(labels, steps, strict=True):
        if step.dedup in ("exact", "minhash"):
            shards = work / f"shards-{part}"
            stages.append(Stage(f"{part}-filter", [read, *segment, ShardWriter(shards)],
                                opts.tasks))
            dedup = step.block()
            dedup_work = work / f"dedup-{part}"
            for st in dedup.stages(ShardReader(shards), dedup_work, opts.tasks):
                stages.append(Stage(f"{part}-{step.op}-{st.name}", st.pipeline, st.tasks))
            read, part = ShardReader(shards), part + 1
            segment = [Counted(label, dedup.filter(dedup_work), reason="duplicate")]
        elif step.dedup == "bff":
            segment.append(Counted(label, step.block(), reason="duplicate document"))
        else:
            segment.append(Counted(label, step.block(), step.domains))
    stages.append(Stage(f"{part}-filter", [read, *segment, DomainWriter(work / "output")],
                        opts.tasks))
    return stages


class Publish(PipelineStep):
    """The last stage (one task): merge the statistics, write the record, publish the output."""

    name = "publish"
    type = "📦 - PUBLISH"

    def __init__(self, work: str, out: str, stage_names: list[str], labels: list[str],
                 recorded: dict) -> None:
        super().__init__()
        self.work, self.out = work, out
        self.stage_names, self.labels, self.recorded = stage_names, labels, recorded

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from mixtune.provenance import new_record

        work, out = Path(self.work), Path(self.out)
        output = work / "output"
        if not output.is_dir() and (out / RECORD).is_file():
            return  # published already: this is a rerun of the task (a Slurm requeue)
        merged = process_stats.merge([work / "logs" / name for name in self.stage_names],
                                     [process_stats.READ, *self.labels])
        problem = domains_problem(self.recorded["steps"], merged["domains"])
        if problem is not None:  # with --domain-field, known only now: the work is kept
            log.warning("%s", problem)
        if not any(c["docs_out"] for c in merged["domains"].values()):
            raise UserError(f"no document passed the pipeline (statistics in {work}/logs/); "
                            f"nothing was published to {out}.")
        output.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output / process_stats.STATS_FILE, merged)
        process_stats.plot(merged, output / STATS_PNG)
        record = new_record(out.name, kind="processed", dataset_url=str(out.resolve()),
                            tokenized=False, **self.recorded,
                            domains=sorted(d for d, c in merged["domains"].items()
                                           if c["docs_out"]),
                            documents={d: c["docs_out"] for d, c in merged["domains"].items()},
                            characters={d: c["chars_out"] for d, c in merged["domains"].items()})
        write_json_atomic(output / RECORD, record)
        publish(output, out)
        return
        yield


def process(opts: ProcessOptions) -> Path | None:
    """Run the pipeline; the output folder, or None when the work was submitted (Slurm)."""
    out = Path(opts.out)
    steps = load_pipeline(opts.pipeline, opts.quality_model)
    recorded = opts.recorded([s.to_dict() for s in steps])
    if out.exists() and not out.is_dir():
        raise UserError(f"{out} is a file; --out names the folder to write. Choose another.")
    # Tasks read shards: the layout is checked once, here, and a step's domains against it.
    domains = check_layout(opts.sources, domain_field=opts.domain_field)
    problem = domains_problem(recorded["steps"], domains) if domains is not None else None
    if problem is not None:
        raise UserError(f"--pipeline {opts.pipeline}: {problem}")
    # Locked beside OUT, not in it: publishing replaces the folder (and what is in it).
    with lock.hold(out, beside=True):
        return _run(opts, out, steps, recorded)


def _run(opts: ProcessOptions, out: Path, steps: list[Step], recorded: dict) -> Path | None:
    """Skip, refuse or (re)do the work into `out`, under its lock."""
    from mixtune.executors import execute

    # With --overwrite the old record is not read at all: a damaged one must be replaceable.
    done = (out / RECORD).is_file() and not opts.overwrite
    old = read_json(out / RECORD, f"delete {out} to redo it.") if done else None
    found = verdict({k: old.get(k) for k in recorded} if done else None, recorded, complete=done)
    if found.action == "refuse":
        raise UserError(f"{out} already holds a corpus processed otherwise ({found.changes}); "
                        "pass --overwrite to replace it or choose another --out.")
    if found.action == "skip":
        log.info("%s is already complete; --overwrite redoes it.", out)
        return out
    if out.exists() and not (out / RECORD).is_file() and any(out.iterdir()):
        raise UserError(f"{out} exists and is not a processed corpus; choose another --out or "
                        "remove it.")
    work = work_dir(out)
    published = work / "logs" / "publish" / "completions" / "00000"
    if (opts.overwrite and (out / RECORD).is_file()) or published.is_file():
        # Redo everything: also what a kept work folder marks as done (its output was published
        # and is gone or to be replaced).
        remove(work)
    start_work(work, recorded)
    stages = plan(steps, opts, work)
    stages.append(Stage("publish", [Publish(str(work), str(out), [s.name for s in stages],
                                            step_labels(steps), recorded)], 1))
    submitted = execute(stages, opts, work / "logs")
    if submitted:
        return None
    if not (out / RECORD).is_file():
        raise RuntimeError(f"all stages ran but {out} was not published")
    if not opts.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return out

