"""Per-domain validation log-perplexity: the loss a mixture is judged by.

Each domain's validation stream is cut into consecutive windows of `seq_len + 1` tokens (stride
`seq_len`, so every token after the first is a target exactly once; the last window may be short).
Log-ppl is the token-weighted mean loss within a domain; the summary adds their uniform average
(DoReMi's headline number) and the worst domain. Ranks split the windows and sum their totals.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from mixtune.data.store import Dataset
from mixtune.distributed import all_reduce_sum
from mixtune.records import EvalResult
from mixtune.tables import aligned


def windows(num_tokens: int, seq_len: int, max_tokens: int | None) -> list[tuple[int, int]]:
    """(start, stop) token ranges of the evaluation windows; at most ~max_tokens targets."""
    limit = num_tokens if not max_tokens else min(num_tokens, max_tokens + 1)
    return [(s, min(s + seq_len + 1, limit)) for s in range(0, max(limit - 1, 0), seq_len)]


@torch.no_grad()
def evaluate(
    model,
    dataset: Dataset,
    *,
    seq_len: int,
    max_tokens_per_domain: int | None = None,
    batch_size: int = 8,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
    rank: int = 0,
    world_size: int = 1,
    split: str = "validation",
) -> EvalResult:
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    k = len(dataset.domains)
    totals = torch.zeros(2, k, dtype=torch.float64)  # [loss sum, target tokens] per domain
    for d, domain in enumerate(dataset.domains):
        tokens = dataset.tokens(split, domain)
        mine = windows(len(tokens), seq_len, max_tokens_per_domain)[rank::world_size]
        # Windows of the same length batch together; only the domain's last window can be shorter.
        for length in sorted({b - a for a, b in mine}, reverse=True):
            group = [(a, b) for a, b in mine if b - a == length]
            for i in range(0, len(group), batch_size):
                rows = np.stack(
                    [np.asarray(tokens[a:b], dtype=np.int64) for a, b in group[i : i + batch_size]]
                )
                x = torch.from_numpy(rows).to(device)
                with torch.autocast(
                    device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
                ):
                    logits = model(input_ids=x[:, :-1]).logits
                loss = F.cross_entropy(
                    logits.float().flatten(0, 1), x[:, 1:].flatten(), reduction="sum"
                )
                totals[0, d] += loss.item()
                totals[1, d] += x[:, 1:].numel()
    # NCCL reduces only device tensors; the loop above accumulates on the CPU (Python floats).
    totals = all_reduce_sum(totals.to(device)).cpu()
    model.train(was_training)
    return EvalResult.from_sums(dataset.domains, totals[0].tolist(), totals[1].tolist())


def format_table(result: EvalResult, floors: dict | None = None) -> str:
    rows = [("domain", "log-ppl", "ppl", "tokens") + (("floor",) if floors else ())]
    for d, v in result.log_ppl.items():
        cells = (
            d,
            "—" if v is None else f"{v:.4f}",
            "—" if v is None else f"{math.exp(min(v, 700)):.2f}",
            str(result.tokens[d]),
        )
        rows.append(cells + ((f"{floors[d]:.4f}",) if floors else ()))
    pad = ("",) if floors else ()
    rows.append(("average (uniform)", f"{result.average:.4f}", "", "") + pad)
    rows.append((f"worst ({result.worst_domain})", f"{result.worst:.4f}", "", "") + pad)
    return "\n".join(aligned(rows))
