"""Scoring against a causal LM: log-likelihoods of continuations given contexts, and greedy
generation. The model is any `transformers` causal LM (or anything with its call signature).

A *group* is one context with its continuations (a multiple-choice item's choices). A context is
computed once, however many continuations it has, and contexts are batched across groups:

    1. contexts of a batch, right-padded, in one forward pass that keeps the KV cache and the
       logits at each context's last token only (those predict each continuation's first token;
       the vocabulary-sized head is applied to those rows alone);
    2. the cache rows repeated for each continuation (`reorder_cache`), and every continuation of
       the batch in one forward pass, positioned right after its own context.

Right padding keeps every query row attending to at least one real token (left padding leaves
fully-masked rows, whose NaNs can leak through the values), and the attention mask hides the
padding between a short context and its continuation. The saving grows with the context: a
10-shot prompt of 500 tokens with 4 one-word choices is computed once instead of four times.
Groups are sorted by length so that batches waste little padding, and results come back in the
original order.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass

import torch


@dataclass
class Group:
    context: list[int]
    continuations: list[list[int]]
    """Each non-empty."""


@dataclass
class Scored:
    logprob: float
    """Sum of the continuation's token log-probabilities (natural log)."""
    tokens: int
    greedy: bool
    """Whether every continuation token is the model's argmax (greedy decoding reproduces it)."""


