"""`mixtune run CONFIG.yaml`: check the config and the --force names, then drive the plan here,
or relaunch this same command under torchrun when the config asks for `nproc` > 1.

A user's own torchrun (`torchrun --nproc_per_node 8 -m mixtune run cfg.yaml`, several nodes) runs
the plan on every rank directly; `nproc` is the one-node shortcut for it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mixtune import lock
from mixtune.errors import UserError
from mixtune.pipeline.config import RunConfig, load_run_config
from mixtune.pipeline.names import check_plan, stage_names


def run_pipeline(config_path: str | Path, force: list[str] | None = None) -> Path:
    """Run (or continue) the whole chain described by a run YAML; return its output folder."""
    cfg = load_run_config(Path(config_path))
    force = list(force or [])
    check_plan(cfg, force)  # all checks done in milliseconds: torch is not imported yet
    from mixtune import distributed
    from mixtune.pipeline.plan import plan
    from mixtune.pipeline.runner import Runner

    # A second run into this output would redo its stages and replace its models: it refuses.
    # The relaunch's ranks inherit the parent's lock (lock.py). The lock makes the folder, and
    # removes it again if the run is refused before anything is written into it.
    with lock.hold(cfg.output):
        Path(cfg.output).mkdir(parents=True, exist_ok=True)  # (where there is no lock to make it)
        if cfg.nproc > 1 and "WORLD_SIZE" not in os.environ:
            return _relaunch(cfg, Path(config_path), force)
        dist = distributed.setup(cfg.train.device)
        return Runner(Path(cfg.output), dist, force, stage_names(cfg)).drive(plan(cfg, dist, str(config_path)))


def _relaunch(cfg: RunConfig, config_path: Path, force: list[str]) -> Path:
    from mixtune import distributed
    from mixtune.pipeline.plan import data_stage
    from mixtune.pipeline.runner import Runner

    # Data preparation is single-process work: done here, before the ranks exist to wait on it.
    # The children find the --force record and do not clear what this process already redid.
    runner = Runner(Path(cfg.output), distributed.setup(cfg.train.device), force, stage_names(cfg))
    runner.clear_forced()
    if cfg.data.dataset is None:
        runner.run(data_stage(cfg))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", str(cfg.nproc), "-m", "mixtune", "run", str(config_path)]
    cmd += [a for f in force for a in ("--force", f)]
    rc = subprocess.call(cmd, env={**os.environ, "MIXTUNE_LAUNCHED": "1"})
    if rc != 0:
        raise UserError(f"the torchrun launch of {config_path} failed (exit {rc}); see the messages above.")
    return Path(cfg.output)
