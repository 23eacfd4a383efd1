"""Named model scales: shapes and training recipes, from a 2-layer CPU toy to DCLM's 7B.

Two families, each with the recipe it was published with:

- DoReMi's (Xie et al. 2023, Table 5, and the reference code's 120M): Llama-style, tied embeddings;
  AdamW β2 0.99, lr 1e-3, 6% warm-up, exponential decay to lr/10, weight decay 0.01.
- DCLM's (Li et al. 2024, `training/configs/*.json` of mlfoundations/dclm): open_lm-style, qk-norm,
  untied embeddings; β2 0.95, lr 3e-3 (2e-3 at 7B), weight decay 0.033 (0.05), a warm-up of 2000
  or 5000 steps, cosine cool-down to 3e-5, z-loss 1e-4 (5e-6), global batches of 512/256/2048.
  The `dclm-tiny` ... `dclm-mid` ladder keeps that recipe at CPU sizes, with a warm-up of a quarter
  of the run (DCLM's 411m-1x: 2000 of 7851 steps) and batches a laptop can take.

Shape arithmetic only (no torch import), so that a config naming a scale is checked at once. The
token budget of a run is 20 × parameters × the Chinchilla multiplier (DCLM's "1x", "2x").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mixtune.errors import UserError

CHINCHILLA_TOKENS_PER_PARAM = 20


@dataclass(frozen=True)
class Recipe:
    """The optimisation settings a scale was published with (`--lr` etc. override them)."""

    lr: float
    weight_decay: float
    beta2: float
    schedule: Literal["exponential", "cosine"]
    final_lr_ratio: float
    """The decay ends at lr × this (DCLM: its 3e-5 cool-down over its lr)."""
    warmup_fraction: float
    warmup_steps: int | None
    """Absolute warm-up (DCLM's GPU scales); None: warmup_fraction of the steps."""
    z_loss: float
    batch_size: int
    """Global batch in sequences."""


PAPER = Recipe(lr=1e-3, weight_decay=0.01, beta2=0.99, schedule="exponential", final_lr_ratio=0.1,
               warmup_fraction=0.06, warmup_steps=None, z_loss=0.0, batch_size=32)


def _dclm(lr=3e-3, wd=0.033, warmup=None, z=1e-4, batch=32) -> Recipe:
    return Recipe(lr=lr, weight_decay=wd, beta2=0.95, schedule="cosine", final_lr_ratio=3e-5 / lr,
                  warmup_fraction=0.25, warmup_steps=warmup, z_loss=z, batch_size=batch)


@dataclass(frozen=True)
class Published:
    """DCLM's own figures for a scale at 1x (paper Table 1; configs for params and tokens)."""

    name: str
    params: int
    tokens: int
    h100_hours: float | None


@dataclass(frozen=True)
class Scale:
    layers: int
    d_model: int
    heads: int
    ffn: int
    note: str
    arch: Literal["llama", "dclm"] = "llama"
    """llama: tied embeddings, no qk-norm. dclm: untied embeddings, RMSNorm on queries and keys."""
    recipe: Recipe = PAPER
    named_at: int | None = None
    """The vocabulary at which the name is the parameter count (120M: 124M at the reference
    code's 50k); None where the name is no count or holds at any vocabulary."""

    @property
    def tied(self) -> bool:
        return self.arch == "llama"


def _open_lm_ffn(d: int) -> int:
    """open_lm's SwiGLU width: 8d/3 rounded up to a multiple of 256."""
    return 256 * ((int(8 * d / 3) + 255) // 256)


def _dclm_scale(layers, d, heads, note, **recipe) -> Scale:
    return Scale(layers, d, heads, _open_lm_ffn(d), note, arch="dclm", recipe=_dclm(**recipe))


SCALES: dict[str, Scale] = {
    "tiny": Scale(2, 64, 4, 256, "CPU demo: seconds per step on 2 cores"),
    "small": Scale(4, 128, 4, 512, "CPU experiments"),
    "base": Scale(6, 256, 8, 1024, "CPU/GPU, a few M parameters"),
    # The paper's models have a dense FFN of width f (2 matrices); SwiGLU has 3, so these use 2f/3
    # (as Llama does) and keep the paper's parameter counts: 12 x 768 with FFN 3072 -> 2048.
    # 120M and 280M are one shape: their names count the embeddings of different vocabularies.
    "120M": Scale(12, 768, 12, 2048, "reference DoReMi code's proxy (124M at 50k vocab)",
                  named_at=50_277),  # the reference code's GPT-NeoX tokenizer
    "280M": Scale(12, 768, 12, 2048, "paper's proxy (282M at 256k vocab)", named_at=256_000),
    "1B": Scale(16, 2048, 16, 5504, "paper's 1B shape (dense FFN 8192)"),
    "8B": Scale(32, 4096, 32, 16384, "paper's main model (dense FFN 24576)"),
    # DCLM's recipe at CPU sizes: rehearse the benchmark on a laptop.
    "dclm-tiny": _dclm_scale(2, 64, 4, "DCLM recipe, CPU: seconds per step"),
    "dclm-small": _dclm_scale(4, 128, 4, "DCLM recipe, CPU"),
    "dclm-base": _dclm_scale(6, 256, 8, "DCLM recipe, CPU/GPU"),
    "dclm-mid": _dclm_scale(8, 512, 8, "DCLM recipe, between the CPU ladder and 411m"),
    # DCLM's competition scales (open_lm_configs: d, layers, heads; FFN by open_lm's rule).
    "dclm-411m": _dclm_scale(24, 1024, 8, "DCLM 400M-1x", warmup=2000, batch=512),
    "dclm-1b": _dclm_scale(24, 2048, 16, "DCLM 1B-1x", warmup=5000, batch=256),
    "dclm-3b": _dclm_scale(32, 2560, 32, "DCLM 3B-1x", warmup=5000, batch=256),
    "dclm-7b": _dclm_scale(32, 4096, 32, "DCLM 7B-1x/2x", lr=2e-3, wd=0.05, warmup=5000, z=5e-6,
                           batch=2048),
}

# DCLM's published figures at 1x (the 7B's 2x doubles tokens and hours). Parameters and tokens
# from training/configs/*.json; H100-hours from the paper's Table 1 (the 3B is not among its
# competition scales).
PUBLISHED = {
    "dclm-411m": Published("400M-1x", 411_616_256, 8_232_325_120, 26),
    "dclm-1b": Published("1B-1x", 1_439_795_200, 28_795_904_000, 240),
    "dclm-3b": Published("3B-1x", 2_795_932_160, 55_918_643_200, None),
    "dclm-7b": Published("7B-1x", 6_889_410_560, 137_788_211_200, 3700),
}
DCLM_VOCAB = 50_432  # GPT-NeoX's tokenizer, padded as open_lm does


def scale_problem(name: str) -> str | None:
    """A config rule: None for a known scale name."""
    return None if name in SCALES else f"unknown scale; use one of {', '.join(SCALES)}"


DEFAULT_SCALE = "tiny"
"""The scale a model has unless told otherwise (a 2-core laptop trains it in minutes)."""


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise UserError(
            f"--scale {name!r}: unknown; choose one of {', '.join(SCALES)} (see `mixtune scales`)."
        )
    return SCALES[name]


def count_params(scale: str, vocab_size: int) -> tuple[int, int]:
    """(total, non-embedding) parameters, computed from the shapes without building the model.
    An untied output layer counts in the total, as DCLM counts it."""
    s = get_scale(scale)
    per_layer = 4 * s.d_model * s.d_model + 3 * s.d_model * s.ffn + 2 * s.d_model
    if s.arch == "dclm":
        per_layer += 2 * (s.d_model // s.heads)  # qk-norm: one RMSNorm gain per head dimension
    body = s.layers * per_layer + s.d_model  # + the final norm
    embeddings = vocab_size * s.d_model * (1 if s.tied else 2)
    return body + embeddings, body


def matmul_params(scale: str, vocab_size: int) -> int:
    """Parameters that take part in matmuls: all but an untied input embedding (a lookup)."""
    s, (total, _) = get_scale(scale), count_params(scale, vocab_size)
    return total if s.tied else total - vocab_size * s.d_model


def token_budget(scale: str, vocab_size: int, multiplier: float = 1.0) -> int:
    """Chinchilla-optimal training tokens × `multiplier`: 20 per parameter (DCLM's 1x)."""
    total, _ = count_params(scale, vocab_size)
    return int(CHINCHILLA_TOKENS_PER_PARAM * total * multiplier)


def steps_for_budget(scale: str, vocab_size: int, multiplier: float, batch_size: int,
                     seq_len: int) -> int:
    """Optimizer steps that reach the token budget (rounded up: never fewer tokens)."""
    per_step = batch_size * seq_len
    return max(1, -(-token_budget(scale, vocab_size, multiplier) // per_step))
