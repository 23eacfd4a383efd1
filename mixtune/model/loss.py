"""Per-token losses and their per-domain sums: what training, mixers and evaluation all measure."""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F


def token_losses(
    model, x: torch.Tensor, autocast_dtype: torch.dtype | None = None, *, with_log_z: bool = False
):
    """[b, T] cross-entropy of every target token of `x` ([b, T+1] windows) under a causal LM
    (anything called as `model(input_ids=...)` returning `.logits`). `autocast_dtype`: run the
    forward under autocast to it (None: as the caller's context has it). `with_log_z`: also return
    [b, T] log Z, the log of the softmax normaliser (for the z-loss)."""
    amp = torch.autocast(x.device.type, dtype=autocast_dtype) if autocast_dtype else nullcontext()
    with amp:
        logits = model(input_ids=x[:, :-1], use_cache=False).logits
    y = x[:, 1:]
    # float32 logits for the softmax: bf16 would cost ~0.01 nats of precision on a large vocabulary.
    logits = logits.float()
    losses = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
    return (losses, torch.logsumexp(logits, dim=-1)) if with_log_z else losses


def per_domain_sum(values: torch.Tensor, domain_ids: torch.Tensor, k: int) -> torch.Tensor:
    """Sum [b, T] values into [k] by the domain of each row (float64 so sums do not drift)."""
    return torch.zeros(k, dtype=torch.float64, device=values.device).index_add_(
        0, domain_ids, values.sum(dim=1).double()
    )


def autocast_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast for `bf16`, and for `auto` on a GPU that supports it; else fp32 (None)."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None  # bf16 autocast on CPU is usually slower than fp32 matmuls
