"""Named model scales: the shapes of Llama-style models, from a 2-layer CPU toy to the paper's 8B.

Shape arithmetic only (parameter counts), so that a config naming a scale is checked without
importing torch. The paper's shapes (Xie et al. 2023, Table 5, and the reference code's 120M) are
kept; their parameter counts depend on the vocabulary, so `mixtune scales` prints both the count at
a given vocabulary and the non-embedding count.
"""

from __future__ import annotations

from dataclasses import dataclass

from mixtune.errors import UserError


@dataclass(frozen=True)
class Scale:
    layers: int
    d_model: int
    heads: int
    ffn: int
    note: str


SCALES: dict[str, Scale] = {
    "tiny": Scale(2, 64, 4, 256, "CPU demo: seconds per step on 2 cores"),
    "small": Scale(4, 128, 4, 512, "CPU experiments"),
    "base": Scale(6, 256, 8, 1024, "CPU/GPU, a few M parameters"),
    # The paper's models have a dense FFN of width f (2 matrices); SwiGLU has 3, so these use 2f/3
    # (as Llama does) and keep the paper's parameter counts: 12 x 768 with FFN 3072 -> 2048.
    "120M": Scale(12, 768, 12, 2048, "reference DoReMi code's proxy (124M at 50k vocab)"),
    "280M": Scale(12, 768, 12, 2048, "paper's proxy (282M at 256k vocab)"),
    "1B": Scale(16, 2048, 16, 5504, "paper's 1B shape (dense FFN 8192)"),
    "8B": Scale(32, 4096, 32, 16384, "paper's main model (dense FFN 24576)"),
}


def scale_problem(name: str) -> str | None:
    """A config rule: None for a known scale name."""
    return None if name in SCALES else f"unknown scale; use one of {', '.join(SCALES)}"


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise UserError(
            f"--scale {name!r}: unknown; choose one of {', '.join(SCALES)} (see `mixtune scales`)."
        )
    return SCALES[name]


def count_params(scale: str, vocab_size: int) -> tuple[int, int]:
    """(total, non-embedding) parameters, computed from the shapes without building the model."""
    s = get_scale(scale)
    per_layer = 4 * s.d_model * s.d_model + 3 * s.d_model * s.ffn + 2 * s.d_model
    body = s.layers * per_layer + s.d_model  # + the final norm
    return body + vocab_size * s.d_model, body
