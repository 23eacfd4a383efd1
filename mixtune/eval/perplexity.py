"""Per-domain validation log-perplexity: the loss a mixture is judged by.

Each domain's validation stream is cut into consecutive windows of `seq_len + 1` tokens (stride
`seq_len`, so every token after the first is a target exactly once; the last window may be short).
Log-ppl is the token-weighted mean loss within a domain; the summary adds their uniform average
(DoReMi's headline number) and the worst domain. Ranks split the windows and sum their totals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mixtune.data.store import Dataset
from mixtune.distributed import all_reduce_sum
from mixtune.records import EvalResult


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
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def evaluate_run(
    run, *, data=None, max_tokens_per_domain=None, batch_size=8, device="auto"
) -> EvalResult:
    """`mixtune eval`: evaluate a run's `final/` model; write `eval.json` beside it; print a table."""
    import json

    from mixtune import distributed
    from mixtune.data.store import open_dataset
    from mixtune.errors import UserError
    from mixtune.io import write_json_atomic
    from mixtune.model.build import final_dir, load_model, same_tokenizer
    from mixtune.records import EvalFile

    run = Path(run)
    final = final_dir(run)
    if final is None:
        raise UserError(
            f"{run}: no trained model (expected {run}/final/config.json); finish the run first."
        )
    run_dir = final.parent
    data = data or _dataset_of(run, run_dir)
    ds = open_dataset(data)
    if not same_tokenizer(final, ds):
        raise UserError(
            f"{final} was trained with another tokenizer than {data}; evaluate it on its own dataset."
        )
    dist = distributed.setup(device)
    model = load_model(final).to(dist.device)
    seq_len = (
        int(json.loads((final / "mixtune.json").read_text())["seq_len"])
        if (final / "mixtune.json").is_file()
        else ds.seq_len
    )
    result = evaluate(
        model,
        ds,
        seq_len=seq_len,
        max_tokens_per_domain=max_tokens_per_domain,
        batch_size=batch_size,
        device=dist.device,
        rank=dist.rank,
        world_size=dist.world_size,
    )
    if dist.is_main:
        record = EvalFile(result, dataset=str(Path(data).resolve()),
                          max_tokens_per_domain=max_tokens_per_domain)
        write_json_atomic(run_dir / "eval.json", record.to_json())
        print(format_table(result))
    return result


def _dataset_of(run: Path, run_dir: Path) -> str:
    """The dataset a run was trained on, from its config.yaml."""
    import yaml

    from mixtune.errors import UserError

    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise UserError(f"{run}: no config.yaml to find its dataset; pass --data DATASET.")
    data = (yaml.safe_load(cfg_file.read_text()) or {}).get("data")
    if not data:
        raise UserError(f"{cfg_file}: names no dataset; pass --data DATASET.")
    return data
