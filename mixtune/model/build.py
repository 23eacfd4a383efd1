"""Build, save and load the models: `transformers` models with PyTorch's fused attention
(`attn_implementation="sdpa"`): no flash-attn build, the same code on CPU and GPU, and `final/`
folders any transformers user can load.

DoReMi's scales are Llama (RMSNorm, rotary, SwiGLU, tied embeddings). DCLM's are Qwen3, the
transformers family closest to open_lm's block: pre-norm, rotary, SwiGLU, no biases, untied
embeddings, and qk-norm. Two differences remain (see the README): open_lm normalises with a
gain-only LayerNorm and applies qk-norm over the full width; Qwen3 uses RMSNorm, per head.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen3Config,
    Qwen3ForCausalLM,
)
from transformers.utils import logging as hf_logging

from mixtune.data.store import tokenizer_hash
from mixtune.model.scales import get_scale


def model_config(scale: str, vocab_size: int, seq_len: int, eos_id: int) -> LlamaConfig | Qwen3Config:
    s = get_scale(scale)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=s.d_model,
        intermediate_size=s.ffn,
        num_hidden_layers=s.layers,
        num_attention_heads=s.heads,
        num_key_value_heads=s.heads,
        max_position_embeddings=max(seq_len, 2048),
        rms_norm_eps=1e-5,
        tie_word_embeddings=s.tied,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        attn_implementation="sdpa",
    )
    if s.arch == "dclm":
        return Qwen3Config(**common, head_dim=s.d_model // s.heads, use_sliding_window=False)
    return LlamaConfig(**common)


def build_model(
    scale: str, vocab_size: int, seq_len: int, eos_id: int, seed: int
) -> PreTrainedModel:
    """A randomly initialised model of `scale` for the dataset's vocabulary."""
    torch.manual_seed(seed)  # the initial weights are a function of the seed alone
    config = model_config(scale, vocab_size, seq_len, eos_id)
    return (Qwen3ForCausalLM if isinstance(config, Qwen3Config) else LlamaForCausalLM)(config)


def final_dir(run: Path) -> Path | None:
    """The trained model of `run` (a run folder or its final/ itself), or None if there is none."""
    run = Path(run)
    final = run if (run / "config.json").is_file() else run / "final"
    return final if (final / "config.json").is_file() else None


def same_tokenizer(final: Path, dataset) -> bool:
    """Whether the model in `final` uses the dataset's token ids (tokenizer.json hashes match)."""
    return (final / "tokenizer.json").is_file() and tokenizer_hash(final) == dataset.tokenizer_hash


def load_model(path: str | Path) -> PreTrainedModel:
    """Load a trained model: a run folder or its `final/` (safetensors, no custom code, no pickle)."""
    path = final_dir(Path(path)) or Path(path)
    with _no_progress_bar():
        return AutoModelForCausalLM.from_pretrained(
            str(path), attn_implementation="sdpa", use_safetensors=True
        )


@contextmanager
def _no_progress_bar():
    """Without transformers' "Loading weights" bar: a tiny model loads in milliseconds, and a bar
    per load fills a user's loop's output. Restored after, as the caller had it."""
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
