"""Training throughput: tokens/s, achieved FLOP/s vs this machine's matmul rate, proxy/plain step time.

    python benchmarks/train_throughput.py [--data DATASET] [--steps 30] [--scales tiny small]
        [--vocab 8192 --seq-len 512]    # the generated dataset's, when there is no dev corpus

Runs the real loop (`mixtune.train.loop.run`) for a few steps per scale, once as a plain model and
once as a DoReMi proxy against the plain run's model, and reads `step_time_s` and `mfu` from
metrics.jsonl (medians after a warm-up). Without --data it prepares ../shared/corpora/dev if present (vocab 8192,
seq_len 512), else generates a synthetic dataset. On a GPU the loop trains in bf16 (precision auto)
and the "of matmul" column compares with a bf16 8192³ matmul measured on that GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from mixtune.data.store import open_dataset
from mixtune.model.flops import flops_per_token
from mixtune.model.scales import count_params
from mixtune.train.config import train_config
from mixtune.train.loop import run

DEV = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "dev"


def matmul_flops(device: torch.device, repeats: int = 20) -> float:
    """The device's measured matmul rate in the precision training uses there (fp32 on a CPU, bf16
    on a GPU), on a product large enough to reach it."""
    cuda = device.type == "cuda"
    n, dtype = (8192, torch.bfloat16) if cuda else (1024, torch.float32)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if cuda:
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - t)


def dataset(tmp: Path, data: str | None, vocab: int, seq_len: int) -> Path:
    if data:
        return Path(data)
    if DEV.is_dir():
        from mixtune.data.prepare import PrepareOptions, prepare

        return prepare(PrepareOptions(sources=[str(DEV)], out=str(tmp / "dev"), vocab_size=vocab,
                                      seq_len=seq_len))
    from mixtune.synthetic import write_dataset

    return write_dataset(tmp / "syn", train_tokens=400_000, validation_tokens=4096,
                         seq_len=seq_len, doc_len=256, vocab=vocab - 1)  # + EOS


def median(run_dir: Path, key: str, warmup: int) -> float:
    rows = [json.loads(x) for x in open(run_dir / "metrics.jsonl")]
    return statistics.median(r[key] for r in rows if r["kind"] == "train" and r["step"] > warmup)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--scales", nargs="+", default=["tiny", "small"])
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=512)
    args = ap.parse_args()
    hf_logging.disable_progress_bar()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where = torch.cuda.get_device_name() if device.type == "cuda" else \
        f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    print(f"machine: {where}, {os.cpu_count()} cores, torch {torch.__version__}")
    peak = matmul_flops(device)
    print(f"measured {'bf16 8192' if device.type == 'cuda' else 'fp32 1024'}^3 matmul rate: "
          f"{peak / 1e9:.1f} GFLOP/s")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = dataset(tmp, args.data, args.vocab, args.seq_len)
        ds = open_dataset(data)
        L = ds.seq_len
        print(
            f"dataset: {data} (vocab {ds.vocab_size}, seq_len {L}), global batch {args.batch_size}\n"
        )
        print(
            f"{'scale':<6} {'params':>10} {'step s':>8} {'tokens/s':>9} {'GFLOP/s':>8} {'of matmul':>9} "
            f"{'MFU':>5} {'proxy s':>8} {'proxy/plain':>11}"
        )
        for scale in args.scales:
            common = dict(
                data=str(data),
                scale=scale,
                steps=args.steps,
                batch_size=args.batch_size,
                checkpoint_every=10**9,
                eval_max_tokens_per_domain=L,
            )
            plain = run(train_config(out=str(tmp / f"{scale}-plain"), **common))
            proxy = run(
                train_config(
                    out=str(tmp / f"{scale}-proxy"),
                    method="doremi",
                    reference=str(plain),
                    proxy_sampling="uniform",
                    **common,
                )
            )
            warm = min(5, args.steps // 3)
            t_plain, t_proxy = median(plain, "step_time_s", warm), median(proxy, "step_time_s", warm)
            mfu = median(plain, "mfu", warm)
            tok_s = args.batch_size * L / t_plain
            flops = tok_s * flops_per_token(scale, ds.vocab_size, L)
            total, _ = count_params(scale, ds.vocab_size)
            print(
                f"{scale:<6} {total:>10,} {t_plain:>8.3f} {tok_s:>9.0f} {flops / 1e9:>8.1f} {flops / peak:>9.0%} "
                f"{mfu:>5.0%} {t_proxy:>8.3f} {t_proxy / t_plain:>11.2f}"
            )


if __name__ == "__main__":
    main()