@torch.no_grad()
def loglikelihoods(
    model,
    groups: list[Group],
    *,
    device: torch.device,
    amp: torch.dtype | None = None,
    max_len: int = 2048,
    batch_tokens: int = 8192,
    logit_floats: int = 1 << 26,
    advance: Callable[[int], object] | None = None,
) -> list[list[Scored]]:
    """Scores of every continuation of every group, in order. A batch holds at most
    `batch_tokens` padded context tokens (activation memory) and `logit_floats` continuation
    logits (rows × positions × vocabulary: 256 MB in float32 by default, whatever the vocabulary).
    Contexts longer than `max_len` minus their longest continuation lose their oldest tokens, as
    a model's window would. `advance(n)` is called after each batch with its number of groups."""
    vocab = getattr(getattr(model, "config", None), "vocab_size", None) or 65536
    positions = max(1, logit_floats // vocab)  # continuation positions a batch may score
    longest = [len(g.context) + max(map(len, g.continuations)) for g in groups]
    order = sorted(range(len(groups)), key=lambda i: -longest[i])
    results: list[list[Scored] | None] = [None] * len(groups)
    batch: list[int] = []
    rows = cont_width = 0
    for i in order:
        g = groups[i]
        width = min(longest[batch[0]] if batch else longest[i], max_len)
        new_rows, new_width = rows + len(g.continuations), max(cont_width, *map(len, g.continuations))
        if batch and ((len(batch) + 1) * width > batch_tokens or new_rows * new_width > positions):
            _flush(model, groups, batch, results, device, amp, max_len, advance)
            batch, new_rows, new_width = [], len(g.continuations), max(map(len, g.continuations))
        batch.append(i)
        rows, cont_width = new_rows, new_width
    if batch:
        _flush(model, groups, batch, results, device, amp, max_len, advance)
    return results


def _flush(model, groups, batch, results, device, amp, max_len, advance) -> None:
    with torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext():
        scored = _score_batch(model, [groups[i] for i in batch], device, max_len)
    for i, s in zip(batch, scored, strict=True):
        results[i] = s
    if advance is not None:
        advance(len(batch))


def _score_batch(model, groups: list[Group], device, max_len: int) -> list[list[Scored]]:
    contexts = [g.context[-(max_len - max(map(len, g.continuations))):] for g in groups]
    lens = torch.tensor([len(c) for c in contexts], device=device)
    ids, mask = _right_padded(contexts, device)
    first, cache = _last_logits(model, ids, mask, lens - 1)

    rows = [(g_index, c) for g_index, g in enumerate(groups) for c in g.continuations]
    owner = torch.tensor([g for g, _ in rows], device=device)
    heads = torch.tensor([c[0] for _, c in rows], device=device)
    logp, hit = _target_logprobs(first[owner][:, None, :], heads[:, None])
    total, greedy = logp[:, 0], hit[:, 0]
    width = max(len(c) for _, c in rows) - 1
    if width > 0:
        inputs, cmask = _right_padded([c[:-1] for _, c in rows], device, width)
        targets, _ = _right_padded([c[1:] for _, c in rows], device, width)
        cache.reorder_cache(owner)  # each continuation continues its own context's cache
        out2 = model(
            input_ids=inputs,
            attention_mask=torch.cat([mask[owner], cmask], dim=1),
            position_ids=lens[owner][:, None] + torch.arange(width, device=device),
            use_cache=True,
            **{_cache_argument(model): cache},
        )
        logp, hit = _target_logprobs(out2.logits, targets)
        valid = cmask.bool()
        total = total + (logp * valid).sum(dim=1)
        greedy = greedy & (hit | ~valid).all(dim=1)
    total, greedy = total.double().cpu().tolist(), greedy.cpu().tolist()
    results: list[list[Scored]] = [[] for _ in groups]
    for (g, c), lp, gr in zip(rows, total, greedy, strict=True):
        results[g].append(Scored(lp, len(c), bool(gr)))
    return results


def _last_logits(model, ids, mask, last):
    """The logits at each row's last context token ([B, V], never over whole prompts) and the
    KV cache. A model whose logits are its head applied to the last hidden state (Llama, ...) runs
    its decoder and applies the head to those rows only; others give `logits_to_keep`."""
    rows = torch.arange(len(ids), device=ids.device)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    config = getattr(model, "config", None)
    plain = head is not None and hasattr(model, "base_model") and model.base_model is not model \
        and not getattr(config, "final_logit_softcapping", None) \
        and getattr(config, "logit_scale", None) in (None, 1.0)
    if plain:
        out = model.base_model(input_ids=ids, attention_mask=mask, use_cache=True)
        return head(out.last_hidden_state[rows, last]), _returned_cache(out)
    keep = torch.unique(last)
    out = model(input_ids=ids, attention_mask=mask, use_cache=True, logits_to_keep=keep)
    return out.logits[rows, torch.searchsorted(keep, last)], _returned_cache(out)


# transformers 5 renamed the KV cache `past_key_values` -> `cache` (argument and output field)
# and warns at every use of the old name; older versions, and models written against them, know
# only `past_key_values`.
def _cache_argument(model) -> str:
    """The keyword under which `model`'s forward takes a KV cache."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _returned_cache(out):
    """The KV cache a forward pass returned, under whichever name it has."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _target_logprobs(logits: torch.Tensor, targets: torch.Tensor):
    """log p(target) and whether target is the argmax, per position; float32 for the softmax."""
    logits = logits.float()
    picked = logits.gather(-1, targets[..., None]).squeeze(-1)
    return picked - logits.logsumexp(-1), logits.argmax(-1) == targets


def _right_padded(seqs: list[list[int]], device, width: int | None = None):
    width = width if width is not None else max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def generate(
    model,
    contexts: list[list[int]],
    *,
    max_new_tokens: int,
    eos_id: int,
    device: torch.device,
    amp: torch.dtype | None = None,
    batch_size: int = 64,
    max_len: int = 2048,
    advance: Callable[[int], object] | None = None,
) -> list[list[int]]:
    """Greedy continuations of each context (at most `max_new_tokens`, stopping at EOS), through
    `transformers`' own generation loop with a KV cache (left-padded, as it requires). Each decode
    step reads every weight once whatever the batch, so large batches are what make it fast.
    `advance(n)` is called after each batch with its number of contexts."""
    out: list[list[int]] = []
    for start in range(0, len(contexts), batch_size):
        chunk = [c[-(max_len - max_new_tokens):] for c in contexts[start : start + batch_size]]
        width = max(map(len, chunk))
        ids = torch.full((len(chunk), width), eos_id, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for i, c in enumerate(chunk):
            ids[i, width - len(c):] = torch.tensor(c, dtype=torch.long)
            mask[i, width - len(c):] = 1
        with torch.autocast(device.type, dtype=amp) if amp is not None else nullcontext():
            gen = model.generate(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=eos_id,
                eos_token_id=eos_id,
            )
        for row in gen[:, width:].cpu().tolist():
            out.append(row[: row.index(eos_id)] if eos_id in row else row)
        if advance is not None:
            advance(len(chunk))
    return out
