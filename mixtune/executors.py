"""Run a list of stages on datatrove's executors: local processes, Slurm job arrays, or Ray.

Used by `mixtune process`, `mixtune prepare --tasks N` and any other work cut into tasks. Each
stage is one executor depending on the previous one, all with their logging folder (and
completion markers) under OUT.work/logs/<stage>/, so the same pipeline gives the same output on
any of them, and a rerun skips the tasks that finished.

`run_calls` runs independent calls (RegMix's swarm of proxy trainings) as one task each, in fresh
processes that share the machine's cores.

`ExecutorOptions` (where the tasks run) is importable without datatrove, which the functions
below import when they run: checking a config stays fast and needs no optional extra.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mixtune.errors import UserError
from mixtune.schema import at_least, setting

if TYPE_CHECKING:
    from datatrove.pipeline.base import PipelineStep


@dataclass(kw_only=True)
class ExecutorOptions:
    """Where the tasks of mixtune process and of mixtune prepare's tokenization run (datatrove's
    executors)."""

    executor: Literal["local", "slurm", "ray"] = "local"
    """local processes, Slurm job arrays (submitted; rerun to continue), or a Ray cluster."""
    tasks: int = setting(1, check=at_least(1))
    """Tasks the work is cut into, each a shard of the input files (prepare: the dataset is the
    same for any number; process: BFF dedups within each task's shard)."""
    workers: int | None = setting(None, check=at_least(1))
    """Tasks run at once (local: processes; none: min(tasks, CPU cores))."""
    slurm_partition: str | None = None
    """Slurm partition (required with --executor slurm)."""
    slurm_time: str = "24:00:00"
    """Slurm time limit per job."""
    slurm_cpus_per_task: int = setting(1, check=at_least(1))
    """CPUs per Slurm task."""
    slurm_mem_per_cpu_gb: int = setting(2, check=at_least(1))
    """Memory per CPU in GB for Slurm tasks."""
    ray_address: str | None = None
    """Address of a running Ray cluster (none: start a local one)."""

    def validate(self, label) -> None:
        if self.executor == "slurm" and not self.slurm_partition:
            raise UserError(f"{label('executor')} slurm needs {label('slurm_partition')}.")


EXECUTOR_SETTINGS = frozenset(f.name for f in fields(ExecutorOptions))


def require_datatrove(what: str) -> None:
    """A clear message, not an ImportError, when the `process` extra is not installed."""
    if importlib.util.find_spec("datatrove") is None:
        raise UserError(f"{what} needs datatrove: pip install 'mixtune[process]'.")


@dataclass
class Stage:
    """One datatrove pipeline run as `tasks` tasks; stages run one after the other."""

    name: str
    pipeline: list[PipelineStep]
    tasks: int

# datatrove logs every task to the console at INFO, with tracebacks. mixtune's console shows
# warnings only, without tracebacks: each task's log file (OUT.work/logs/<stage>/logs/) keeps
# everything. A bad record in a source then stops the run with mixtune's located message; a bug's
# traceback is in the task log. (Local executor only: Slurm and Ray tasks log to their files.)


def quiet_console() -> None:
    from loguru import logger  # datatrove's logger

    logger.remove()
    # A task's failure is raised again in this process (and reported once, there).
    logger.add(sys.stderr, level="WARNING", format=lambda _record: "datatrove: {message}\n",
               filter=lambda record: record["exception"] is None)


def _quiet_task_logger(logging_dir, rank, local_rank=0, node_rank=-1):
    from loguru import logger

    logger.remove()
    logfile = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    logger.add(logfile, level="DEBUG", colorize=False,
               format="{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <8} | {name}:{function}:{line}"
                      " - {message}\n{exception}")
    quiet_console()
    logger.info(f"Launching pipeline for {rank=}")
    return logfile


def _quiet_close_task_logger(logfile) -> None:
    from loguru import logger

    logger.complete()
    quiet_console()
    logfile.close()


def execute(stages: list[Stage], opts: ExecutorOptions, logs, start_method: str = "fork") -> bool:
    """Run (or submit) every stage in order; True when submitted to run later (Slurm).
    `start_method` of local processes: fork (cheap: they inherit the loaded modules) or spawn."""
    if opts.executor == "slurm":
        return _slurm(stages, opts, logs)
    if opts.executor == "ray":
        _ray(stages, opts, logs)
        return False
    _local(stages, opts, logs, start_method)
    return False


def run_calls(calls: Sequence[Callable[[], None]], opts: ExecutorOptions, logs: Path,
              on_finished: Callable[[int], None]) -> None:
    """Run each call as one task (`opts.tasks` is ignored), then call `on_finished(i)` for each
    call i that finished: also when another one failed, whose exception is raised once they are
    reported (so that work done beside a failure is recorded, not redone on the next run).

    Local tasks start in fresh (spawned) processes: a process forked from one that has trained a
    model can hang in its OpenMP thread pool. Each knows how many share the machine
    (LOCAL_WORLD_SIZE, as under torchrun), so they split its cores instead of fighting over them.
    The logs, completion markers included, are this call's alone: the calls are not the tasks of
    an earlier call (the caller keeps its own record of what finished)."""
    import shutil

    from mixtune.call_task import CallTask

    shutil.rmtree(logs, ignore_errors=True)
    workers = min(opts.workers or os.cpu_count() or 1, len(calls))
    stage = Stage("tasks", [CallTask(list(calls), workers, quiet_console)], len(calls))
    try:
        execute([stage], replace(opts, tasks=len(calls), workers=workers), logs,
                start_method="spawn")
    finally:
        # The executor tells which tasks finished only by their completion markers.
        done = logs / stage.name / "completions"
        finished = sorted(int(p.name) for p in done.iterdir()) if done.is_dir() else []
        for i in finished:
            on_finished(i)


def _quiet_tasks() -> None:
    """datatrove's tasks log to their files alone (its console banner per task is noise)."""
    from datatrove.executor import base as executor_base

    executor_base.add_task_logger = _quiet_task_logger
    executor_base.close_task_logger = _quiet_close_task_logger
    quiet_console()


def _local(stages: list[Stage], opts: ExecutorOptions, logs, start_method: str = "fork") -> None:
    from datatrove.executor import LocalPipelineExecutor

    _quiet_tasks()
    workers = opts.workers or min(opts.tasks, os.cpu_count() or 1)
    last = None
    for stage in stages:
        # fork: the workers inherit the loaded modules (and the quiet logging) at no cost.
        last = LocalPipelineExecutor(stage.pipeline, tasks=stage.tasks,
                                     workers=min(workers, stage.tasks),
                                     logging_dir=str(logs / stage.name), depends=last,
                                     start_method=start_method)
    with _helpers_die_with_us():
        last.run()


# -- helper processes die with this one ---------------------------------------------------------
# datatrove's local executor starts a Manager (a server process) and a Pool of workers. Killed
# with SIGKILL, this process cannot stop them: they lived on, re-parented to PID 1, holding the
# terminal's stdout and stderr (so `mixtune process ... | tee log` never ended). On Linux each
# now asks the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG); datatrove takes no
# initializer for them, so it is handed a `multiprocess` whose Manager and Pool start theirs
# with one.

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """In a helper process: be killed when the process that started it dies (Linux; elsewhere
    nothing). A parent already gone by now is not waited for: exit at once."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    import multiprocess

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        return  # refused (a sandbox): the helper lives as long as it did before
    parent = multiprocess.parent_process()
    if parent is not None and not parent.is_alive():
        os._exit(1)


def _no_interrupt(signum, frame) -> None:
    """SIGINT in a pool worker: the main process handles it."""


def _init_worker(initializer: Callable | None, initargs: tuple) -> None:
    """A pool worker: dies with its parent, and leaves Ctrl-C to it. The terminal sends SIGINT to
    every process of the job; each worker printed its own KeyboardInterrupt traceback (a swarm's
    two workers, 35 lines) and stopped wherever it was, while the parent, which handles it, ends
    the pool anyway (its workers then die as a kill would leave them: resumable)."""
    import signal

    # A no-op handler, not SIG_IGN: an ignored signal is inherited through exec, and a task's
    # own children (DataLoader workers, subprocesses) would then outlive Ctrl-C.
    signal.signal(signal.SIGINT, _no_interrupt)
    die_with_parent()
    _quiet_tasks()  # a spawned worker imported datatrove afresh: its task logger is loud again
    if initializer is not None:
        initializer(*initargs)


class _MortalContext:
    """A multiprocess context whose Pool workers die with their parent."""

    def __init__(self, ctx) -> None:
        self._ctx = ctx

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)

    def Pool(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None):
        return self._ctx.Pool(processes, _init_worker, (initializer, initargs), maxtasksperchild)


class _MortalMultiprocess:
    """The `multiprocess` module, but its Manager and its contexts' Pools start helpers that
    die with their parent."""

    def __init__(self, module) -> None:
        self._module = module

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def get_context(self, method=None):
        return _MortalContext(self._module.get_context(method))

    def Manager(self):
        from multiprocess.managers import SyncManager

        manager = SyncManager(ctx=self._module.get_context())
        manager.start(die_with_parent)
        return manager


@contextmanager
def _helpers_die_with_us():
    from datatrove.executor import local

    real = local.multiprocess
    local.multiprocess = _MortalMultiprocess(real)
    try:
        yield
    finally:
        local.multiprocess = real


def _slurm(stages: list[Stage], opts: ExecutorOptions, logs) -> bool:
    from datatrove.executor import SlurmPipelineExecutor

    last = None
    for stage in stages:
        last = SlurmPipelineExecutor(
            stage.pipeline, tasks=stage.tasks, time=opts.slurm_time,
            partition=opts.slurm_partition, cpus_per_task=opts.slurm_cpus_per_task,
            mem_per_cpu_gb=opts.slurm_mem_per_cpu_gb, job_name=f"mixtune-{stage.name}",
            logging_dir=str(logs / stage.name), depends=last,
            venv_path=_venv_activate(), workers=opts.workers or -1)
    last.run()
    return True


def _ray(stages: list[Stage], opts: ExecutorOptions, logs) -> None:
    import ray
    from datatrove.executor import RayPipelineExecutor

    quiet_console()
    if not ray.is_initialized():
        ray.init(address=opts.ray_address, log_to_driver=False)
    last = None
    for stage in stages:
        last = RayPipelineExecutor(stage.pipeline, tasks=stage.tasks,
                                   workers=opts.workers or -1,
                                   logging_dir=str(logs / stage.name), depends=last)
    last.run()


def _venv_activate() -> str | None:
    """The activate script of the virtual environment running this, for the Slurm jobs."""
    activate = os.path.join(sys.prefix, "bin", "activate")
    return activate if sys.prefix != sys.base_prefix and os.path.isfile(activate) else None
