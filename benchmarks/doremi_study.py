"""When does DoReMi help at laptop scale? Its settings, cell by cell, over seeds, in one table.

    python benchmarks/doremi_study.py [--data generated|PATH] [--out DIR] [--seeds 0 1 2]
                                      [--cells paper eta=0.1 ...] [--steps N] [--scale S]

Each cell changes one thing of DoReMi as the paper runs it (`paper`: η = 1, smoothing 1e-3, the
proxy sampling uniformly, a reference trained on the natural mixture, proxy as long as the main
models, one round):

    eta=X            the step size η (1, 0.3, 0.1, 0.03)
    smoothing=X      the mixing with uniform c
    proxy=natural    the proxy samples the reference's mixture instead of uniform
    reference=uniform  the reference (and baseline) is trained on the uniform mixture
    proxy_steps=X    the proxy trains X times as long as the main models (0.5, 2)
    rounds=N         iterated DoReMi, N rounds from the natural reference

Every (cell, seed) is one `mixtune run` (reference, proxy and main models all with that seed),
in DIR/<data>/<cell>/seed-<s>/, resumable: rerun the same command to continue, add seeds or
cells later. The table gives, per cell, DoReMi's main model (mean ± std over seeds): average and
worst-case validation log-ppl, worst-case and average excess over the loss floor (generated data)
or the natural mixture's model, downstream gold bits per byte (the generated tasks, or CORE's
first 100 items with --downstream core), speed-up to natural's final average; and the natural and
uniform baselines. Long: tens of minutes per cell on a laptop CPU; not part of CI.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import yaml

from mixtune.demo import demo_config
from mixtune.pipeline import run_pipeline
from mixtune.report import main_table, mean_std
from mixtune.report.tables import fmt_ms

DEFAULT_CELLS = ["paper", "eta=0.3", "eta=0.1", "eta=0.03", "smoothing=0.1", "proxy=natural",
                 "reference=uniform", "proxy_steps=2", "rounds=3"]


def base_config(data: str, scale: str, steps: int | None, seq_len: int) -> dict:
    """The demo's generated domains, or a real corpus laid out for `prepare`."""
    if data == "generated":
        cfg = demo_config()
    else:
        cfg = {
            "data": {"sources": [str(Path(data).resolve())],
                     "prepare": {"vocab_size": 8192, "seq_len": seq_len}},
            "reference_weights": "natural",
            "proxy": {"scale": scale, "steps": 400, "batch_size": 16, "eval_every": 50},
            "main": {"scale": scale, "steps": 400, "batch_size": 16, "eval_every": 50},
            "rounds": 1,
            "doremi": {"eta": 1.0, "smoothing": 0.001},
            "train": {"lr": 2e-3, "checkpoint_every": 100, "eval_max_tokens_per_domain": 32768},
        }
    if steps is not None:
        cfg["proxy"]["steps"] = cfg["main"]["steps"] = steps
    cfg["proxy"]["scale"] = cfg["main"]["scale"] = scale
    return cfg


def cell_config(base: dict, cell: str, seed: int, out: Path) -> dict:
    cfg = copy.deepcopy(base)
    cfg["output"] = str(out.resolve())  # a relative one would be read relative to the YAML file
    cfg["seeds"] = [seed]
    cfg["train"] = {**cfg.get("train", {}), "seed": seed}
    cfg["mixtures"] = ["reference", "uniform", "doremi"] if cell == "paper" else \
        ["reference", "doremi"]
    if cell == "paper":
        return cfg
    key, _, value = cell.partition("=")
    if key == "eta":
        cfg["doremi"]["eta"] = float(value)
    elif key == "smoothing":
        cfg["doremi"]["smoothing"] = float(value)
    elif key == "proxy":
        cfg["doremi"]["proxy_sampling"] = value
    elif key == "reference":
        cfg["reference_weights"] = value
        cfg["mixtures"] = ["reference", "doremi"]
    elif key == "proxy_steps":
        cfg["proxy"]["steps"] = int(cfg["main"]["steps"] * float(value))
        cfg["proxy"]["eval_every"] = max(1, cfg["proxy"]["steps"] // 10)
    elif key == "rounds":
        cfg["rounds"] = int(value)
    else:
        raise SystemExit(f"unknown cell {cell!r}; cells look like {', '.join(DEFAULT_CELLS)}")
    return cfg


def gold_bpb(out: Path, rel: str) -> float | None:
    path = out / rel / "eval.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("downstream", {}).get("mean_bpb")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="generated", help="'generated' or a raw corpus folder")
    ap.add_argument("--out", default="runs/doremi_study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cells", nargs="+", default=DEFAULT_CELLS)
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--steps", type=int, default=None, help="main and proxy steps")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--downstream", default=None,
                    help="tasks scored by every main model (generated data: its own tasks)")
    args = ap.parse_args()
    name = "generated" if args.data == "generated" else Path(args.data).name
    root = Path(args.out) / name
    base = base_config(args.data, args.scale, args.steps, args.seq_len)
    if args.downstream:
        base["eval"] = {"tasks": args.downstream, "limit": 100}

    results: dict[str, dict[str, list]] = {}
    for cell in args.cells:
        for seed in args.seeds:
            out = root / cell / f"seed-{seed}"
            out.mkdir(parents=True, exist_ok=True)
            (out / "study.yaml").write_text(yaml.safe_dump(cell_config(base, cell, seed, out)))
            run_pipeline(out / "study.yaml")
            summary = json.loads((out / "summary.json").read_text())
            for row in main_table(summary, out):
                label = row["mixture"] if row["mixture"] != "doremi" else f"doremi [{cell}]"
                if row["mixture"] != "doremi" and cell != "paper":
                    continue  # the baselines once, from the paper cell
                rel = summary["main_runs"][row["mixture"]][f"seed-{seed}"]
                r = results.setdefault(label, {k: [] for k in (
                    "average", "worst", "worst_excess", "average_excess", "bpb", "speedup")})
                for k in ("average", "worst", "worst_excess", "average_excess", "speedup"):
                    r[k].append(row[k])
                r["bpb"].append(gold_bpb(out, rel))

    print(f"{name}: {args.scale} models, seeds {args.seeds}; mean ± std over seeds "
          "(excess: over the loss floor, or natural's model)")
    head = ["mixture", "average", "worst-case", "worst excess", "average excess", "gold bpb",
            "speed-up"]
    print(f"{head[0]:<30}" + "".join(f"{h:>20}" for h in head[1:]))
    for label, r in results.items():
        cells = [fmt_ms(*mean_std(r[k])) for k in ("average", "worst", "worst_excess",
                                                   "average_excess", "bpb")]
        sp = [v for v in r["speedup"] if v is not None]
        cells.append(f"{fmt_ms(*mean_std(sp), digits=2)}× ({len(sp)}/{len(r['speedup'])})"
                     if sp else "never")
        print(f"{label:<30}" + "".join(f"{c:>20}" for c in cells))


if __name__ == "__main__":
    main()
