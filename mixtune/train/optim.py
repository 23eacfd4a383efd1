"""AdamW and the learning-rate schedules of the recipes: linear warm-up, then DoReMi's exponential
decay (Xie et al. 2023, appendix: 6% warm-up, decay to a tenth of the peak) or DCLM's cosine
cool-down (open_lm's: to 3e-5). `cfg` must be resolved (`OptimConfig.resolve(scale)`)."""

from __future__ import annotations

import math

import torch

from mixtune.train.config import OptimConfig


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    _check_resolved(cfg)
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
    _check_resolved(cfg)
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else math.ceil(cfg.warmup_fraction * steps)
    warmup = min(warmup, steps - 1)  # a run shorter than the recipe's warm-up still decays at the end
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    span = max(steps - warmup - 1, 1)
    progress = min(step - warmup, span) / span
    if cfg.schedule == "cosine":
        final = cfg.lr * cfg.final_lr_ratio
        return final + 0.5 * (cfg.lr - final) * (1 + math.cos(math.pi * progress))
    return cfg.lr * cfg.final_lr_ratio ** progress


def _check_resolved(cfg: OptimConfig) -> None:
    if cfg.lr is None or cfg.schedule is None or cfg.beta2 is None:
        raise ValueError("OptimConfig has settings left to the scale's recipe: use "
                         "OptimConfig.for_scale(scale) or cfg.resolve(scale)")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
