"""Checkpoints: `checkpoints/step-N/` holding everything needed to continue exactly.

    model.safetensors   weights (safetensors: loading never runs code)
    optimizer.pt        AdamW state, loaded with `torch.load(weights_only=True)` (tensors and numbers only)
    rng.pt              torch RNG states, same loader
    state.json          step, tokens, sampler state, mixture-method state

Under FSDP (`--parallelism fsdp`) the checkpoint is sharded instead: model and optimizer state go
through `torch.distributed.checkpoint` (DCP), every rank writing its own shards, in place of
model.safetensors and optimizer.pt:

    __R_0.distcp        rank R's shards of the weights and the AdamW state
    .metadata           DCP's index of the shards (written by rank 0)
    rng.pt, state.json  as above, from rank 0

The files say which kind a checkpoint is (`kind`); a run resumes only a checkpoint of its own kind
and refuses the other with the flag that resumes it. DCP's `.metadata` is a pickle (torch reads it
with `pickle.load`): it is unpickled only from the run's own checkpoints, written by this code, and
never from a file handed in by a user.

A checkpoint is written into `checkpoints/.step-N.tmp/` and renamed into place, so a `step-N` folder is
always complete; a crash mid-write leaves only a temp folder, removed on the next start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from mixtune import distributed
from mixtune.errors import UserError
from mixtune.io import fsync_path, write_json_atomic

_STEP_DIR = re.compile(r"^step-(\d+)$")


def save(run_dir: Path, step: int, model, optimizer, state: dict, keep: int = 2) -> Path:
    """A full checkpoint, written by one process (rank 0)."""
    tmp = _fresh_tmp(run_dir, step)
    save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / output weights
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    return _publish(run_dir, step, tmp, state, keep)


def save_sharded(run_dir: Path, step: int, model, optimizer, state: dict, keep: int,
                 is_main: bool) -> Path:
    """A sharded checkpoint of an FSDP model: every rank calls, each writes its shards into the
    same temp folder (a file system all ranks share, as for the rest of the run folder); rank 0
    then publishes it as a full checkpoint is published."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    tmp = _tmp(run_dir, step)
    if is_main:
        _fresh_tmp(run_dir, step)
    distributed.barrier()  # the folder exists, empty, before any rank writes into it
    model_state, optim_state = get_state_dict(model, optimizer)
    # Returns on every rank once all have written (rank 0 gathers their results for .metadata);
    # each rank fsyncs its own files (FileSystemWriter's sync_files).
    dcp.save({"model": model_state, "optimizer": optim_state},
             storage_writer=dcp.FileSystemWriter(tmp))
    if is_main:
        _publish(run_dir, step, tmp, state, keep)
    distributed.barrier()  # no rank goes on (and may crash) before step-N is in place
    return _final(run_dir, step)


def _tmp(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f".step-{step}.tmp"


def _final(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step}"


def _fresh_tmp(run_dir: Path, step: int) -> Path:
    tmp = _tmp(run_dir, step)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _publish(run_dir: Path, step: int, tmp: Path, state: dict, keep: int) -> Path:
    """RNG and state into `tmp`, everything synced, `tmp` renamed to step-N, old ones pruned."""
    root, final = tmp.parent, _final(run_dir, step)
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()  # this rank's device only: resumable on fewer GPUs
    torch.save(rng, tmp / "rng.pt")
    write_json_atomic(tmp / "state.json", state)
    for f in tmp.iterdir():  # on disk before the rename makes the folder count as complete
        fsync_path(f)
    fsync_path(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_path(root)
    for old in list_steps(run_dir)[:-keep]:
        shutil.rmtree(root / f"step-{old}", ignore_errors=True)
    return final


def list_steps(run_dir: Path) -> list[int]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(int(m.group(1)) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)))


def latest(run_dir: Path) -> Path | None:
    steps = list_steps(run_dir)
    return Path(run_dir) / "checkpoints" / f"step-{steps[-1]}" if steps else None


def clean_partial(run_dir: Path) -> None:
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for p in root.glob(".step-*.tmp"):
            shutil.rmtree(p, ignore_errors=True)


def kind(path: Path) -> str:
    """'sharded' (DCP, written under FSDP) or 'full' (safetensors), from the files present."""
    return "sharded" if (Path(path) / ".metadata").is_file() else "full"


def check_kind(path: Path, sharded: bool) -> None:
    """A UserError if the checkpoint at `path` is not of the kind this run writes and reads."""
    found = kind(path)
    if found == ("sharded" if sharded else "full"):
        return
    if found == "sharded":
        raise UserError(
            f"{path} is a sharded checkpoint (written with --parallelism fsdp); resume it with "
            "torchrun on several processes and --parallelism fsdp."
        )
    raise UserError(
        f"{path} is a full checkpoint (written by one process or with --parallelism ddp); resume "
        "it with --parallelism ddp, or on one process."
    )


def load(path: Path, model, optimizer) -> dict:
    """Restore model, optimizer and RNG in place; return the JSON state."""
    check_kind(path, sharded=False)
    load_model(model, str(path / "model.safetensors"))
    optimizer.load_state_dict(
        torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    )
    return _load_rest(path)


def load_sharded(path: Path, model, optimizer) -> dict:
    """`load` for a sharded checkpoint into an FSDP model: every rank calls and reads its shards
    (DCP reshards when the number of ranks changed)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    check_kind(path, sharded=True)
    # The current state's structure (sharded DTensors, an AdamW state created with zero
    # gradients) is the template DCP loads into, in place.
    model_state, optim_state = get_state_dict(model, optimizer)
    saved = {"model": model_state, "optimizer": optim_state}
    dcp.load(saved, storage_reader=dcp.FileSystemReader(path))
    set_state_dict(model, optimizer, model_state_dict=saved["model"],
                   optim_state_dict=saved["optimizer"])
    return _load_rest(path)


def _load_rest(path: Path) -> dict:
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return json.loads((path / "state.json").read_text())
