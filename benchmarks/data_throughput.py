"""Data-path throughput: `mixtune prepare` (MB of raw text per second) and the domain sampler
(batches per second) against what a `tiny` training step consumes.

    python benchmarks/data_throughput.py [--corpus PATH] [--batch-size 32] [--seq-len 512] [--repeats 2]

Prepare runs on `../shared/corpora/dev` (relative to the repository) when present, else on a
generated ~20 MB corpus (jsonl.zst per domain) in a temp folder. Its passes are separated by
running it three ways: a read-only pass over the sources (what each of prepare's streaming passes
costs to read and parse), a full prepare (scan + tokenizer training + tokenize-and-write), and a
prepare given the tokenizer from the first (scan + tokenize-and-write, no training):

    train-tokenizer pass  ~ full - with --tokenizer
    tokenize+write pass   ~ with --tokenizer - one read pass (the scan)

The sampler figure is `DomainSampler.next()` + `.tokens(plan)` (the plan and the gathered
`[batch, seq_len + 1]` int64 windows, page cache warm), on the prepared dataset and on a synthetic
one; the training figure is forward + backward + AdamW of the `tiny` scale at vocab 8192 on
random tokens, on this machine's default device. The ratio says how far the loader is from
being the bottleneck (target >= 100).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEV_CORPUS = REPO.parent / "shared" / "corpora" / "dev"
TRAIN_VOCAB = 8192


def best_of(fn, repeats: int) -> tuple[float, object]:
    """Smallest wall time of `repeats` calls (the least disturbed run) and the last result."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def generate_corpus(root: Path, target_mb: float = 20.0, seed: int = 0) -> Path:
    """~target_mb of raw text: ROOT/<domain>/part-0000N.jsonl.zst, word salad per domain."""
    import zstandard

    rng = random.Random(seed)
    vocabularies = {
        "prose": [
            w * rng.randint(1, 2)
            for w in ["the", "a", "of", "and", "to", "in", "was", "he", "she", "it", "that"]
        ]
        + [f"word{i}" for i in range(3000)],
        "code": [
            "def",
            "return",
            "if",
            "else",
            "for",
            "in",
            "while",
            "import",
            "class",
            "self",
            "None",
            "True",
            "(",
            ")",
            ":",
            "=",
            "+",
            "[",
            "]",
        ]
        + [f"var_{i}" for i in range(800)],
        "numbers": [str(i) for i in range(10000)] + [",", ".", "%", "$"],
        "markup": ["<div>", "</div>", "<p>", "</p>", 'class="x"', "&amp;"]
        + [f"item{i}" for i in range(1500)],
    }
    per_domain = target_mb * 1e6 / len(vocabularies)
    for domain, words in vocabularies.items():
        written, part = 0, 0
        while written < per_domain:
            lines = []
            for _ in range(500):
                text = " ".join(rng.choices(words, k=rng.randint(50, 400)))
                written += len(text.encode())
                lines.append(json.dumps({"text": text}))
            path = root / domain / f"part-{part:05d}.jsonl.zst"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(zstandard.ZstdCompressor(level=3).compress("\n".join(lines).encode()))
            part += 1
    return root


def _burn(n: int = 3_000_000) -> None:
    s = 0
    for i in range(n):
        s += i


def effective_cores() -> float:
    """CPU time this machine really gives: a pure-Python loop in 1 process vs in cpu_count
    processes (a container CPU quota shows as fewer effective cores than os.cpu_count())."""
    import multiprocessing as mp

    n = os.cpu_count() or 1
    t = time.perf_counter()
    _burn()
    one = time.perf_counter() - t
    procs = [mp.Process(target=_burn) for _ in range(n)]
    t = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return n * one / (time.perf_counter() - t)


def raw_text_bytes(corpus: Path) -> tuple[int, int]:
    from mixtune.data.sources import read_documents

    docs = size = 0
    for doc in read_documents([str(corpus)]):
        docs += 1
        size += len(doc.text.encode("utf-8"))
    return docs, size


def sampler_rate(ds, batch_size: int, seq_len: int, min_seconds: float = 1.5) -> float:
    """Batches per second of plan + token gather, natural weights, after one warm-up pass."""
    from mixtune.data.sampler import DomainSampler
    from mixtune.data.store import num_sequences

    seqs = np.array([num_sequences(n, seq_len) for n in ds.counts("train").values()], float)
    sampler = DomainSampler(ds, seqs / seqs.sum(), batch_size, seed=0, seq_len=seq_len)
    for _ in range(20):  # page in the token files and warm numpy's caches
        sampler.tokens(sampler.next())
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_seconds:
        for _ in range(50):
            x = sampler.tokens(sampler.next())
        n += 50
    assert x.shape == (batch_size, seq_len + 1)
    return n / elapsed


