"""The settings of one training run, next to the loop that reads them (no torch imported here).

    TrainConfig      mixtune train / doremi; a run folder's config.yaml   (train: in a run YAML)
      mixing           static weights or a DoReMi proxy (or any registered online method)
      optim            AdamW and the learning-rate schedule
      eval             validation during and after training         (keys eval_*)
      checkpoint       cadence and retention                        (keys checkpoint_every, keep_checkpoints)
      log              progress, MFU, TensorBoard / W&B

Outside, every option has one flat name (`lr`, `eval_every`); inside, `cfg.optim.lr`,
`cfg.eval.every` (`mixtune.schema`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from mixtune import schema
from mixtune.data.weights import LAYOUTS, Layout
from mixtune.errors import UserError
from mixtune.eval.config import EVAL_BATCH_SIZE, TaskSelection
from mixtune.io import load_yaml
from mixtune.mixing import MIXERS
from mixtune.mixing.static import StaticConfig
from mixtune.model.device import DeviceOptions
from mixtune.model.scales import DEFAULT_SCALE, get_scale, scale_problem, steps_for_budget
from mixtune.progress import EVERY
from mixtune.schema import at_least, in_range, positive, section, setting


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule. A setting left at none takes the value of the scale's
    recipe (`mixtune scales`): DoReMi's for its scales, DCLM's for the dclm-* scales."""

    lr: float | None = setting(None, check=positive)
    """Peak learning rate (none: the scale's recipe; DoReMi 1e-3, DCLM 3e-3 or 2e-3)."""
    schedule: Literal["exponential", "cosine"] | None = None
    """Decay after the warm-up (none: the scale's recipe; DoReMi exponential, DCLM cosine)."""
    final_lr_ratio: float | None = setting(None, check=in_range(0, 1, lo_open=True))
    """The decay ends at lr × this (none: the scale's recipe; DoReMi 0.1, DCLM 3e-5 / lr)."""
    warmup_fraction: float | None = setting(None, check=in_range(0, 1, hi_open=True))
    """Linear warm-up over this fraction of the steps (none: the scale's recipe; DoReMi 6%)."""
    warmup_steps: int | None = setting(None, check=at_least(0))
    """Linear warm-up over this many steps, instead of a fraction (none: the scale's recipe;
    DCLM's GPU scales 2000 or 5000)."""
    weight_decay: float | None = setting(None, check=at_least(0))
    """AdamW weight decay, not applied to norms (none: the scale's recipe; DoReMi 0.01, DCLM 0.033
    or 0.05)."""
    beta1: float = setting(0.9, check=in_range(0, 1, hi_open=True))
    """AdamW β1."""
    beta2: float | None = setting(None, check=in_range(0, 1, hi_open=True))
    """AdamW β2 (none: the scale's recipe; DoReMi 0.99, DCLM 0.95)."""
    grad_clip: float = setting(1.0, check=positive)
    """Clip the global gradient norm to this."""
    z_loss: float | None = setting(None, check=at_least(0))
    """Weight of the z-loss, mean log²Z of the softmax normaliser, added to the training loss
    (none: the scale's recipe; DoReMi 0, DCLM 1e-4 or 5e-6)."""

    def resolve(self, scale: str) -> OptimConfig:
        """Every none filled from `scale`'s recipe. A warm-up given either way replaces the
        recipe's warm-up as a whole."""
        r = get_scale(scale).recipe
        given_warmup = self.warmup_fraction is not None or self.warmup_steps is not None
        pick = lambda mine, recipe: recipe if mine is None else mine  # noqa: E731
        return replace(
            self,
            lr=pick(self.lr, r.lr),
            schedule=pick(self.schedule, r.schedule),
            # DCLM's cool-down is an absolute 3e-5: with the recipe's lr, the recipe's ratio.
            final_lr_ratio=pick(self.final_lr_ratio, r.final_lr_ratio),
            warmup_fraction=self.warmup_fraction if given_warmup else r.warmup_fraction,
            warmup_steps=self.warmup_steps if given_warmup else r.warmup_steps,
            weight_decay=pick(self.weight_decay, r.weight_decay),
            beta2=pick(self.beta2, r.beta2),
            z_loss=pick(self.z_loss, r.z_loss),
        )

    @classmethod
    def for_scale(cls, scale: str = "tiny") -> OptimConfig:
        """The recipe of `scale`, every setting filled (DoReMi's for tiny ... 8B)."""
        return cls().resolve(scale)


@dataclass(kw_only=True)
class EvalConfig(TaskSelection):
    """Validation during and after training, and the downstream tasks scored with it."""

    every: int = setting(0, check=at_least(0))
    """Evaluate on the validation split every N steps (0: only at the end)."""
    max_tokens_per_domain: int | None = setting(65536, check=at_least(0))
    """Validation tokens per domain, during and at the end of training (0 or none: all)."""
    batch_size: int = setting(EVAL_BATCH_SIZE, check=at_least(1), identity=False)
    """Sequences per evaluation forward pass."""


@dataclass
class CheckpointConfig:
    every: int = setting(100, check=at_least(1), identity=False)
    """Steps between checkpoints: a crash costs at most this many."""
    keep: int = setting(2, check=at_least(1), key="keep_checkpoints", identity=False)
    """Checkpoints kept on disk, the newest."""


