"""Typed configuration of a training run (`mixtune train` and `mixtune doremi` share it)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from mixtune.errors import UserError


@dataclass
class TrainConfig:
    data: str
    """Prepared dataset folder (`mixtune prepare`)."""
    out: str
    """Run folder: config.yaml, metrics.jsonl, checkpoints/step-N/, final/."""
    weights: str = "natural"
    """Sampling mixture: natural, uniform, temperature:T or a JSON weights file."""
    scale: str = "tiny"
    """Named model scale (`mixtune scales`)."""
    steps: int = 1000
    """Optimizer steps."""
    batch_size: int = 32
    """Global batch in sequences, whatever the number of ranks and micro-batches."""
    seq_len: int | None = None
    """Tokens per sequence; default: the dataset's."""
    grad_accum: int = 1
    """Micro-batches per optimizer step on each rank."""
    lr: float = 1e-3
    """Peak learning rate (paper: 1e-3)."""
    final_lr_ratio: float = 0.1
    """Exponential decay ends at lr × this (paper: 1e-4 from 1e-3)."""
    warmup_fraction: float = 0.06
    """Linear warm-up over this fraction of the steps (paper: 6%)."""
    weight_decay: float = 0.01
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    seed: int = 0
    """Seeds the model's initial weights and the data order."""
    precision: str = "auto"
    """auto (bf16 autocast on a GPU that supports it, else fp32), fp32 or bf16."""
    device: str = "auto"
    """auto, cpu or cuda."""
    checkpoint_every: int = 100
    """Steps between checkpoints (a crash costs at most this many)."""
    keep_checkpoints: int = 2
    eval_every: int = 0
    """Evaluate on validation every N steps (0: only at the end)."""
    eval_max_tokens_per_domain: int | None = 65536
    """Cap on validation tokens per domain for in-training and final evaluation (None: all)."""
    eval_batch_size: int = 8
    report_to: str = "none"
    """none, tensorboard or wandb."""
    # --- DoReMi proxy (set `reference` to train a proxy) ---
    reference: str | None = None
    """Reference run folder (or its final/); setting it makes this a DoReMi proxy run."""
    eta: float = 1.0
    """Step size of the domain-weight update."""
    smoothing: float = 1e-3
    """Mix of the uniform distribution into the weights (c in the paper)."""
    loss_normalization: str = "domain"
    """domain (paper: Σ α_i · mean loss of domain i) or token (reference code)."""

    @property
    def is_proxy(self) -> bool:
        return self.reference is not None

    def validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise UserError(msg)

        # YAML can hand us "100" for a number: check types first, so the checks below compare numbers.
        for f in fields(self):
            v = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "str": str}.get(str(f.type).split(" |")[0])
            if want and v is not None and (isinstance(v, bool) or not isinstance(v, want)):
                raise UserError(
                    f"{f.name}: {v!r} is not a{'n' if want is int else ''} {str(f.type).split(' |')[0]}."
                )

        need(self.steps >= 1, f"--steps {self.steps}: must be at least 1.")
        need(self.batch_size >= 1, f"--batch-size {self.batch_size}: must be at least 1.")
        need(self.grad_accum >= 1, f"--grad-accum {self.grad_accum}: must be at least 1.")
        need(
            self.seq_len is None or self.seq_len >= 1,
            f"--seq-len {self.seq_len}: must be positive.",
        )
        need(self.lr > 0, f"--lr {self.lr}: must be positive.")
        need(
            0 < self.final_lr_ratio <= 1,
            f"final_lr_ratio {self.final_lr_ratio}: must be in (0, 1].",
        )
        need(
            0 <= self.warmup_fraction < 1,
            f"warmup_fraction {self.warmup_fraction}: must be in [0, 1).",
        )
        need(
            self.checkpoint_every >= 1,
            f"--checkpoint-every {self.checkpoint_every}: must be at least 1.",
        )
        need(self.eval_every >= 0, f"--eval-every {self.eval_every}: must be >= 0.")
        need(
            self.precision in ("auto", "fp32", "bf16"),
            f"--precision {self.precision!r}: auto, fp32 or bf16.",
        )
        need(
            self.report_to in ("none", "tensorboard", "wandb"),
            f"--report-to {self.report_to!r}: none, tensorboard or wandb.",
        )
        need(self.seed >= 0, f"--seed {self.seed}: must be >= 0.")
        need(self.grad_clip > 0, f"--grad-clip {self.grad_clip}: must be positive.")
        need(self.weight_decay >= 0, f"--weight-decay {self.weight_decay}: must be >= 0.")
        need(
            self.keep_checkpoints >= 1,
            f"keep_checkpoints {self.keep_checkpoints}: must be at least 1.",
        )
        need(
            self.eval_batch_size >= 1,
            f"eval_batch_size {self.eval_batch_size}: must be at least 1.",
        )
        need(
            self.eval_max_tokens_per_domain is None or self.eval_max_tokens_per_domain >= 1,
            f"eval_max_tokens_per_domain {self.eval_max_tokens_per_domain}: must be positive (or null for all).",
        )
        need(self.eta > 0, f"--eta {self.eta}: must be positive.")
        need(0 <= self.smoothing < 1, f"--smoothing {self.smoothing}: must be in [0, 1).")
        need(
            self.loss_normalization in ("domain", "token"),
            f"--loss-normalization {self.loss_normalization!r}: domain or token.",
        )
        if (
            self.report_to != "none"
        ):  # on every rank, before any collective: no rank waits on a failed one
            import importlib.util

            need(
                importlib.util.find_spec(self.report_to) is not None,
                f"--report-to {self.report_to}: the package is not installed (pip install 'mixtune[{self.report_to}]').",
            )

    # Fields that change what is computed; the rest (logging, checkpoint cadence) may change on resume.
    IDENTITY_EXCLUDE = (
        "checkpoint_every",
        "keep_checkpoints",
        "report_to",
        "eval_batch_size",
        "device",
        "out",
    )

    def identity(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.IDENTITY_EXCLUDE}


def to_yaml(cfg) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)


def from_dict(cls, d: dict, where: str):
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise UserError(
            f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}."
        )
    return cls(**d)


def load_yaml(path: Path) -> dict:
    try:
        obj = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found.") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e}).") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level.")
    return obj
