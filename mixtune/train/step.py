"""One optimizer step over the global batch, with the mixture method's loss factors.

Losses are sums over the global batch times per-domain factors (for a plain model 1/(B·T), so
the loss is the batch mean), multiplied by world_size because DDP and FSDP average gradients over
ranks: the gradient is then exactly the one-process, one-batch gradient, whatever the layout of
ranks and micro-batches.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from mixtune.data.sampler import DomainSampler, GlobalBatch, slot_range
from mixtune.distributed import all_reduce_sum
from mixtune.mixing.base import OnlineMixer
from mixtune.model.loss import per_domain_sum, token_losses
from mixtune.train.parallel import accumulating, as_float

MicroBatch = tuple[torch.Tensor, torch.Tensor]  # [b, T+1] token windows, [b] domain ids


def micro_batches(
    sampler: DomainSampler, plan: GlobalBatch, rank: int, world_size: int, grad_accum: int, device
) -> list[MicroBatch]:
    """This rank's micro-batches of the global batch (`slot_range`: independent of the layout)."""
    out = []
    for m in range(grad_accum):
        slots = slot_range(sampler.batch_size, world_size, rank, grad_accum, m)
        x = torch.from_numpy(sampler.tokens(plan, slots)).to(device)
        out.append((x, torch.from_numpy(plan.domain_ids[slots]).to(device)))
    return out


@dataclass
class StepResult:
    loss_sums: np.ndarray
    """[k] global per-domain sums of token losses."""
    objective: float
    """The minimised loss of the global batch."""
    grad_norm: float


def train_step(
    model: torch.nn.Module,
    ddp: torch.nn.Module,
    batches: list[MicroBatch],
    mixer: OnlineMixer,
    token_counts: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    amp: torch.dtype | None,
    world_size: int,
    grad_clip: float,
    z_loss: float = 0.0,
) -> StepResult:
    """Forward/backward over `batches` weighted by the mixer's factors, clip, optimizer step.
    `ddp` is `model` wrapped for data parallelism (`model` itself on one process and under FSDP,
    which shards `model` in place). `z_loss` > 0 adds z_loss × mean (log Z)² over the global
    batch's tokens (PaLM's z-loss, in DCLM's recipe): it keeps the softmax normaliser near 1."""

    def forward(net, x):
        if z_loss:
            return token_losses(net, x, amp, with_log_z=True)
        return token_losses(net, x, amp), None

    k = len(token_counts)
    device = batches[0][0].device
    scores, kept = (_score(mixer, batches, forward, model, ddp, k) if mixer.scores_batch
                    else (None, None))
    factors = mixer.loss_factors(scores, token_counts).to(device=device, dtype=torch.float32)

    loss_sums = torch.zeros(k, dtype=torch.float64, device=device)
    objective = torch.zeros((), dtype=torch.float64, device=device)
    for m, (x, dom) in enumerate(batches):
        sync = world_size == 1 or m == len(batches) - 1  # all-reduce gradients once, at the end
        with nullcontext() if sync else accumulating(ddp):
            losses, log_z = kept if kept is not None else forward(ddp, x)
            loss = (losses * factors[dom][:, None]).sum()
            if log_z is not None:
                loss = loss + z_loss * log_z.pow(2).sum() / token_counts.sum().item()
            (loss * world_size).backward()
        objective += loss.detach().double()
        loss_sums += per_domain_sum(losses.detach(), dom, k)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    # One collective for the logged numbers; .cpu() is a sync point on a GPU, paid once per step.
    logged = torch.cat([loss_sums, objective.view(1)])
    all_reduce_sum(logged)
    logged = logged.cpu().numpy()
    return StepResult(logged[:k], float(logged[k]), as_float(grad_norm))


def _score(mixer: OnlineMixer, batches: list[MicroBatch], forward, model, ddp, k: int):
    """The mixer's scores of the whole global batch (all-reduced), and the training forward's
    (losses, log Z) when it could serve as the scoring one.

    The factors (DoReMi's α_t) must be known before any backward pass and depend on the whole
    global batch. With one micro-batch the training forward doubles as the scoring forward; with
    accumulation the model scores every micro-batch without gradients first (one extra forward,
    ~1/3 of a step), instead of holding K activation graphs in memory."""
    single = len(batches) == 1
    scores = torch.zeros(k, dtype=torch.float64, device=batches[0][0].device)
    kept = None
    for x, dom in batches:
        with nullcontext() if single else torch.no_grad():
            losses, log_z = forward(ddp if single else model, x)
        scores += mixer.score(x, losses.detach(), dom)
        kept = (losses, log_z) if single else None
    all_reduce_sum(scores)
    return scores, kept
