"""Named model scales -> a `transformers` Llama-style model (RMSNorm, rotary, SwiGLU, tied embeddings).

Attention is PyTorch's fused `scaled_dot_product_attention` ("sdpa"): no flash-attn build, the same
code on CPU and GPU. The paper's shapes (Xie et al. 2023, Table 5 and the reference code's 120M)
are kept; their parameter counts depend on the vocabulary, so `mixtune scales` prints both the
count at a given vocabulary and the non-embedding count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mixtune.data.store import tokenizer_hash
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


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise UserError(
            f"--scale {name!r}: unknown; choose one of {', '.join(SCALES)} (see `mixtune scales`)."
        )
    return SCALES[name]


def model_config(scale: str, vocab_size: int, seq_len: int, eos_id: int) -> LlamaConfig:
    s = get_scale(scale)
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=s.d_model,
        intermediate_size=s.ffn,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.heads,
        max_position_embeddings=max(seq_len, 2048),
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        attn_implementation="sdpa",
    )


def build_model(
    scale: str, vocab_size: int, seq_len: int, eos_id: int, seed: int
) -> LlamaForCausalLM:
    torch.manual_seed(seed)  # the initial weights are a function of the seed alone
    return LlamaForCausalLM(model_config(scale, vocab_size, seq_len, eos_id))


def final_dir(run: Path) -> Path | None:
    """The trained model of `run` (a run folder or its final/ itself), or None if there is none."""
    run = Path(run)
    final = run if (run / "config.json").is_file() else run / "final"
    return final if (final / "config.json").is_file() else None


def same_tokenizer(final: Path, dataset) -> bool:
    """Whether the model in `final` uses the dataset's token ids (tokenizer.json hashes match)."""
    return (final / "tokenizer.json").is_file() and tokenizer_hash(final) == dataset.tokenizer_hash


def load_model(path: Path) -> LlamaForCausalLM:
    """Load a `final/` folder (safetensors, no custom code, no pickle)."""
    return LlamaForCausalLM.from_pretrained(
        str(path), attn_implementation="sdpa", use_safetensors=True
    )


def count_params(scale: str, vocab_size: int) -> tuple[int, int]:
    """(total, non-embedding) parameters, computed from the shapes without building the model."""
    s = get_scale(scale)
    per_layer = 4 * s.d_model * s.d_model + 3 * s.d_model * s.ffn + 2 * s.d_model
    body = s.layers * per_layer + s.d_model  # + the final norm
    return body + vocab_size * s.d_model, body


def flops_per_token(scale: str, vocab_size: int, seq_len: int) -> float:
    """Training FLOPs per token: 6·N for the matmuls plus 12·L·d·T for attention (PaLM, appendix B)."""
    s = get_scale(scale)
    total, _ = count_params(scale, vocab_size)
    return 6 * total + 12 * s.layers * s.d_model * seq_len
