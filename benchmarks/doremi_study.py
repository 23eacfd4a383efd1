"""When does DoReMi help at laptop scale? Its settings, cell by cell, over seeds, in one table.

    python benchmarks/doremi_study.py [--data generated|PATH] [--out DIR] [--seeds 0 1 2]
                                      [--cells paper eta=0.1 ...] [--steps N] [--scale S]

Each cell changes one thing of DoReMi as the paper runs it (`paper`: η = 1, smoothing 1e-3, the
proxy sampling uniformly, a reference trained on the natural mixture, proxy as long as the main
models, one round):

    eta=X            the step size η (1, 0.3, 0.1, 0.03, 0.01)
    smoothing=X      the mixing with uniform c
    proxy=natural    the proxy samples the reference's mixture instead of uniform
    reference=uniform  the proxy's reference is trained on the uniform mixture (the baseline
                     every cell is measured against stays the paper cell's natural model)
    proxy_steps=X    reference and proxy train X times as long as the main models (0.5, 2):
                     the pipeline trains both from the `proxy:` stage, as the paper does
    rounds=N         iterated DoReMi, N rounds from the natural reference
    A,B              both changes at once, e.g. eta=0.03,smoothing=0.1

Every (cell, seed) is one `mixtune run` (reference, proxy and main models all with that seed),
in DIR/<data>/<cell>/seed-<s>/, resumable: rerun the same command to continue, add seeds or
cells later; two processes may train different cells at once (`--report-only` then tabulates).
The table gives, per cell, DoReMi's main model (mean ± std over seeds): average and worst-case
validation log-ppl, worst-case and average excess, downstream gold bits per byte (the generated
tasks, or CORE's first 100 items with --downstream core), and the speed-up to the natural
model's final average (per seed, over the seeds that reach it); and the natural and uniform
baselines. Every cell is measured against the same seed's paper cell: excess over the loss floor
(generated data) or over its natural model (real data; a cell's own reference may be trained on
another mixture), speed-up to its natural model. A second table gives DoReMi's weights ᾱ and
how far they move without the last 20% of the proxy run (the report's stability line). Both go
to DIR/<data>/study.md, the numbers per seed to study.json. Long: minutes per (cell, seed) on a
laptop CPU; not part of CI.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import numpy as np
import yaml

from mixtune.demo import demo_config
from mixtune.eval.command import run_eval
from mixtune.eval.config import EvalOptions
from mixtune.mixing.iterated_doremi import read_rounds, weight_history, weights_stability
from mixtune.pipeline import run_pipeline
from mixtune.records import RunSummary
from mixtune.report.collect import MainRun, collect_runs, load_summary, step_reaching
from mixtune.tables import aligned, fmt_ms, md_table, mean_std

DEFAULT_CELLS = ["paper", "eta=0.3", "eta=0.1", "eta=0.03", "eta=0.01", "smoothing=0.1",
                 "eta=0.03,smoothing=0.1", "proxy=natural", "reference=uniform", "proxy_steps=2",
                 "rounds=3"]


def base_config(data: str, scale: str, steps: int | None, seq_len: int, vocab: int) -> dict:
    """The demo's generated domains, or a real corpus laid out for `prepare`."""
    if data == "generated":
        cfg = demo_config()
        cfg["doremi"] = {"eta": 1.0, "smoothing": 0.001}  # the paper's; the demo's own is η = 0.03
    else:
        cfg = {
            "data": {"sources": [str(Path(data).resolve())],
                     "prepare": {"vocab_size": vocab, "seq_len": seq_len}},
            "reference_weights": "natural",
            "proxy": {"scale": scale, "steps": 400, "batch_size": 16, "eval_every": 50},
            "main": {"scale": scale, "steps": 400, "batch_size": 16, "eval_every": 50},
            "doremi": {"eta": 1.0, "smoothing": 0.001, "rounds": 1},
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
    for change in cell.split(","):  # a cell may combine changes: eta=0.03,smoothing=0.1
        key, _, value = change.partition("=")
        if key == "eta":
            cfg["doremi"]["eta"] = float(value)
        elif key == "smoothing":
            cfg["doremi"]["smoothing"] = float(value)
        elif key == "proxy":
            cfg["doremi"]["proxy_sampling"] = value
        elif key == "reference":
            cfg["reference_weights"] = value
        elif key == "proxy_steps":  # the reference too: both are trained from `proxy:`
            cfg["proxy"]["steps"] = int(cfg["main"]["steps"] * float(value))
            cfg["proxy"]["eval_every"] = max(1, cfg["proxy"]["steps"] // 10)
        elif key == "rounds":
            cfg["doremi"]["rounds"] = int(value)
        else:
            raise SystemExit(f"unknown cell {cell!r}; cells look like {', '.join(DEFAULT_CELLS)}, "
                             "or several joined by commas")
    return cfg


DOWNSTREAM_FILE = "study_downstream.json"
MEASURES = {"average": "average", "worst": "worst-case", "worst_excess": "worst excess",
            "average_excess": "average excess", "bpb": "gold bpb", "speedup": "speed-up"}


def finished_runs(out: Path) -> tuple[RunSummary, dict[str, MainRun]]:
    """One (cell, seed) run: its summary and {mixture: its finished main run}."""
    summary = load_summary(out)
    return summary, {name: runs[0] for name, runs in collect_runs(summary, out).items()
                     if runs and runs[0].final is not None}


def seed_baseline(paper: Path) -> tuple[dict[str, float], int, float] | None:
    """(per-domain baseline, S_ref, target) of one seed from its paper cell: the loss floor of
    generated data, else the natural model's final log-ppl; natural's last eval step and final
    average (the speed-up's target). None until that model is finished."""
    if not (paper / "summary.json").is_file():
        return None
    summary, runs = finished_runs(paper)
    natural = runs.get(summary.reference_mixture)
    if natural is None:
        return None
    base = summary.loss_floor or dict(natural.final.log_ppl)
    return base, max(natural.eval), natural.final.average


def score_downstream(out: Path, cell: str, tasks: str) -> None:
    """Score the main models the table uses (the paper cell's all, another cell's DoReMi) on
    the first 100 items of `tasks`, once each, after training: in the training loop they would
    be scored at every evaluation of every model, the reference and proxy included."""
    summary, runs = finished_runs(out)
    for mixture, run in runs.items():
        target = out / run.path / DOWNSTREAM_FILE
        if (cell == "paper" or mixture == "doremi") and not target.is_file():
            run_eval(str(out / run.path), EvalOptions(
                tasks=tasks, limit=100, out=str(target), max_tokens_per_domain=32768))


def gold_bpb(out: Path, run: MainRun) -> float | None:
    """Mean gold bits per byte: scored after training, else in the training loop."""
    scored = out / run.path / DOWNSTREAM_FILE
    if scored.is_file():
        return json.loads(scored.read_text())["downstream"]["mean_bpb"]
    return run.downstream.mean_bpb if run.downstream else None


def measures(out: Path, run: MainRun, base: dict[str, float], s_ref: int, target: float) -> dict:
    """One main model against the seed's common baseline: the natural mixture's model of the
    paper cell (a cell's own reference may be trained on another mixture), or the loss floor."""
    excess = {d: run.final.log_ppl[d] - b for d, b in base.items()}
    steps = sorted(run.eval)
    reached = step_reaching(steps, [run.eval[s] for s in steps], target)
    return {"average": run.final.average, "worst": run.final.worst,
            "worst_excess": max(excess.values()),
            "average_excess": float(np.mean(list(excess.values()))),
            "bpb": gold_bpb(out, run),
            "speedup": s_ref / reached if reached else None, "excess": excess}


def cell_table(results: dict[str, dict[str, list]]) -> list[list[str]]:
    rows = [["mixture", *MEASURES.values()]]
    for label, r in results.items():
        cells = [fmt_ms(*mean_std(r[k])) for k in MEASURES if k != "speedup"]
        sp = [v for v in r["speedup"] if v is not None]
        cells.append(f"{fmt_ms(*mean_std(sp), digits=2)}× ({len(sp)}/{len(r['speedup'])})"
                     if sp else f"never (0/{len(r['speedup'])})")
        rows.append([label, *cells])
    return rows


def weights_table(weights: dict[str, list[dict]], domains: list[str]) -> list[list[str]]:
    """ᾱ per domain (mean over seeds), and how far it moves without the proxy's last 20%."""
    rows = [["mixture", *domains, "ᾱ shift (last 20%)"]]
    for label, ms in weights.items():
        rows.append([label, *(f"{np.mean([m['weights'][d] for m in ms]):.3f}" for d in domains),
                     fmt_ms(*mean_std(m["weights_shift"] for m in ms))])
    return rows


def excess_table(excess: dict[str, list[dict]], domains: list[str]) -> list[list[str]]:
    """Where each mixture gains and loses: per-domain excess, mean over seeds."""
    return [["mixture", *domains]] + [
        [label, *(f"{np.mean([e[d] for e in es]):.4f}" for d in domains)]
        for label, es in excess.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="generated", help="'generated' or a raw corpus folder")
    ap.add_argument("--out", default="runs/doremi_study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cells", nargs="+", default=DEFAULT_CELLS)
    ap.add_argument("--scale", default="tiny")
    ap.add_argument("--steps", type=int, default=None, help="main and proxy steps")
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--vocab-size", type=int, default=8192, help="real data: the tokenizer's")
    ap.add_argument("--downstream", default=None,
                    help="tasks scored by the main models after training, e.g. core (generated "
                         "data: its own tasks, scored in the loop)")
    ap.add_argument("--report-only", action="store_true",
                    help="tabulate the finished (cell, seed) runs; train nothing")
    args = ap.parse_args()
    name = "generated" if args.data == "generated" else Path(args.data).name
    root = Path(args.out) / name
    base = base_config(args.data, args.scale, args.steps, args.seq_len, args.vocab_size)
    for cell in args.cells:
        for seed in [] if args.report_only else args.seeds:
            out = root / cell / f"seed-{seed}"
            out.mkdir(parents=True, exist_ok=True)
            (out / "study.yaml").write_text(yaml.safe_dump(cell_config(base, cell, seed, out)))
            run_pipeline(out / "study.yaml")
            if args.downstream:
                score_downstream(out, cell, args.downstream)

    # Tabulate what is finished (another process may still train other cells). The paper cell
    # first: its natural model is every cell's baseline for the same seed.
    results: dict[str, dict[str, list]] = {}
    weights: dict[str, list[dict]] = {}
    excess: dict[str, list[dict]] = {}
    raw: dict[str, dict] = {}
    domains: list[str] = []
    cells = ["paper"] + [c for c in args.cells if c != "paper"]
    for seed in args.seeds:
        baseline = seed_baseline(root / "paper" / f"seed-{seed}")
        if baseline is None:
            continue
        for cell in cells:
            out = root / cell / f"seed-{seed}"
            if not (out / "summary.json").is_file():
                continue
            summary, runs = finished_runs(out)
            domains = list(summary.domains)
            for mixture, run in runs.items():
                if mixture != "doremi" and cell != "paper":
                    continue  # the baselines once, from the paper cell
                label = f"doremi [{cell}]" if mixture == "doremi" else mixture
                m = measures(out, run, *baseline)
                for k in MEASURES:
                    results.setdefault(label, {k: [] for k in MEASURES})[k].append(m[k])
                excess.setdefault(label, []).append(m["excess"])
                raw.setdefault(label, {})[f"seed-{seed}"] = m
                if mixture == "doremi":
                    # ᾱ and how settled it is: the last round's proxy without its last 20%.
                    found = weights_stability(
                        weight_history(out, read_rounds(summary.methods["doremi"])[-1]))
                    m["weights"] = dict(summary.mixtures["doremi"])
                    m["weights_shift"] = found[0] if found else None
                    weights.setdefault(label, []).append(m)

    if not results:
        raise SystemExit(f"no finished (cell, seed) run under {root} with its seed's paper cell; "
                         "train them first (the same command without --report-only)")
    over = "the loss floor" if args.data == "generated" else "the natural mixture's model"
    title = (f"{name}: {args.scale} models, seeds {args.seeds}; mean ± std over seeds; excess "
             f"over {over}; speed-up to natural's final average (seeds that reach it)")
    sections = [(title, cell_table(results)),
                (f"Excess per domain over {over} (mean over seeds)", excess_table(excess, domains)),
                ("DoReMi's weights ᾱ (mean over seeds)", weights_table(weights, domains))]
    print("\n\n".join(head + "\n" + "\n".join(aligned(rows)) for head, rows in sections))
    (root / "study.md").write_text("\n\n".join(
        head + "\n\n" + "\n".join(md_table(rows[0], rows[1:], "l" + "r" * (len(rows[0]) - 1)))
        for head, rows in sections) + "\n")
    (root / "study.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"\n{root}/study.md, {root}/study.json")


if __name__ == "__main__":
    main()
