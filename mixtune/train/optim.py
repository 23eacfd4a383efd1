"""AdamW and the paper's learning-rate schedule (Xie et al. 2023, appendix: linear warm-up over
6% of the steps, then exponential decay to a tenth of the peak)."""

from __future__ import annotations

import math

import torch

from mixtune.config import OptimConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]  # norms: decaying them only hurts
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=(cfg.beta1, cfg.beta2),
    )


def lr_at(step: int, cfg: OptimConfig, steps: int) -> float:
    """The learning rate of step `step` (0-based) of `steps`."""
    warmup = math.ceil(cfg.warmup_fraction * steps)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(steps - warmup - 1, 1)
    return cfg.lr * cfg.final_lr_ratio ** (min(step - warmup, span) / span)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
