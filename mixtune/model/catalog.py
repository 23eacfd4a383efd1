"""`mixtune scales`: every named scale with its shape, recipe, token budget, training FLOPs and
H100-hours, beside DCLM's published figures."""

from __future__ import annotations

from dataclasses import replace

from mixtune.model.flops import flops_per_token, h100_hours
from mixtune.model.scales import PUBLISHED, SCALES, count_params, token_budget


def scales_lines(v: int, mult: float, seq_len: int, mfu: float) -> list[str]:
    """The table at vocabulary `v`, `mult` × the Chinchilla budget, sequences of `seq_len` and
    `mfu` model FLOPs utilisation."""
    out = [f"{'scale':<10} {'layers':>6} {'d_model':>7} {'heads':>5} {'ffn':>6} {'params':>14} "
           f"{'non-embedding':>14}  {'lr':>6} {'wd':>5} {'β2':>4} {'batch':>5} {'warm-up':>7} "
           f"{'decay':<11} {'z-loss':>6}  note"]
    for name, s in SCALES.items():
        total, body = count_params(name, v)
        r = s.recipe
        warmup = f"{r.warmup_steps}" if r.warmup_steps is not None else f"{r.warmup_fraction:.0%}"
        out.append(f"{name:<10} {s.layers:>6} {s.d_model:>7} {s.heads:>5} {s.ffn:>6} {total:>14,} "
                   f"{body:>14,}  {r.lr:>6g} {r.weight_decay:>5g} {r.beta2:>4g} {r.batch_size:>5} "
                   f"{warmup:>7} {r.schedule:<11} {r.z_loss:>6g}  {s.note}")
    out += same_model_notes(v)
    out.append(f"\nBudget at {mult:g}x (20 tokens per parameter × {mult:g}), sequences of "
               f"{seq_len}, vocabulary {v:,}; H100-hours at {mfu:.0%} MFU of 989 TFLOP/s (bf16 "
               "dense):")
    out.append(f"{'scale':<10} {'params':>14} {'tokens':>17} {'FLOPs':>9} {'H100-h':>9}   "
               "DCLM published at 1x: params, tokens, H100-h")
    for name in SCALES:
        total, _ = count_params(name, v)
        tokens = token_budget(name, v, mult)
        flops = tokens * flops_per_token(name, v, seq_len)
        hours = _hours(h100_hours(name, v, tokens, seq_len, mfu))
        out.append(f"{name:<10} {total:>14,} {tokens:>17,} {flops:>9.2e} {hours:>9}   "
                   f"{_published(name)}")
    out.append("(embeddings: tied for the DoReMi scales, untied for dclm-*, counted twice as DCLM "
               "does; compare with DCLM at --vocab-size 50432)")
    return out


def same_model_notes(v: int) -> list[str]:
    """A line for each set of scales that are one model (shape and recipe) under several names,
    with the vocabularies their names count parameters at: a reader comparing 120M with 280M at
    one vocabulary would otherwise train the same model twice."""
    by_model: dict[object, list[str]] = {}
    for name, s in SCALES.items():
        by_model.setdefault(replace(s, note="", named_at=None), []).append(name)
    lines = []
    for names in (n for n in by_model.values() if len(n) > 1):
        total, _ = count_params(names[0], v)
        named = [f"{count_params(n, at)[0] / 1e6:.0f}M at {at:,} ({n})"
                 for n in names if (at := SCALES[n].named_at) is not None]
        line = f"{' and '.join(names)} are the same model: {total:,} parameters at vocabulary {v:,}."
        if named:
            line += f" Their names are their sizes at the vocabularies they were published with: {', '.join(named)}."
        lines.append(line)
    return lines


def _published(name: str) -> str:
    pub = PUBLISHED.get(name)
    if pub is None:
        return ""
    hours = f"{pub.h100_hours:g}" if pub.h100_hours is not None else "—"
    return f"{pub.name}: {pub.params:,}, {pub.tokens:,}, {hours}"


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 10 else f"{h:.2g}"
