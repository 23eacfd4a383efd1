"""How fast is building the data? MB/s of raw text through `prepare` (tokenization as 1 task in
process, or N tasks on datatrove's local executor) and through `process` with a pipeline.

    python benchmarks/build_throughput.py [DATA] [--workers 1 2] [--pipeline refinedweb]

DATA defaults to ../shared/corpora/dev. The tokenizer is trained once beforehand and given to
every `prepare`, so that the figures are the scan and tokenization passes, not BPE training.
Each configuration runs --repeat times; the best time is printed (this machine is shared).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from mixtune.data.config import PrepareOptions
from mixtune.data.prepare import prepare
from mixtune.data.sources import read_documents
from mixtune.process.config import ProcessOptions


def raw_megabytes(source: str) -> float:
    return sum(len(d.text.encode("utf-8", "surrogatepass")) for d in read_documents([source])) / 1e6


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default="../shared/corpora/dev")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--pipeline", default="refinedweb")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    mb = raw_megabytes(args.data)
    tmp = Path(tempfile.mkdtemp(prefix="build-throughput-"))
    try:
        tok = prepare(PrepareOptions([args.data], str(tmp / "tok"), vocab_size=8192)) / "tokenizer"
        rows = []

        def run_prepare(workers: int) -> None:
            out = tmp / "data"
            shutil.rmtree(out, ignore_errors=True)
            prepare(PrepareOptions([args.data], str(out), tokenizer=str(tok), tasks=workers,
                                   workers=workers))

        def run_process(workers: int) -> None:
            out = tmp / "processed"
            shutil.rmtree(out, ignore_errors=True)
            from mixtune.process.run import process

            process(ProcessOptions([args.data], str(out), pipeline=args.pipeline,
                                   tasks=workers, workers=workers))

        for w in args.workers:
            rows.append((f"prepare (tasks = workers = {w})", w, best_of(args.repeat,
                                                                      lambda w=w: run_prepare(w))))
        for w in args.workers:
            rows.append((f"process --pipeline {args.pipeline}", w,
                         best_of(args.repeat, lambda w=w: run_process(w))))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{args.data}: {mb:.1f} MB of raw text; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; best of {args.repeat}")
    print(f"{'step':<36} {'workers':>7} {'seconds':>8} {'MB/s':>7} {'vs 1':>6}")
    base = {}
    for name, w, secs in rows:
        kind = name.split()[0]
        base.setdefault(kind, secs)
        print(f"{name:<36} {w:>7} {secs:>8.2f} {mb / secs:>7.2f} {base[kind] / secs:>5.2f}×")


if __name__ == "__main__":
    main()
