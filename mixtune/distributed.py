"""Distributed set-up in one place: torchrun's environment -> process group, device, helpers.

One process is the special case of N: every helper here works (as a no-op) without a process group,
so the training loop is the same code on a laptop and on several nodes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from mixtune.errors import UserError


@dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU), pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda and not torch.cuda.is_available():
        raise UserError(
            f"--device {device}: no CUDA device is available here; use --device cpu or auto."
        )
    if use_cuda:
        # One process may name its GPU (cuda:1); under torchrun each takes cuda:LOCAL_RANK.
        index = int(device[5:]) if device.startswith("cuda:") and world == 1 else local_rank
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
        # N processes on one machine share its cores: without this each one would start a thread per
        # core and they would fight over them.
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    if world > 1 and not dist.is_initialized():
        # Rank 0 alone writes checkpoints, final/ and (in a pipeline) prepares data while the other
        # ranks wait in a barrier; the default 10-30 minute watchdog would kill them on big runs.
        minutes = float(os.environ.get("MIXTUNE_DIST_TIMEOUT_MIN", "180"))
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", timeout=timedelta(minutes=minutes)
        )
    return Dist(rank, world, local_rank, dev)


def data_parallel(model: torch.nn.Module, d: Dist) -> torch.nn.Module:
    """The model wrapped for DDP on more than one process (gradients all-reduced in backward)."""
    if d.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (a no-op on one process)."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def on_main(decide):
    """`decide()` computed on rank 0 alone and shared with every rank: for decisions read from
    files that rank 0 may change next (a rank reading later would see another state) or that a
    shared file system may show late on other nodes. An exception on rank 0 is raised on every
    rank, so that none waits for it at the next collective."""
    if not (dist.is_initialized() and dist.get_world_size() > 1):
        return decide()
    result, error = None, None
    if dist.get_rank() == 0:
        try:
            result = decide()
        except Exception as e:  # re-raised below, on rank 0 with its traceback
            error = e
    box = [(result, None if error is None else str(error), isinstance(error, UserError))]
    dist.broadcast_object_list(box, src=0)
    result, message, user_error = box[0]
    if error is not None:
        raise error
    if message is not None:
        raise UserError(message) if user_error else RuntimeError(f"rank 0 failed: {message}")
    return result


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
