"""Does the DoReMi mixture beat the baselines on a real corpus? The full comparison, printed as a table.

    python benchmarks/mixture_quality.py DATA [--out DIR] [--scale small] [--steps 600] [--seeds 0 1]
                                          [--downstream core] [--downstream-limit 100]

DATA is raw sources (e.g. ../shared/corpora/dev) or a prepared dataset. Runs `mixtune run` with the
reference (natural), uniform and DoReMi mixtures, then prints per mixture: average and worst-case
validation log-ppl (mean ± std over seeds), domains improved over natural, and the speed-up to
natural's final average. Then each main run's final model is scored on the installed downstream
tasks (`mixtune tasks download`; DCLM's shots, the first --downstream-limit items) into its
eval.json, and the gold bits per byte and suite scores are printed per mixture (small models sit at
chance on accuracy: the bits per byte is what compares them). Long (tens of minutes on a laptop
CPU); not part of CI. Rerunning continues.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import yaml
from transformers.utils import logging as hf_logging

from mixtune.pipeline import run_pipeline
from mixtune.report import main_table
from mixtune.report.collect import OutputFolder
from mixtune.report.tables import text_table
from mixtune.report.verdict_section import plain_sentence


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--out", default="runs/mixture_quality")
    ap.add_argument("--scale", default="small")
    ap.add_argument("--proxy-scale", default=None, help="default: --scale")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--downstream", default="core", help="tasks for the final models ('' for none)")
    ap.add_argument("--downstream-limit", type=int, default=100)
    args = ap.parse_args()
    hf_logging.disable_progress_bar()

    data = Path(args.data).resolve()
    out = Path(args.out).resolve()
    prepared = (data / "manifest.json").is_file()
    cfg = {
        "output": str(out),
        "data": {"dataset": str(data)}
        if prepared
        else {
            "sources": [str(data)],
            "prepare": {"vocab_size": args.vocab_size, "seq_len": args.seq_len},
        },
        "reference_weights": "natural",
        "proxy": {
            "scale": args.proxy_scale or args.scale,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "eval_every": args.eval_every,  # as main: the reference run is natural's seed-0 run
        },
        "main": {
            "scale": args.scale,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "eval_every": args.eval_every,
        },
        "mixtures": ["reference", "uniform", "doremi"],
        "doremi": {"rounds": 1},
        "seeds": args.seeds,
        "train": {"lr": args.lr, "checkpoint_every": 100, "eval_max_tokens_per_domain": 32768},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    t0 = time.time()
    run_pipeline(out / "benchmark.yaml")
    summary = json.loads((out / "summary.json").read_text())

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; wall {time.time() - t0:.0f} s (this invocation)"
    )
    print(
        f"data: {data}; {args.scale} models, {args.steps} steps × {args.batch_size} × {args.seq_len} tokens; "
        f"seeds {args.seeds}"
    )
    print("\nweights:")
    names = list(summary["mixtures"])
    print("  " + "domain".ljust(16) + "".join(n.rjust(10) for n in names))
    for d in summary["domains"]:
        print("  " + d.ljust(16) + "".join(f"{summary['mixtures'][n][d]:10.3f}" for n in names))
    table = main_table(summary, out)
    print("\n" + "\n".join(text_table(table)))
    for row in table:
        if not row["is_reference"]:
            print(f"{row['mixture']}: improves {row['domains_improved']}/{row['domains_compared']} "
                  "domains over the reference")
    print(plain_sentence(OutputFolder.read(out).verdict))
    if args.downstream:
        print_downstream(out, summary, args.downstream, args.downstream_limit)
    print(f"\nreport: {out}/report/report.md")


def print_downstream(out: Path, summary: dict, tasks: str, limit: int) -> None:
    """Score every main run's final model (once: skipped when eval.json already has it)."""
    import statistics

    from mixtune.eval.command import run_eval
    from mixtune.eval.config import EvalOptions
    from mixtune.report import write_report

    opts = EvalOptions(tasks=tasks, limit=limit, max_tokens_per_domain=32768)
    by_mixture: dict[str, list[dict]] = {}
    for name, seeds in summary["main_runs"].items():
        for rel in seeds.values():
            ev = json.loads((out / rel / "eval.json").read_text())
            if "downstream" not in ev:
                ev = run_eval(str(out / rel), opts)
            by_mixture.setdefault(name, []).append(ev["downstream"])
    write_report(out)  # with the downstream section

    def ms(values):
        values = [v for v in values if v is not None]
        if not values:
            return "—"
        sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
        return f"{statistics.mean(values):.4f}{sd}"

    suites = sorted({k for rs in by_mixture.values() for r in rs for k in r["aggregates"]})
    print(f"\ndownstream ({tasks}, first {limit} items, DCLM's shots):")
    print(f"{'mixture':<10} {'mean gold bpb':>18} " + " ".join(f"{s:>22}" for s in suites))
    for name, rs in by_mixture.items():
        aggs = [ms([r["aggregates"].get(s, {}).get("value") for r in rs]) for s in suites]
        print(f"{name:<10} {ms([r['mean_bpb'] for r in rs]):>18} " + " ".join(f"{a:>22}" for a in aggs))


if __name__ == "__main__":
    main()
