"""How N processes hold the model: replicated (DDP), sharded (FSDP2) or, on one process, plain.

    mode    = choose(cfg.parallelism, n_params, dist)     # "none" | "ddp" | "fsdp"
    wrapped = parallelize(model, mode, dist)              # what forward/backward go through
    opt     = build_optimizer(model, ...)                 # after: FSDP swaps in sharded parameters

Under FSDP2 (`torch.distributed.fsdp.fully_shard`) each decoder layer and then the root are
sharded in place, so `model` is itself the wrapped module; its parameters are DTensors, each rank
holding 1/N of every parameter, gradient and AdamW moment. Gradients are reduce-scattered after
every micro-batch (`accumulating` is a no-op for FSDP) and evaluation runs with the parameters
gathered (`gathered`), so that ranks may run different numbers of forward passes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Literal

import torch

from mixtune.distributed import Dist, data_parallel

log = logging.getLogger(__name__)

Mode = Literal["none", "ddp", "fsdp"]

STATE_BYTES_PER_PARAM = 16
"""fp32 parameters, gradients and AdamW's two moments."""
MEMORY_FRACTION = 0.5
"""auto shards when the replicated state would take more than this share of a device: the rest is
for activations, the allocator's slack and, on a GPU, the CUDA context."""


def device_memory(device: torch.device) -> int:
    """Bytes one process may use: its GPU's memory, or its share of the machine's RAM (torchrun's
    local processes all live in it)."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return ram // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def choose(setting: str, n_params: int, dist: Dist, memory: int | None = None) -> Mode:
    """The mode for `setting` (auto, ddp, fsdp). `memory`: bytes per process (None: measured)."""
    if dist.world_size == 1:
        if setting == "fsdp" and dist.is_main:
            log.warning("--parallelism fsdp: one process has nothing to shard over; training the "
                        "plain model (launch with torchrun to shard).")
        return "none"
    if setting != "auto":
        return setting  # type: ignore[return-value]
    memory = device_memory(dist.device) if memory is None else memory
    needed = STATE_BYTES_PER_PARAM * n_params
    mode: Mode = "fsdp" if needed > MEMORY_FRACTION * memory else "ddp"
    if dist.is_main:
        log.info("--parallelism auto: %s (training state %.1f GB, %.1f GB per process)", mode,
                 needed / 1e9, memory / 1e9)
    return mode


def parallelize(model: torch.nn.Module, mode: Mode, dist: Dist) -> torch.nn.Module:
    """The module forward and backward go through: a DDP wrapper of `model`, or `model` itself,
    sharded in place under FSDP (build the optimizer afterwards, on `model.parameters()`)."""
    if mode == "none":
        return model
    if mode == "ddp":
        return data_parallel(model, dist)
    from torch.distributed.fsdp import fully_shard

    # One unit per decoder layer: its parameters are gathered just before its forward and freed
    # after, so a rank holds at most one layer unsharded (plus the root's embeddings and norm).
    for layer in model.model.layers:
        fully_shard(layer)
    fully_shard(model)
    # FSDP2 takes the first module to run forward as its root. Evaluation may call a submodule
    # first (scoring runs `model.base_model`), so one token through the root settles it now.
    with torch.no_grad():
        model(input_ids=torch.zeros(1, 1, dtype=torch.long, device=dist.device), use_cache=False)
    model.reshard()  # the root keeps its parameters gathered after a forward; the optimizer
    return model     # must see the sharded ones


def accumulating(wrapped: torch.nn.Module):
    """Context for the backward passes of all micro-batches but the last. DDP skips its
    all-reduce until the last one. FSDP reduce-scatters after every micro-batch: deferring it
    (`set_requires_gradient_sync(False)`) would hold a whole unsharded gradient on every rank,
    the memory FSDP is there to save."""
    from torch.nn.parallel import DistributedDataParallel

    return wrapped.no_sync() if isinstance(wrapped, DistributedDataParallel) else nullcontext()


def as_float(t: torch.Tensor) -> float:
    """A scalar as a float; a DTensor's (FSDP's gradient norm) is reduced over ranks first."""
    from torch.distributed.tensor import DTensor

    return float(t.full_tensor() if isinstance(t, DTensor) else t)


def _fsdp_modules(model: torch.nn.Module) -> list:
    from torch.distributed.fsdp import FSDPModule

    return [m for m in model.modules() if isinstance(m, FSDPModule)]


@contextmanager
def gathered(model: torch.nn.Module, mode: Mode) -> Iterator[None]:
    """Evaluation's context: under FSDP every parameter is all-gathered once on entry (every rank
    enters) and kept until exit, so forward passes need no collective and ranks may run different
    numbers of them (their shares of windows and of downstream items differ; generation stops at
    different lengths). Costs the full parameters on every rank, as inference does; gradients and
    optimizer state stay sharded. A no-op otherwise."""
    if mode != "fsdp":
        yield
        return
    units = _fsdp_modules(model)
    inner = [m for m in units if m is not model]  # the root never reshards after forward anyway
    for m in units:
        m.unshard()
    for m in inner:
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for m in inner:
            m.set_reshard_after_forward(True, recurse=False)
        for m in units:
            m.reshard()


def full_model(model: torch.nn.Module, mode: Mode, dist: Dist) -> torch.nn.Module | None:
    """The model to save as final/, on rank 0 (None on other ranks under FSDP; every rank must
    call). Under FSDP: a plain copy of the model's class on the CPU holding the gathered full
    state dict, for `save_pretrained` (its non-persistent buffers, rotary tables, stay on the meta
    device: it is for saving, not for running)."""
    if mode != "fsdp":
        return model
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import FSDPModule

    full = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )
    if not dist.is_main:
        return None
    # fully_shard swapped the class for FSDP<Class>(FSDPModule, Class); save as Class, so that
    # config.json names the real architecture.
    cls = next(c for c in type(model).__mro__
               if issubclass(c, torch.nn.Module) and not issubclass(c, FSDPModule))
    with torch.device("meta"):
        plain = cls(model.config)
    plain.load_state_dict(full, assign=True)
    plain.tie_weights()  # assign=True replaced the tied embedding and output as two tensors
    return plain
