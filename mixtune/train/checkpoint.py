"""Checkpoints: `checkpoints/step-N/` holding everything needed to continue exactly.

    model.safetensors   weights (safetensors: loading never runs code)
    optimizer.pt        AdamW state, loaded with `torch.load(weights_only=True)` (tensors and numbers only)
    rng.pt              torch RNG states, same loader
    state.json          step, tokens, sampler state, mixture-method state

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

from mixtune.io import fsync_path, write_json_atomic

_STEP_DIR = re.compile(r"^step-(\d+)$")


def save(run_dir: Path, step: int, model, optimizer, state: dict, keep: int = 2) -> Path:
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))  # handles the tied embedding / output weights
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
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


def load(path: Path, model, optimizer) -> dict:
    """Restore model, optimizer and RNG in place; return the JSON state."""
    load_model(model, str(path / "model.safetensors"))
    optimizer.load_state_dict(
        torch.load(path / "optimizer.pt", weights_only=True, map_location="cpu")
    )
    rng = torch.load(path / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    state = json.loads((path / "state.json").read_text())
    if "doremi" in state and "mixer" not in state:  # written by mixtune 0.1
        state["mixer"] = state.pop("doremi")
    return state
