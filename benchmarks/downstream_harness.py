"""mixtune's downstream scoring against lm-evaluation-harness: same model, same items, same prompts.

    python benchmarks/downstream_harness.py MODEL [--tasks arc_easy,hellaswag,piqa] [--limit 200]
                                            [--check]

MODEL is a .gguf file, an HF model folder or a run folder. The tasks must be installed
(`mixtune tasks download --tasks ...`) and lm-evaluation-harness too (pip install 'mixtune[lm-eval]').
The model is loaded once; each task is scored 0-shot by mixtune, then by lm-eval (its HF wrapper
around the same model object, over the same JSONL files), and the script prints both accuracies
and both item rates. With --check it exits non-zero unless every task is well above chance for
mixtune and both accuracies agree within one point (what CI runs on SmolLM2-135M).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from mixtune.eval import suites  # noqa: E402
from mixtune.eval.command import load_for_eval  # noqa: E402
from mixtune.eval.downstream import Runtime, evaluate_resolved  # noqa: E402
from mixtune.eval.harness import evaluate_with_lm_eval  # noqa: E402
from mixtune.eval.tasks import load_task  # noqa: E402

ABOVE_CHANCE = 0.05  # "well above": at least 5 points over the random baseline
AGREE = 0.01  # one point of accuracy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--tasks", default="arc_easy,hellaswag,piqa")
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    model, tokenizer, _ = load_for_eval(Path(args.model))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; model {args.model}; first {args.limit} items, 0-shot")
    print(f"{'task':<10} {'chance':>6} {'mixtune acc':>11} {'lm-eval acc':>11} {'acc_norm m/l':>14} "
          f"{'mixtune items/s':>15} {'lm-eval items/s':>15} {'speed-up':>8}")
    failures = []
    for name in args.tasks.split(","):
        resolved = [(e, load_task(p)) for e, p in suites.locate(name, 0, [])]
        entry, task = resolved[0]
        n = min(args.limit, len(task.items))
        t0 = time.perf_counter()
        ours = evaluate_resolved(model, tokenizer, resolved, Runtime(torch.device("cpu")),
                                 args.limit).tasks[entry.name]
        t1 = time.perf_counter()
        theirs = evaluate_with_lm_eval(model, tokenizer, name, [], limit=args.limit,
                                       shots=0).tasks[entry.name]
        t2 = time.perf_counter()
        chance = 1 / len(task.items[0]["choices"])
        print(f"{name:<10} {chance:>6.3f} {ours.acc:>11.4f} {theirs.acc:>11.4f} "
              f"{ours.acc_norm:>6.4f}/{theirs.acc_norm:.4f} {n / (t1 - t0):>15.2f} "
              f"{n / (t2 - t1):>15.2f} {(t2 - t1) / (t1 - t0):>7.2f}×", flush=True)
        if ours.acc < chance + ABOVE_CHANCE:
            failures.append(f"{name}: mixtune acc {ours.acc:.3f} is not well above chance {chance:.3f}")
        for metric in ("acc", "acc_norm"):
            a, b = getattr(ours, metric), getattr(theirs, metric)
            if abs(a - b) > AGREE + 1e-9:
                failures.append(f"{name}: {metric} mixtune {a:.4f} vs lm-eval {b:.4f}")
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if (args.check and failures) else 0


if __name__ == "__main__":
    raise SystemExit(main())
