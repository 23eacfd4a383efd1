"""RegMix swarm throughput: N proxies trained one after the other (regmix.workers 1) against the
same swarm as parallel tasks in spawned local processes (regmix.workers W), on the same dataset.

    python benchmarks/swarm_throughput.py [--data DATASET] [--proxies 16] [--steps 50]
        [--batch-size 16] [--workers 2 4 8] [--device auto|cpu|cuda]

Each variant is one `python -m mixtune run cfg.yaml` in a subprocess, in its own output folder
(nothing is reused), with `mixtures: [regmix]` and a main run of 1 step. The swarm's seconds are
measured from the run's own files, so the run's start, the dataset's opening, the fit, the search,
the main run and the report are left out: from the first proxy's mixture file (regmix/mixtures/, written just
before the swarm's stages start) to regmix/swarm.csv (written once every proxy has finished and
been read back). Spawning the workers, the training code's imports (in the workers, or in-process
with workers 1) and each proxy's final evaluation are in it: they are the swarm's cost. The `run s` column is the whole subprocess, for reference.
"same" is the max abs difference of the measures (per-domain validation losses) in
regmix/swarm.csv between the sequential and that parallel swarm (0: the same results). "others"
is the CPU seconds other processes used during the variant (Linux: /proc/stat less this run's):
near 0 on an idle machine; another CPU-bound job skews the ratio badly (2 torch threads on 2
busy cores slow far more than 1-thread workers), so rerun when it is not.
Target on a 2-core laptop: parallel/sequential <= 0.5. Without --data a synthetic dataset is
generated (5 domains, vocab 256, seq_len 128). On a GPU the W processes share one GPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml


def machine() -> str:
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), {gpu}")


def dataset(tmp: Path, data: str | None) -> Path:
    if data:
        return Path(data).resolve()
    from mixtune.synthetic import write_dataset

    return write_dataset(tmp / "data", train_tokens=200_000, validation_tokens=4096,
                         seq_len=128, vocab=256)


def busy_cpu_s() -> float:
    """CPU seconds the machine spent busy since boot (nan off Linux)."""
    try:
        ticks = [int(x) for x in Path("/proc/stat").read_text().split()[1:9]]
    except OSError:
        return float("nan")
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle, iowait


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_swarm(tmp: Path, data: Path, args, workers: int) -> tuple[float, float, float, Path]:
    """(swarm seconds, whole run seconds, CPU seconds of other processes meanwhile, output
    folder) of one `mixtune run` with `workers`."""
    out = tmp / f"workers-{workers}"
    spec = {"scale": "tiny", "batch_size": args.batch_size}
    cfg = {
        "output": str(out), "data": {"dataset": str(data)}, "mixtures": ["regmix"], "seeds": [0],
        "proxy": {**spec, "steps": args.steps}, "main": {**spec, "steps": 1},
        "train": {"device": args.device},
        # loglinear: the fit is not timed, and it needs no LightGBM
        "regmix": {"proxies": args.proxies, "workers": workers, "candidates": 1000, "top": 10,
                   "regressor": "loglinear"},
    }
    path = tmp / f"workers-{workers}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = tmp / f"workers-{workers}.log"
    start, busy, ours = time.perf_counter(), busy_cpu_s(), children_cpu_s()
    with open(log, "w") as f:
        done = subprocess.run([sys.executable, "-m", "mixtune", "run", str(path)],
                              stdout=f, stderr=subprocess.STDOUT, check=False)
    total = time.perf_counter() - start
    others = max(0.0, busy_cpu_s() - busy - (children_cpu_s() - ours))
    if done.returncode != 0:
        sys.exit(f"mixtune run with workers {workers} failed:\n{log.read_text()[-3000:]}")
    first = min(p.stat().st_mtime for p in (out / "regmix" / "mixtures").glob("proxy-*.json"))
    return (out / "regmix" / "swarm.csv").stat().st_mtime - first, total, others, out


def read_swarm(out: Path) -> dict[str, dict[str, float]]:
    with open(out / "regmix" / "swarm.csv") as f:
        return {row.pop("id"): {k: float(v) for k, v in row.items()} for row in csv.DictReader(f)}


def max_difference(a: Path, b: Path) -> float:
    """Max abs difference of the measures (not the mixtures' weights) of two swarms; inf when
    their proxies, mixtures or measures differ."""
    x, y = read_swarm(a), read_swarm(b)
    if x.keys() != y.keys():
        return float("inf")
    diff = 0.0
    for pid, row in x.items():
        if row.keys() != y[pid].keys():
            return float("inf")
        for k, v in row.items():
            d = abs(v - y[pid][k])
            if k.startswith("train_") and d > 1e-12:
                return float("inf")  # another mixture: not the same swarm
            diff = max(diff, d)
    return diff


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="a prepared dataset folder (default: a synthetic one)")
    ap.add_argument("--proxies", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50, help="steps of each proxy")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[os.cpu_count() or 1])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (train.device)")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = dataset(tmp, args.data)
        print(f"dataset: {data}; {args.proxies} tiny proxies x {args.steps} steps, batch "
              f"{args.batch_size}, device {args.device}\n")
        print(f"{'workers':>7} {'swarm s':>8} {'run s':>7} {'others':>7} {'s/proxy':>8} "
              f"{'par/seq':>8} {'same (max abs diff)':>20}")
        seq, total, others, seq_out = run_swarm(tmp, data, args, 1)
        print(f"{1:>7} {seq:>8.1f} {total:>7.1f} {others:>7.1f} {seq / args.proxies:>8.2f} "
              f"{1:>8.2f} {'-':>20}", flush=True)
        for w in args.workers:
            par, total, others, out = run_swarm(tmp, data, args, w)
            print(f"{w:>7} {par:>8.1f} {total:>7.1f} {others:>7.1f} {par / args.proxies:>8.2f} "
                  f"{par / seq:>8.2f} {max_difference(seq_out, out):>20.3g}", flush=True)


if __name__ == "__main__":
    main()