@dataclass
class LogConfig:
    report_to: Literal["none", "tensorboard", "wandb"] = setting("none", identity=False)
    """Mirror metrics.jsonl to TensorBoard or Weights & Biases (pip install 'mixtune[tensorboard]'
    or 'mixtune[wandb]')."""
    progress_every: float = setting(EVERY, check=positive, identity=False)
    """Seconds between progress lines when stderr is not a terminal (a log file, a batch job)."""
    peak_tflops: float | None = setting(None, check=positive, identity=False)
    """Peak TFLOP/s of one device, for MFU (none: a known GPU's bf16 peak, else a matmul measured
    on the device)."""

    def validate(self, label) -> None:
        import importlib.util

        # Checked on every rank before any collective: no rank waits on one that failed.
        if self.report_to != "none" and importlib.util.find_spec(self.report_to) is None:
            raise UserError(
                f"{label('report_to')} {self.report_to}: the package is not installed "
                f"(pip install 'mixtune[{self.report_to}]')."
            )


@dataclass(kw_only=True)
class TrainSettings(DeviceOptions):
    """How a model trains, whatever it trains on: `train:` in a run YAML, where the pipeline gives
    each stage its dataset and folder (and its scale, steps, batch and mixture)."""

    steps: int | None = setting(None, check=at_least(1))
    """Optimizer steps (none: the token budget, 20 tokens per parameter × chinchilla_multiplier)."""
    chinchilla_multiplier: float = setting(1.0, check=positive)
    """With steps none: train on this many times the Chinchilla-optimal tokens (DCLM's 1x, 2x)."""
    scale: str = setting(DEFAULT_SCALE, check=scale_problem)
    """Model scale and its recipe (see mixtune scales)."""
    batch_size: int | None = setting(None, check=at_least(1))
    """Global batch in sequences, whatever the number of processes and micro-batches (none: the
    scale's recipe; 32, DCLM's GPU scales 256 to 2048)."""
    seq_len: int | None = setting(None, check=at_least(1))
    """Tokens per sequence (none: the dataset's)."""
    grad_accum: int = setting(1, check=at_least(1))
    """Micro-batches per optimizer step on each process."""
    seed: int = setting(0, check=at_least(0))
    """Seeds the model's initial weights and the data order."""
    parallelism: Literal["auto", "ddp", "fsdp"] = setting("auto", identity=False)
    """How N processes share the model: ddp replicates it; fsdp (FSDP2) shards parameters,
    gradients and AdamW state, with sharded checkpoints. auto: fsdp when the fp32 training state
    (~16 bytes per parameter) would fill over half of a device's memory, else ddp. One process
    always trains the plain model."""
    weights_layout: Layout = setting(LAYOUTS[0], identity=False)
    """Layout of the domain_weights.json a proposing method writes (a DoReMi proxy's ᾱ): doremi,
    the reference code's {train_domain_weights, eval_domain_weights}; flat, {domain: weight}."""
    mixing: Any = section(StaticConfig, variants=MIXERS)
    optim: OptimConfig = section(OptimConfig)
    eval: EvalConfig = section(EvalConfig, prefix="eval")
    checkpoint: CheckpointConfig = section(CheckpointConfig, prefix="checkpoint")
    log: LogConfig = section(LogConfig)


@dataclass
class TrainConfig(TrainSettings):
    """One training run: its settings, the dataset it trains on and the folder it writes."""

    data: str
    """Prepared dataset folder (mixtune prepare)."""
    out: str = setting(identity=False)
    """Run folder: config.yaml, metrics.jsonl, checkpoints/step-N/, final/ (rerunning continues it)."""

    def resolved(self, vocab_size: int | None = None, seq_len: int | None = None) -> TrainConfig:
        """Every none the scale's recipe decides filled in: the optimizer settings, the batch, and
        with the dataset's vocabulary and sequence length, the steps of the token budget."""
        recipe = get_scale(self.scale).recipe
        batch = self.batch_size or recipe.batch_size
        steps = self.steps
        if steps is None and vocab_size is not None and seq_len is not None:
            steps = steps_for_budget(self.scale, vocab_size, self.chinchilla_multiplier, batch,
                                     self.seq_len or seq_len)
        return replace(self, optim=self.optim.resolve(self.scale), batch_size=batch, steps=steps)

    def identity(self) -> dict:
        """The settings that change what is computed (a run folder refuses others); a value the
        recipe decides counts as that value, given or not."""
        return schema.identity(self.resolved())

    def to_yaml(self) -> str:
        return yaml.safe_dump(schema.to_flat(self), sort_keys=False)


def train_config(**flat) -> TrainConfig:
    """A checked TrainConfig from flat keys, as on the command line: `train_config(data=..., lr=...)`."""
    return schema.parse(TrainConfig, flat, "train settings")


def load_train_config(path: Path) -> TrainConfig:
    """A run folder's config.yaml."""
    flat = load_yaml(path)
    if schema.METHOD not in flat:
        raise UserError(f"{path}: written by an older mixtune (no `{schema.METHOD}` key); delete "
                        f"{Path(path).parent} to train that run again.")
    return schema.parse(TrainConfig, flat, str(path))