def train_step_rate(batch_size: int, seq_len: int, steps: int) -> tuple[float, str]:
    """Optimizer steps per second of the `tiny` scale (fp32; bf16 autocast on CUDA)."""
    import torch
    import torch.nn.functional as F

    from mixtune.model.build import build_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model("tiny", TRAIN_VOCAB, seq_len, 0, 0).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, betas=(0.9, 0.99))
    x = torch.randint(0, TRAIN_VOCAB, (batch_size, seq_len + 1), device=device)
    amp = torch.bfloat16 if device.type == "cuda" else None

    def step():
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        loss = F.cross_entropy(logits.float().flatten(0, 1), x[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()  # a CPU-GPU sync point: the step is really done when timed

    step()  # warm-up: allocator, kernels
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - t), f"{device.type} ({torch.get_num_threads()} threads)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", default=None, help=f"raw corpus (default {DEV_CORPUS} or generated)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--repeats", type=int, default=2, help="best of N for the timed passes")
    p.add_argument("--vocab-size", type=int, default=TRAIN_VOCAB, help="tokenizer to train")
    p.add_argument("--train-steps", type=int, default=3, help="timed tiny steps")
    args = p.parse_args(argv)

    import torch
    import transformers

    from mixtune.data.prepare import PrepareOptions, prepare
    from mixtune.data.store import open_dataset
    from mixtune.synthetic import write_dataset

    print(
        f"machine: {platform.platform()}, {platform.machine()}, cpu_count={os.cpu_count()}, "
        f"effective cores ~{effective_cores():.1f}"
    )
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    rows: list[tuple[str, str, str]] = []

    with tempfile.TemporaryDirectory(prefix="mixtune-bench-") as tmp:
        tmp = Path(tmp)
        if args.corpus:
            corpus, origin = Path(args.corpus), "given"
        elif DEV_CORPUS.is_dir():
            corpus, origin = DEV_CORPUS, "dev corpus"
        else:
            t = time.perf_counter()
            corpus = generate_corpus(tmp / "corpus")
            origin = f"generated in {time.perf_counter() - t:.1f} s"
        print(f"corpus: {corpus} ({origin})")

        # --- prepare ------------------------------------------------------------------------
        t_read, (docs, size) = best_of(lambda: raw_text_bytes(corpus), args.repeats)
        mb = size / 1e6

        def run_prepare(name: str, **kw) -> Path:
            out = tmp / name
            o = PrepareOptions([str(corpus)], str(out), seq_len=args.seq_len, overwrite=True, **kw)
            return prepare(o)

        # Once: the full run is the slowest; the subtraction below is then an upper bound on the
        # training pass (best-of-N on the other side).
        t_full, ds_path = best_of(lambda: run_prepare("full", vocab_size=args.vocab_size), 1)
        tok_dir = str(ds_path / "tokenizer")
        t_given, _ = best_of(lambda: run_prepare("given", tokenizer=tok_dir), args.repeats)
        ds = open_dataset(ds_path)
        tokens = sum(ds.counts("train").values()) + sum(ds.counts("validation").values())

        rows += [
            ("corpus", f"{docs} docs, {len(ds.domains)} domains", f"{mb:.1f} MB raw text"),
            ("read pass (decompress+parse)", f"{t_read:.2f} s", f"{mb / t_read:.1f} MB/s"),
            ("prepare, full (trains tokenizer)", f"{t_full:.2f} s", f"{mb / t_full:.1f} MB/s"),
            ("prepare, --tokenizer given", f"{t_given:.2f} s", f"{mb / t_given:.1f} MB/s"),
            (
                f"  train-tokenizer pass (vocab {args.vocab_size})",
                f"{t_full - t_given:.2f} s",
                f"{mb / max(t_full - t_given, 1e-9):.1f} MB/s",
            ),
            (
                "  tokenize+write pass",
                f"{t_given - t_read:.2f} s",
                f"{mb / max(t_given - t_read, 1e-9):.1f} MB/s, "
                f"{tokens / max(t_given - t_read, 1e-9) / 1e6:.2f} M tok/s",
            ),
            ("tokens written", f"{tokens:,}", f"{size / tokens:.2f} bytes/token"),
        ]

        # --- sampler ------------------------------------------------------------------------
        syn = open_dataset(
            write_dataset(
                tmp / "syn",
                train_tokens=1_000_000,
                validation_tokens=1_000,
                doc_len=256,
                seq_len=128,
            )
        )
        rates = {}
        for name, d in (("prepared", ds), ("synthetic", syn)):
            for seq_len in dict.fromkeys((args.seq_len, d.seq_len)):
                r = sampler_rate(d, args.batch_size, seq_len)
                rates[(name, seq_len)] = r
                tok_s = r * args.batch_size * seq_len / 1e6
                rows.append(
                    (
                        f"sampler {name} ({len(d.domains)} dom) {args.batch_size}x{seq_len}",
                        f"{r:,.0f} batch/s",
                        f"{tok_s:,.1f} M tok/s",
                    )
                )

        steps_s, where = train_step_rate(args.batch_size, args.seq_len, args.train_steps)
        rows.append(
            (
                f"tiny train step {args.batch_size}x{args.seq_len}, vocab {TRAIN_VOCAB}",
                f"{steps_s:.2f} step/s",
                where,
            )
        )
        slowest = min(r for (_, s), r in rates.items() if s == args.seq_len)
        ratio = slowest / steps_s
        verdict = "ok" if ratio >= 100 else "BELOW TARGET"
        rows.append(
            (
                "sampler / train ratio (slowest sampler)",
                f"{ratio:,.0f}x",
                f"target >= 100: {verdict}",
            )
        )

    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print()
    print(f"{'measure':<{w0}}  {'value':>{w1}}  rate / note")
    print(f"{'-' * w0}  {'-' * w1}  {'-' * 30}")
    for a, b, c in rows:
        print(f"{a:<{w0}}  {b:>{w1}}  {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
