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
always complete; a crash mid-write leaves only a temp folder, removed on the next start. A failed
write removes it at once, and a full disk (or quota) is a UserError naming the checkpoint
(`_writing_checkpoint`): torch.save and safetensors do not raise the OSError that `io.writing`
turns into one.

Before a run resumes from `step-N`, `verify` checks every file cheaply (headers, the pickles'
structure, state.json's fields; not the tensor bytes) against the run: a checkpoint cut short by
a disk or a copy, edited by hand or taken from another run raises `Damaged`, naming the file and
what is wrong, before anything is loaded into the model. The loop then sets it aside
(`damaged-step-N/`, no longer counted) and tries the one before.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import re
import shutil
import sys
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from mixtune import distributed
from mixtune.errors import UserError
from mixtune.io import (
    follow_umask,
    fsync_path,
    no_space_errno,
    no_space_message,
    os_error_code,
)

_STEP_DIR = re.compile(r"^step-(\d+)$")
_FILES = {"full": ("model.safetensors", "optimizer.pt", "rng.pt", "state.json"),
          "sharded": (".metadata", "rng.pt", "state.json")}


class Damaged(UserError):
    """A checkpoint that cannot be resumed: the file, and what is wrong with it."""

    def __init__(self, file: Path, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file, self.problem = Path(file), problem


def save(run_dir: Path, step: int, model, optimizer, state: dict, keep: int = 2) -> Path:
    """A full checkpoint, written by one process (rank 0)."""
    tmp = _tmp(run_dir, step)
    with _writing_checkpoint(run_dir, step):
        _fresh_tmp(run_dir, step)
        # save_model handles the tied embedding / output weights
        save_model(model, str(tmp / "model.safetensors"))
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
    # Only rank 0 removes what a failure left; a full disk met by any rank is reported by every
    # rank (DCP's CheckpointException holds every rank's error).
    with _writing_checkpoint(run_dir, step, remove=is_main):
        if is_main:
            _fresh_tmp(run_dir, step)
        distributed.barrier()  # the folder exists, empty, before any rank writes into it
        model_state, optim_state = get_state_dict(model, optimizer)
        # Returns on every rank once all have written (rank 0 gathers their results for
        # .metadata); each rank fsyncs its own files (FileSystemWriter's sync_files).
        dcp.save({"model": model_state, "optimizer": optim_state},
                 storage_writer=dcp.FileSystemWriter(tmp))
        if is_main:
            _publish(run_dir, step, tmp, state, keep)
    distributed.barrier()  # no rank goes on (and may crash) before step-N is in place
    return step_dir(run_dir, step)


# -- a full disk while writing a checkpoint ----------------------------------------------------
# torch.save's zip writer reports a failed write as a RuntimeError without an errno ("...
# PytorchStreamWriter failed writing file data/0: file write failed", "unexpected pos 832 vs
# 726"); safetensors (SafetensorError) and other Rust writers name the OS error in their message
# ("... No space left on device (os error 28)"); DCP raises a CheckpointException holding each
# rank's error. An error without an errno counts as a full disk only when it is a write failure
# and the file system of the checkpoint has (almost) no space left: checked before the partial
# files are removed, while they still fill it.

_TORCH_WRITE_FAILED = re.compile(r"PytorchStreamWriter|inline_container|unexpected pos|write failed")
NEARLY_FULL_BYTES = 16 << 20
"""Less free space than this, after a write failed without saying why: the disk is full."""


@contextmanager
def _writing_checkpoint(run_dir: Path, step: int, remove: bool = True) -> Iterator[None]:
    """Inside the block, a failure removes the temp folder of step-N (if `remove`) and is raised
    again: a full disk or quota as a UserError naming the checkpoint, any other error as it was."""
    tmp = _tmp(run_dir, step)
    try:
        yield
    except BaseException as err:  # cleans up and re-raises whatever it was
        code = _no_space_errno(err, tmp)
        if remove:
            shutil.rmtree(tmp, ignore_errors=True)
        if code is None:
            raise
        raise UserError(no_space_message(step_dir(run_dir, step),
                                         OSError(code, os.strerror(code)))) from None


def _no_space_errno(err: BaseException, folder: Path) -> int | None:
    """ENOSPC or EDQUOT if `err`, raised while writing into `folder`, is a full disk or quota;
    else None."""
    dcp_api = sys.modules.get("torch.distributed.checkpoint.api")  # loaded if DCP raised `err`
    if dcp_api is not None and isinstance(err, dcp_api.CheckpointException):
        # every rank's error: (exception, traceback) by rank
        return next((c for e, _tb in err.failures.values()
                     if (c := _no_space_errno(e, folder)) is not None), None)
    if not isinstance(err, Exception) or isinstance(err, UserError):
        return None  # Ctrl-C; a message already (write_json_atomic's own full disk)
    if os_error_code(err) is not None:  # an errno, or a Rust writer's (safetensors) in its message
        return no_space_errno(err)
    write_failed = isinstance(err, SafetensorError) or (
        isinstance(err, RuntimeError) and _TORCH_WRITE_FAILED.search(str(err)) is not None)
    return errno.ENOSPC if write_failed and _free_bytes(folder) < NEARLY_FULL_BYTES else None


def _free_bytes(folder: Path) -> int:
    """The space left to this user on the file system of `folder` (or of the nearest folder above
    it that exists)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _tmp(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f".step-{step}.tmp"


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step}"


def _fresh_tmp(run_dir: Path, step: int) -> Path:
    tmp = _tmp(run_dir, step)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


def _publish(run_dir: Path, step: int, tmp: Path, state: dict, keep: int) -> Path:
    """RNG and state into `tmp`, everything synced, `tmp` renamed to step-N, old ones pruned."""
    root, final = tmp.parent, step_dir(run_dir, step)
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()  # this rank's device only: resumable on fewer GPUs
    torch.save(rng, tmp / "rng.pt")
    # A plain write: the folder is published whole (and every file in it fsync'd) below.
    (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
    follow_umask(tmp)  # safetensors writes 0600: a team's runs must be readable by the team
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


def set_aside(path: Path) -> Path:
    """Rename a damaged `step-N` to `damaged-step-N` (replacing an older one of that name): kept
    for inspection, no longer counted, so that the resumed run's own step-N neither overwrites it
    nor, being older, gets pruned before it."""
    path = Path(path)
    target = path.with_name(f"damaged-{path.name}")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(path, target)
    fsync_path(path.parent)
    return target


def clean_partial(run_dir: Path) -> None:
    root = Path(run_dir) / "checkpoints"
    if root.is_dir():
        for p in root.glob(".step-*.tmp"):
            shutil.rmtree(p, ignore_errors=True)


def kind(path: Path) -> str:
    """'sharded' (DCP, written under FSDP) or 'full' (safetensors), from the files present (shards
    without their .metadata are still a sharded checkpoint, a damaged one)."""
    path = Path(path)
    return "sharded" if (path / ".metadata").is_file() or any(path.glob("*.distcp")) else "full"


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


def verify(path: Path, steps: int, model, optimizer, sharded: bool = False) -> dict:
    """The JSON state of the checkpoint at `path` once its files are checked against this run of
    `steps` steps (a full checkpoint's against `model` and `optimizer`); `Damaged` otherwise, and
    a UserError for a checkpoint of the other kind. Reads headers and pickles (their tensors
    memory-mapped, not read), never changes the model: a damaged checkpoint leaves it as it was."""
    path = Path(path)
    check_kind(path, sharded)
    for name in _FILES[kind(path)]:
        if not (path / name).is_file():
            raise Damaged(path / name, "missing")
    state = _read_state(path, steps)
    rng = _torch_load(path / "rng.pt")
    if not (isinstance(rng, dict) and isinstance(rng.get("cpu"), torch.Tensor)):
        raise Damaged(path / "rng.pt", "not an RNG state (no 'cpu' tensor)")
    if sharded:
        _check_shards(path)
    else:
        _check_weights(path / "model.safetensors", model)
        _check_optimizer(path / "optimizer.pt", optimizer)
    return state


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


_IS = {
    "a count": _is_count,
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "an object": lambda v: isinstance(v, dict),
    "a list of counts": lambda v: isinstance(v, list) and all(map(_is_count, v)),
    "a list of numbers": lambda v: isinstance(v, list) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v),
    "a list of names": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
}
# What the loop writes (loop._save; the sampler's part is DomainSampler.state_dict). The mixer's
# state is the mixture method's own: only its being an object is checked here.
_LAYOUT = (("step", "a count"), ("tokens", "a count"), ("sampler", "an object"),
           ("sampler.step", "a count"), ("sampler.consumed", "a list of counts"),
           ("sampler.seed", "an integer"), ("sampler.batch_size", "a count"),
           ("sampler.weights", "a list of numbers"), ("sampler.domains", "a list of names"))


def _read_state(path: Path, steps: int) -> dict:
    file = path / "state.json"
    try:
        state = json.loads(file.read_text())
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError: cut short or overwritten
        raise Damaged(file, f"not valid JSON ({e})") from e
    problem = _state_problem(state, path.name, steps)
    if problem:
        raise Damaged(file, problem)
    return state


def _state_problem(state, folder: str, steps: int) -> str | None:
    """What is wrong with a checkpoint's JSON state, or None."""
    if not isinstance(state, dict):
        return f"holds {_short(state)}, not an object"
    for key, what in _LAYOUT:
        value = state
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return f"{key} is missing"
            value = value[part]
        if not _IS[what](value):
            return f"{key} is {_short(value)}, not {what}"
    if not isinstance(state.get("mixer", {}), dict):
        return f"mixer is {_short(state['mixer'])}, not an object"
    step, sampler = state["step"], state["sampler"]
    if step > steps:  # resuming would skip training and finish as if done
        return f"step {step} is beyond this run's {steps} steps (a checkpoint of another run?)"
    if (m := _STEP_DIR.match(folder)) and int(m.group(1)) != step:
        return f"step is {step}, but the folder is {folder}"
    if sampler["step"] != step:
        return f"sampler.step is {sampler['step']}, but step is {step}"
    k = len(sampler["domains"])
    if len(sampler["consumed"]) != k or len(sampler["weights"]) != k:
        return f"sampler.consumed and sampler.weights need one entry for each of {k} domains"
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _torch_load(file: Path):
    """`torch.load(weights_only=True)` of a checkpoint file, tensors memory-mapped (cheap for a
    check); `Damaged` for a file cut short, garbled, or holding objects that loader refuses."""
    if not zipfile.is_zipfile(file):  # torch.save writes a zip archive; its index is at the end
        raise Damaged(file, "truncated, or not written by torch.save (no zip archive index)")
    try:
        return torch.load(file, weights_only=True, mmap=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:  # torch's unreadable-file errors
        raise Damaged(file, _unpickle_problem(e)) from e


def _unpickle_problem(e: Exception) -> str:
    # torch's refusal names the global it would not import ("... GLOBAL posix.system ..."); its
    # advice to allowlist it is what a checkpoint must never need.
    refused = re.search(r"GLOBAL (\S+?)[.,;:]?(?:\s|$)", str(e))
    if refused:
        return (f"refused: it holds a Python object ({refused.group(1)}) that "
                "torch.load(weights_only=True) does not build; checkpoints hold only tensors and "
                "numbers, so this file was not written by mixtune")
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return f"unreadable ({type(e).__name__}: {lines[0][:200] if lines else 'no data'})"


def _check_weights(file: Path, model) -> None:
    """The safetensors header (which also checks the file's length) against `model`'s tensors."""
    try:
        with safe_open(str(file), "pt") as f:
            # safe_open is not iterable: keys() is its listing
            shapes = {name: list(f.get_slice(name).get_shape()) for name in f.keys()}  # noqa: SIM118
    except SafetensorError as e:
        raise Damaged(file, f"truncated or not a safetensors file ({e})") from e
    mine = model.state_dict()
    for name, shape in shapes.items():
        if name not in mine:
            raise Damaged(file, f"holds {name}, which this model lacks (another model's weights?)")
        if list(mine[name].shape) != shape:
            raise Damaged(file, f"{name} has shape {shape}, this model's {list(mine[name].shape)}")
    # Tied tensors (the embedding and output weights) are saved once, under one of their names.
    saved = {mine[name].data_ptr() for name in shapes}
    missing = [name for name, t in mine.items() if name not in shapes and t.data_ptr() not in saved]
    if missing:
        raise Damaged(file, f"lacks {missing[0]} ({len(missing)} of this model's tensors)")


def _check_optimizer(file: Path, optimizer) -> None:
    """AdamW's saved state against `optimizer`: its groups' sizes, each state tensor's shape."""
    saved = _torch_load(file)
    if not (isinstance(saved, dict) and isinstance(saved.get("state"), dict)
            and isinstance(saved.get("param_groups"), list)
            and all(isinstance(g, dict) and isinstance(g.get("params"), list)
                    for g in saved["param_groups"])):
        raise Damaged(file, "not an optimizer state ('state' and 'param_groups')")
    want = [len(g["params"]) for g in optimizer.param_groups]
    got = [len(g["params"]) for g in saved["param_groups"]]
    if got != want:
        raise Damaged(file, f"parameter groups of {got} parameters, this run's optimizer has {want}")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ids = [i for g in saved["param_groups"] for i in g["params"]]
    for i, p in zip(ids, params, strict=True):
        entry = saved["state"].get(i, {})
        if not isinstance(entry, dict):
            raise Damaged(file, f"the state of parameter {i} is {_short(entry)}, not an object")
        for name, t in entry.items():
            if isinstance(t, torch.Tensor) and t.dim() and t.shape != p.shape:
                raise Damaged(file, f"{name} of parameter {i} has shape {list(t.shape)}, the "
                                    f"parameter {list(p.shape)} (another model's state?)")


def _check_shards(path: Path) -> None:
    """DCP's .metadata readable, and every shard file it lists present and long enough."""
    import torch.distributed.checkpoint as dcp

    try:
        metadata = dcp.FileSystemReader(path).read_metadata()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:  # a pickle cut short or garbled
        raise Damaged(path / ".metadata", _unpickle_problem(e)) from e
    ends: dict[str, int] = {}
    for info in getattr(metadata, "storage_data", {}).values():
        end = info.offset + info.length
        ends[info.relative_path] = max(ends.get(info.relative_path, 0), end)
    if not ends:
        raise Damaged(path / ".metadata", "lists no shard files")
    for name, end in sorted(ends.items()):
        shard = path / name
        if not shard.is_file():
            raise Damaged(shard, "missing (listed in .metadata)")
        if shard.stat().st_size < end:
            raise Damaged(shard, f"truncated: {shard.stat().st_size} bytes, .metadata lists data "
                                 f"up to byte {end}")


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
