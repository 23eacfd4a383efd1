"""Which mixture method should I use, and does its ranking hold at a larger scale?

    python benchmarks/mixture_study.py [--data generated|PATH] [--out DIR] [--seeds 0 1 2]
                                       [--scales tiny small] [--base-seeds 0] [--steps N]
                                       [--vocab-size V] [--downstream core] [--report-only]

Per data set (the demo's generated domains, or a raw corpus folder laid out for `prepare`, e.g.
../shared/corpora/dev), one resumable `mixtune run` per scale, in DIR/<data>/<scale>/:

    the first of --scales (tiny)   every method: natural (the reference), uniform, unimax, DoReMi,
                                   RegMix and Aioli, main models on --seeds, proxies at this scale
    each larger scale (small,      the same fixed mixtures, the first scale's OUTPUT/mixtures/<name>
    base)                          .json files (natural as reference_weights), plus Aioli online:
                                   an online method has no fixed mixture, it runs at every scale;
                                   nothing of DoReMi or RegMix is trained again. `base` trains
                                   --base-seeds (fewer: it is the slowest)

Every main model of a scale trains on the same tokens (steps × batch × seq_len, the same at every
scale); the methods are set for a laptop:

    DoReMi   η = 0.03 (the DoReMi study's best step size at `tiny`; README, "The DoReMi study"),
             smoothing 1e-3, one round; its reference and proxy train `proxy:` steps (below),
             half the DoReMi study's length
    RegMix   its defaults (LightGBM, 100,000 candidates, the top 100), 4 proxies per domain (its
             default, at least 8), each `proxy:` = main steps / 2 at the first scale: the swarm
             costs about 2 × domains main runs of that scale
    Aioli    init uniform, η 1, ε 0.5 (the paper's); rounds of main steps / 4 with sweeps of 2 steps
             per domain (1, and a round one step longer than a sweep, when that does not fit)

The target is `average` (the mean per-domain validation log-ppl): the verdict compares every
mixture with natural on it, seed by seed. --downstream TASKS scores every main model once after
training (the first 100 items of each task): `core` on a real corpus, `dataset` (the domains' own
generated tasks) on generated data.

DIR/<data>/study.md (and the same numbers, per seed, in study.json):

- per scale, a table per mixture: average and worst-case validation log-ppl (mean ± sample std
  over seeds), gold bits per byte with --downstream, the rank by average, the paired difference
  of the average against natural (mean ± std and 90% interval, from `decide`), and the method's
  compute as a multiple of one main run of that scale (DoReMi's reference and proxy, RegMix's
  swarm, both trained once at the first scale; Aioli's held-out forward passes in its own runs;
  natural, uniform and unimax cost nothing); then the verdict sentence and each mixture's weights;
- across scales, each larger scale against the first, over the mixtures finished at both (Aioli
  as a method): Spearman's rank correlation of the mixtures' mean average log-ppl, and the
  decision accuracy of DataDecide (Magnusson et al., arXiv 2504.11393): over all pairs of
  mixtures, the share the first scale orders as the larger one does (also over the pairs the
  larger scale separates beyond its seed spread);
- the wall time of each scale's `mixtune run` (this script's own timing, every session summed),
  with the seconds its training steps took per kind of run.

Resumable: rerun the same command to continue (finished stages are skipped, a run stopped
mid-way resumes from its checkpoint), or add seeds and scales later; --report-only tabulates what
exists. Long (hours on a laptop CPU for 3 seeds); not part of CI. A quick look end to end:
`--seeds 0 1 --steps 24` (about 20 minutes on 2 shared cores, mostly start-up and evaluations).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np
import yaml

from mixtune.demo import demo_config
from mixtune.errors import UserError
from mixtune.records import RunSummary
from mixtune.report.collect import MainRun, OutputFolder, finished, heldout_flops
from mixtune.report.verdict import Verdict, decide, interval
from mixtune.report.verdict_section import plain_sentence
from mixtune.tables import NONE, aligned, fmt, fmt_ms, md_table, mean_std

REFERENCE = "natural"
FIXED = ["uniform", "unimax", "doremi", "regmix"]
"""The fixed mixtures besides natural, carried from the first scale to the larger ones."""
ONLINE = "aioli"
DOREMI = {"eta": 0.03, "smoothing": 0.001, "rounds": 1}
SWEEP_STEPS = 2
DOWNSTREAM_FILE = "study_downstream.json"
TIMING_FILE = "study_timing.json"
MEASURES = {"average": "average log-ppl", "worst": "worst-case log-ppl", "bpb": "gold bpb"}


# -- the configs -----------------------------------------------------------------------------------

def proxy_steps(steps: int) -> int:
    """DoReMi's reference and proxy, and RegMix's swarm: half a main run."""
    return max(1, steps // 2)


def regmix_proxies(k: int) -> int:
    """RegMix's default swarm, written out: 4 proxies per domain, at least 8 (and k + 1)."""
    return max(8, 4 * k, k + 1)


def aioli_options(steps: int, k: int) -> dict:
    """Rounds of a quarter of the run, sweeps of SWEEP_STEPS steps per domain; when a sweep over
    the k domains and one step on the updated mixture do not fit in that, sweeps of 1 step and a
    round just long enough for them (Aioli refuses a round shorter than a sweep + 1)."""
    sweep = SWEEP_STEPS if k * SWEEP_STEPS + 1 <= steps // 4 else 1
    return {"round_steps": max(steps // 4, k * sweep + 1), "sweep_steps": sweep}


def domain_count(data: str) -> int:
    """The domains of the data, before it is prepared (Aioli's round and RegMix's swarm depend
    on it): the generated ones, or the corpus's domain folders as `prepare` reads them."""
    if data == "generated":
        return len(demo_config()["data"]["synthetic"]["domains"])
    from mixtune.data.sources import check_layout

    return len(check_layout([str(Path(data).resolve())]))


def base_config(data: str, steps: int | None, seq_len: int, vocab: int) -> dict:
    """What every scale shares: the data, the batch, the training settings, the target."""
    if data == "generated":
        cfg = demo_config()
        cfg.pop("eval", None)  # no tasks in the loop (the swarm would score them): --downstream
    else:
        cfg = {
            "data": {"sources": [str(Path(data).resolve())],
                     "prepare": {"vocab_size": vocab, "seq_len": seq_len}},
            "main": {"steps": 400, "batch_size": 16},
            "train": {"lr": 2e-3, "checkpoint_every": 100, "eval_max_tokens_per_domain": 32768},
        }
    if steps is not None:
        cfg["main"]["steps"] = steps
    cfg["reference_weights"] = REFERENCE
    cfg["target"] = "average"
    return cfg


def scale_config(base: dict, scale: str, seeds: list[int], out: Path, k: int,
                 first: Path | None = None) -> dict:
    """One scale's `mixtune run`: every method (first=None), or the fixed mixtures of the first
    scale's run in `first` and Aioli online."""
    # First in the file, and absolute: a relative one would be read relative to the YAML file.
    cfg = {**copy.deepcopy(base), "output": str(out.resolve())}
    cfg = {"output": cfg.pop("output"), **cfg}
    steps, batch = cfg["main"]["steps"], cfg["main"]["batch_size"]
    cfg["seeds"] = list(seeds)
    cfg["main"] = {"scale": scale, "steps": steps, "batch_size": batch,
                   "eval_every": max(1, steps // 10)}
    cfg["aioli"] = aioli_options(steps, k)
    if first is None:
        # Proxies evaluate once, at the end: the swarm needs only its final losses.
        cfg["proxy"] = {"scale": scale, "steps": proxy_steps(steps), "batch_size": batch,
                        "eval_every": 0}
        cfg["mixtures"] = ["reference", *FIXED, ONLINE]
        cfg["doremi"] = dict(DOREMI)
        cfg["regmix"] = {"proxies": regmix_proxies(k)}
        return cfg
    files = first.resolve() / "mixtures"
    wanted = [files / f"{m}.json" for m in [REFERENCE, *FIXED]]
    missing = [str(f) for f in wanted if not f.is_file()]
    if missing:
        raise SystemExit(f"{', '.join(missing)}: not written yet; the first scale's run "
                         f"({first}) proposes them before its main runs")
    cfg["data"] = {"dataset": str(first.resolve() / "data" / "dataset")}  # its tokenizer, too
    cfg["reference_weights"] = str(wanted[0])  # named after the file: natural
    cfg.pop("proxy", None)
    for method in ("doremi", "regmix"):
        cfg.pop(method, None)
    cfg["mixtures"] = ["reference", *(str(f) for f in wanted[1:]), ONLINE]
    return cfg


# -- running ---------------------------------------------------------------------------------------

def run_scale(out: Path, cfg: dict, downstream: str | None) -> None:
    """Run (or continue) one scale's `mixtune run`, timed; every session goes to TIMING_FILE,
    also one that was interrupted."""
    from mixtune.pipeline import run_pipeline

    out.mkdir(parents=True, exist_ok=True)
    (out / "study.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    session = {"started": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "seconds": 0.0, "completed": False, "machine": machine()}
    t0 = time.perf_counter()
    try:
        run_pipeline(out / "study.yaml")
        session["seconds"] = time.perf_counter() - t0
        if downstream:
            t1 = time.perf_counter()
            score_downstream(out, downstream)
            session["downstream_seconds"] = time.perf_counter() - t1
        session["completed"] = True
    finally:
        session["seconds"] = session["seconds"] or time.perf_counter() - t0
        path = out / TIMING_FILE
        record = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
        record["sessions"].append(session)
        path.write_text(json.dumps(record, indent=1) + "\n")


def machine() -> str:
    """Where a session ran, for the wall time's reader: the accelerator (or the CPU), cores, torch."""
    import os
    import platform

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else \
        f"no GPU, {platform.machine()} CPU"
    return f"{device}, {os.cpu_count()} cores, torch {torch.__version__}"


def score_downstream(out: Path, tasks: str) -> None:
    """Every finished main model on the first 100 items of `tasks`, once (a rerun skips those
    scored): in the loop they would be scored at every evaluation, the swarm's proxies too."""
    from mixtune.eval.command import run_eval
    from mixtune.eval.config import EvalOptions

    folder = OutputFolder.read(out)
    for runs in folder.runs.values():
        for run in finished(runs):
            target = out / run.path / DOWNSTREAM_FILE  # a reused run's link: scored once
            if not target.is_file():
                run_eval(str(out / run.path), EvalOptions(
                    tasks=tasks, limit=100, out=str(target), max_tokens_per_domain=32768))


# -- the numbers -----------------------------------------------------------------------------------

def average_ranks(values: list[float]) -> list[float]:
    """1-based ranks, smallest first; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for x in order[i:j + 1]:
            ranks[x] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def rank_correlation(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Spearman's ρ over the names both have: Pearson's correlation of their average ranks (the
    tie-corrected form). None below 2 names or when one side is constant (no order to compare)."""
    names = [n for n in a if n in b]
    if len(names) < 2:
        return None
    ra = np.array(average_ranks([a[n] for n in names]))
    rb = np.array(average_ranks([b[n] for n in names]))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else None


def decision_accuracy(small: dict[str, float], large: dict[str, float],
                      pairs: list[tuple[str, str]] | None = None
                      ) -> tuple[float | None, int, int]:
    """DataDecide's decision accuracy (arXiv 2504.11393): the share of pairs of mixtures that the
    small scale orders as the large scale does, sign(small_a − small_b) = sign(large_a − large_b),
    over every pair of the names both have (or over `pairs`). A tie on one side only is a wrong
    decision. Returns (share or None without a pair, pairs agreeing, pairs)."""
    names = [n for n in small if n in large]
    if pairs is None:
        pairs = list(combinations(names, 2))
    pairs = [(x, y) for x, y in pairs if x in names and y in names]
    agree = sum(np.sign(small[x] - small[y]) == np.sign(large[x] - large[y]) for x, y in pairs)
    return (agree / len(pairs) if pairs else None), int(agree), len(pairs)


def separated_pairs(by_seed: dict[str, dict[str, float]]) -> list[tuple[str, str]]:
    """The pairs of mixtures whose difference, paired by seed (two seeds at least), has a 90%
    interval (Student's t, as the verdict's) that excludes 0: the orders the scale is sure of."""
    out = []
    for x, y in combinations(list(by_seed), 2):
        seeds = [s for s in by_seed[x] if s in by_seed[y]]
        _, _, low, high = interval([by_seed[x][s] - by_seed[y][s] for s in seeds])
        if low is not None and (low > 0 or high < 0):
            out.append((x, y))
    return out


def means(values: dict[str, dict[str, dict]], measure: str = "average") -> dict[str, float]:
    """{mixture: mean over seeds of `measure`} for the mixtures that have one."""
    out = {}
    for name, by_seed in values.items():
        m, _ = mean_std(v.get(measure) for v in by_seed.values())
        if m is not None:
            out[name] = m
    return out


def by_seed(values: dict[str, dict[str, dict]], measure: str = "average"
            ) -> dict[str, dict[str, float]]:
    return {name: {s: v[measure] for s, v in seeds.items() if v.get(measure) is not None}
            for name, seeds in values.items()}


def compute_multiple(method_flops: float | None, main_run_flops: float | None) -> float | None:
    if method_flops is None or not main_run_flops:
        return None
    return method_flops / main_run_flops


def fmt_multiple(x: float | None) -> str:
    if x is None:
        return NONE
    return "0" if x == 0 else f"{x:.3g}×"


# -- the tables (pure: from the numbers above) ------------------------------------------------------

def _comparison_word(c) -> str:
    if c is None:
        return "(reference)"
    if c.beats:
        return "better, beyond the spread"
    if c.worse:
        return "worse, beyond the spread"
    return "within noise" if c.n >= 2 else "one seed: no verdict" if c.n == 1 else "no paired seed"


def scale_table(values: dict[str, dict[str, dict]], verdict: Verdict,
                costs: dict[str, float | None], downstream: bool) -> list[list[str]]:
    """One scale: a row per mixture (the reference first, then as `values` orders them)."""
    shown = [k for k in MEASURES if downstream or k != "bpb"]
    averages = means(values)
    ranks = dict(zip(list(averages), average_ranks(list(averages.values())), strict=True))
    comparisons = {c.mixture: c for c in verdict.comparisons}
    header = ["mixture", *(MEASURES[k] for k in shown), "rank", f"Δ average vs {verdict.reference}",
              "90% interval", "vs natural", "compute (× main run)", "seeds"]
    rows = [header]
    names = [verdict.reference] + [n for n in values if n != verdict.reference]
    for name in [n for n in names if n in values]:
        seeds = values[name]
        cells = [fmt_ms(*mean_std(v.get(k) for v in seeds.values())) for k in shown]
        c = comparisons.get(name)
        if c is None or c.mean is None:
            delta = "0" if name == verdict.reference else NONE
        else:
            delta = f"{c.mean:+.4f}" + (f" ± {c.std:.4f}" if c.std is not None else "")
        span = f"[{c.low:+.4f}, {c.high:+.4f}]" if c is not None and c.low is not None else NONE
        rank = ranks.get(name)
        rows.append([name, *cells, NONE if rank is None else f"{rank:g}", delta, span,
                     _comparison_word(c), fmt_multiple(costs.get(name)),
                     str(sum(v.get("average") is not None for v in seeds.values()))])
    return rows


def across_table(first: str, first_means: dict[str, float],
                 larger: dict[str, tuple[dict[str, float], list[tuple[str, str]]]]
                 ) -> list[list[str]]:
    """Each larger scale against the first: {scale: (its mean averages, its separated pairs)}."""
    rows = [["scale", "mixtures", f"Spearman ρ with {first}", "decision accuracy",
             "on pairs it separates", f"best at {first}", "best at it"]]
    for scale, (big, sure) in larger.items():
        common = [n for n in first_means if n in big]
        rho = rank_correlation(first_means, big)
        share, agree, n = decision_accuracy(first_means, big)
        sure_share, sure_agree, sure_n = decision_accuracy(first_means, big, sure)
        best_first = min(common, key=first_means.get) if common else NONE
        best_big = min(common, key=big.get) if common else NONE
        rows.append([scale, str(len(common)), fmt(rho, 3),
                     f"{share:.0%} ({agree}/{n})" if share is not None else NONE,
                     f"{sure_share:.0%} ({sure_agree}/{sure_n})" if sure_share is not None
                     else "no pair separated",
                     best_first, best_big])
    return rows


def rank_table(scale_means: dict[str, dict[str, float]]) -> list[list[str]]:
    """Mean average log-ppl and its rank, per mixture and scale."""
    scales = list(scale_means)
    ranks = {s: dict(zip(list(m), average_ranks(list(m.values())), strict=True))
             for s, m in scale_means.items()}
    names = list(dict.fromkeys(n for m in scale_means.values() for n in m))
    return [["mixture", *scales]] + [
        [n, *(f"{scale_means[s][n]:.4f} ({ranks[s][n]:g})" if n in scale_means[s] else NONE
              for s in scales)] for n in names]


def weights_table(weights: dict[str, dict[str, float]], domains: list[str]) -> list[list[str]]:
    return [["mixture", *domains]] + [
        [name, *(fmt(w.get(d), 3) for d in domains)] for name, w in weights.items() if w]


def timing_table(timing: dict[str, dict]) -> list[list[str]]:
    """Per scale: wall time of its `mixtune run` and the training-step seconds per kind of run."""
    rows = [["scale", "wall time", "sessions", "DoReMi (reference + proxy)", "RegMix swarm",
             "main run, fixed mixture", "main run, aioli", "downstream scoring"]]
    for scale, t in timing.items():
        rows.append([scale, _duration(t.get("wall_seconds")), str(t.get("sessions", 0)),
                     _duration(t.get("doremi")), _duration(t.get("regmix")),
                     _duration(t.get("main_fixed")), _duration(t.get("main_online")),
                     _duration(t.get("downstream_seconds"))])
    return rows


def machines_text(timing: dict[str, dict]) -> list[str]:
    """Which machine each scale ran on (sessions before this was recorded name none)."""
    ran = {m: [s for s, t in timing.items() if m in t.get("machines", [])]
           for t in timing.values() for m in t.get("machines", [])}
    return [f"Ran on {m}: {', '.join(scales)}." for m, scales in ran.items()]


def _duration(seconds: float | None) -> str:
    if not seconds:
        return NONE
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


# -- reading a scale's run -------------------------------------------------------------------------

def gold_bpb(out: Path, run: MainRun) -> float | None:
    scored = out / run.path / DOWNSTREAM_FILE
    if scored.is_file():
        return json.loads(scored.read_text())["downstream"].get("mean_bpb")
    return run.downstream.mean_bpb if run.downstream else None


def run_values(folder: OutputFolder) -> dict[str, dict[str, dict]]:
    """{mixture: {seed: {average, worst, bpb}}} of the finished main runs."""
    return {name: {r.seed: {"average": r.final.average, "worst": r.final.worst,
                            "bpb": gold_bpb(folder.path, r)} for r in finished(runs)}
            for name, runs in folder.runs.items()}


def main_run_flops(summary: RunSummary) -> float | None:
    """One main run's training FLOPs, as the methods of the run recorded it."""
    for record in summary.methods.values():
        flops = record.get("flops") if isinstance(record, dict) else None
        if isinstance(flops, dict) and flops.get("main_run"):
            return float(flops["main_run"])
    return None


def costs(folder: OutputFolder, first: RunSummary) -> dict[str, float | None]:
    """Each mixture's method compute, as a multiple of one main run of this scale: DoReMi's and
    RegMix's training at the first scale (summary.json "flops"), Aioli's held-out forward passes
    in its own runs (held-out tokens × the FLOPs per token its record keeps), 0 for a spec."""
    main = main_run_flops(folder.summary)
    out: dict[str, float | None] = dict.fromkeys(folder.runs, 0.0)
    for name in folder.runs:
        if name in ("doremi", "regmix"):
            flops = (first.methods.get(name) or {}).get("flops") or {}
            out[name] = compute_multiple(flops.get("method"), main)
        elif name == ONLINE:
            record = (folder.summary.methods.get(name) or {}).get("flops") or {}
            spent = heldout_flops(record, folder.runs[name])
            out[name] = compute_multiple(spent[1] if spent and spent[0] else None,
                                         record.get("main_run"))
    return out


def train_seconds(run: Path) -> float | None:
    """The seconds a run's training steps took (metrics.jsonl's step_time_s; evaluations not
    counted), each step once (a resumed run may log a step again)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return None
    steps: dict[int, float] = {}
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("kind") == "train" and \
                isinstance(row.get("step_time_s"), int | float):
            steps[row.get("step")] = float(row["step_time_s"])
    return sum(steps.values()) if steps else None


def timing(out: Path, folder: OutputFolder) -> dict:
    """The scale's wall time (this script's sessions) and training-step seconds: DoReMi's and
    RegMix's runs summed, the main runs' mean per run."""
    record = json.loads((out / TIMING_FILE).read_text()) if (out / TIMING_FILE).is_file() else {}
    sessions = record.get("sessions", [])
    t = {"wall_seconds": sum(s.get("seconds", 0.0) for s in sessions), "sessions": len(sessions),
         "downstream_seconds": sum(s.get("downstream_seconds", 0.0) for s in sessions),
         "machines": sorted({s["machine"] for s in sessions if s.get("machine")})}
    doremi = [train_seconds(p) for p in out.glob("round-*/*") if p.is_dir()]
    regmix = [train_seconds(p) for p in (out / "regmix").glob("proxy-*") if p.is_dir()]
    t["doremi"] = sum(x for x in doremi if x) or None
    t["regmix"] = sum(x for x in regmix if x) or None
    for key, names in (("main_fixed", [n for n in folder.runs if n != ONLINE]),
                       ("main_online", [ONLINE])):
        t[key], _ = mean_std(train_seconds(out / r.path)
                             for n in names for r in finished(folder.runs.get(n, [])))
    return t


def notes(folder: OutputFolder) -> list[str]:
    """What a reader should know about the methods' proposals at this scale."""
    lines = []
    regmix = folder.summary.methods.get("regmix") or {}
    if regmix.get("proxies"):
        rc = regmix.get("rank_correlation")
        lines.append(f"RegMix: {regmix['proxies']} proxies, {regmix.get('regressor')} fit, "
                     f"cross-validated rank correlation {fmt(rc, 3)}"
                     + (" (below 0.5: its ranking is not to be trusted)"
                        if rc is not None and rc < 0.5 else "")
                     + ("; the fit is flat, so its proposal is the natural prior"
                        if regmix.get("flat_fit") else "") + ".")
    for name, cap in (folder.summary.capped or {}).items():
        lines.append(f"{name}'s proposal was capped at {folder.summary.max_epochs:g} epochs of "
                     f"{', '.join(cap.get('capped', {}))}.")
    return lines


# -- main ------------------------------------------------------------------------------------------

def scale_seeds(scale: str, args) -> list[int]:
    return args.base_seeds if scale == "base" else args.seeds


def write_study(root: Path, name: str, args, settings: dict) -> None:
    """Tabulate every scale that has a summary.json (a scale not started yet is left out)."""
    folders = {s: OutputFolder.read(root / s) for s in args.scales
               if (root / s / "summary.json").is_file()}
    first_scale = args.scales[0]
    if first_scale not in folders:
        raise SystemExit(f"{root / first_scale}: not started (no summary.json); train first "
                         "(the same command without --report-only)")
    first = folders[first_scale].summary
    same = same_weights(first.mixtures)
    downstream = bool(args.downstream)
    sections: list[Section] = []
    study: dict = {"data": name, "settings": settings, "scales": {}, "across": {},
                   "same_weights": same}
    scale_means: dict[str, dict[str, float]] = {}
    scale_sure: dict[str, list[tuple[str, str]]] = {}
    weights: dict[str, dict[str, float]] = {}
    times: dict[str, dict] = {}
    for scale, folder in folders.items():
        values = run_values(folder)
        cost = costs(folder, first)
        verdict = decide(by_seed(values), folder.summary.reference_mixture, "average",
                         costs={n: c for n, c in cost.items() if c is not None})
        # The rank comparisons count a mixture that repeats another's weights once.
        distinct = {n: v for n, v in values.items() if n not in same}
        scale_means[scale] = means(distinct)
        scale_sure[scale] = separated_pairs(by_seed(distinct))
        times[scale] = timing(root / scale, folder)
        for m, w in folder.summary.mixtures.items():
            if scale == first_scale or m == ONLINE:
                weights[f"{m} ({scale})" if m == ONLINE else m] = w
        sentence = plain_sentence(verdict)
        after = [f"Verdict: {sentence}"] + notes(folder)
        after += [same_note(m, twin) for m, twin in same.items()]
        missing = [f"{r.path} ({r.problem})" for runs in folder.runs.values() for r in runs
                   if r.problem]
        if missing:
            after.append(f"Not finished: {'; '.join(missing)}.")
        before = [f"`{scale}` main models, seeds {scale_seeds(scale, args)}; mean ± std over "
                  "seeds; Δ: the mixture's average log-ppl minus natural's of the same seed "
                  "(from the verdict's paired comparison); rank by mean average log-ppl."]
        sections.append(Section(f"## {scale}", before,
                                scale_table(values, verdict, cost, downstream), after))
        study["scales"][scale] = {
            "output": str(root / scale), "seeds": scale_seeds(scale, args),
            "runs": values, "compute": cost, "timing": times[scale],
            "verdict": {**verdict.to_json(), "sentence": sentence},
            "weights": folder.summary.mixtures,
        }
    larger = {s: (scale_means[s], scale_sure[s]) for s in folders if s != first_scale}
    if larger:
        base = scale_means[first_scale]
        sections.append(Section("## Across scales: does the first scale's ranking hold?", [
            f"Each larger scale against `{first_scale}`, over the mixtures finished at both"
            + (f" ({', '.join(same)} left out: the same runs as {', '.join(set(same.values()))})"
               if same else "")
            + ", on the mean average log-ppl: Spearman's rank correlation (ties share their mean "
            "rank), and DataDecide's decision accuracy, the share of pairs of mixtures the "
            "smaller scale orders as the larger does (a tie on one side only counts as wrong); "
            "also over the pairs whose difference at the larger scale, paired by seed, has a 90% "
            "interval without 0 (the others are within that scale's own seed noise)."],
            across_table(first_scale, base, larger)))
        for s, (big, sure) in larger.items():
            share, agree, n = decision_accuracy(base, big)
            sure_share, sure_agree, sure_n = decision_accuracy(base, big, sure)
            study["across"][s] = {
                "mixtures": [m for m in base if m in big],
                "spearman": rank_correlation(base, big),
                "decision_accuracy": share, "pairs_agreeing": agree, "pairs": n,
                "separated_pairs": [list(p) for p in sure],
                "decision_accuracy_separated": sure_share, "separated_agreeing": sure_agree}
        sections.append(Section("### Mean average log-ppl (rank) per scale", [],
                                rank_table(scale_means)))
    sections.append(Section("## Weights", [
        f"The fixed mixtures (proposed at `{first_scale}`, trained on as they are at every scale) "
        "and, per scale, the share of each domain in what Aioli's runs trained on (seed mean)."],
        weights_table(weights, list(first.domains))))
    sections.append(Section("## Wall time", [
        "Of each scale's `mixtune run` (this script's timing, its sessions summed), and the "
        "seconds its training steps took (metrics.jsonl; evaluations and start-up left out): "
        "DoReMi's and RegMix's runs summed (the swarm trains one proxy per CPU core at once), a "
        "main run's per run."], timing_table(times), machines_text(times)))
    study["timing"] = times

    title = (f"# {name}: which mixture method, and does its ranking hold at a larger scale?\n\n"
             + settings_text(settings))
    print(title + "\n\n" + "\n\n".join(sec.text() for sec in sections))
    (root / "study.md").write_text("\n\n".join([title, *(sec.markdown() for sec in sections)])
                                   + "\n")
    (root / "study.json").write_text(json.dumps(study, indent=1) + "\n")
    print(f"\n{root}/study.md, {root}/study.json")


@dataclass
class Section:
    head: str
    before: list[str]
    rows: list[list[str]]
    after: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join([self.head, *self.before, *aligned(self.rows), *self.after])

    def markdown(self) -> str:
        # Names and words left-aligned, numbers right.
        align = "".join("l" if i == 0 or h == "vs natural" or h.startswith("best at") else "r"
                        for i, h in enumerate(self.rows[0]))
        return "\n".join([self.head, "", *(p + "\n" for p in self.before),
                          *md_table(self.rows[0], self.rows[1:], align), "",
                          *(p + "\n" for p in self.after)]).rstrip("\n")


def same_weights(mixtures: dict[str, dict[str, float]]) -> dict[str, str]:
    """{mixture: an earlier one with the same weights} (unimax is uniform when no domain would
    pass its epochs): the pipeline trains them once, and a ranking must count them once."""
    out: dict[str, str] = {}
    names = [n for n, w in mixtures.items() if w]
    for i, name in enumerate(names):
        for earlier in names[:i]:
            a, b = mixtures[name], mixtures[earlier]
            if earlier not in out and a.keys() == b.keys() and \
                    all(abs(a[d] - b[d]) <= 1e-12 for d in a):
                out[name] = earlier
                break
    return out


def same_note(mixture: str, twin: str) -> str:
    why = " (UniMax spreads the budget evenly when no domain would pass its epochs)" \
        if (mixture, twin) == ("unimax", "uniform") else ""
    return f"{mixture} has {twin}'s weights{why}: the same main runs, a row each."


def settings_text(s: dict) -> str:
    aioli = s["aioli"]
    return (f"Main models: {s['steps']} steps × {s['batch_size']} sequences × {s['seq_len']} "
            f"tokens ({s['main_tokens']:,} tokens), the same at every scale, lr {s['lr']:g}. "
            f"DoReMi η = {DOREMI['eta']} (the DoReMi study's best at `tiny`), smoothing "
            f"{DOREMI['smoothing']:g}, one round; RegMix {s['regmix_proxies']} proxies; both "
            f"with reference, proxies and swarm at `{s['first_scale']}`, {s['proxy_steps']} "
            f"steps each. Aioli: rounds of {aioli['round_steps']} steps, sweeps of "
            f"{aioli['sweep_steps']} step(s) per domain, init uniform, at every scale. Target: "
            "the average validation log-ppl (mean over domains); lower is better.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="generated", help="'generated' or a raw corpus folder")
    ap.add_argument("--out", default="runs/mixture_study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--scales", nargs="+", default=["tiny", "small"],
                    help="the first: where the methods run (the smallest); then larger ones")
    ap.add_argument("--base-seeds", type=int, nargs="+", default=[0],
                    help="seeds of the `base` scale (the slowest)")
    ap.add_argument("--steps", type=int, default=None,
                    help="main steps (default: 600 generated, 400 real); proxies half")
    ap.add_argument("--seq-len", type=int, default=256, help="real data: prepare's")
    ap.add_argument("--vocab-size", type=int, default=8192, help="real data: the tokenizer's")
    ap.add_argument("--downstream", default=None,
                    help="tasks scored by every main model after training: core (real data), "
                         "dataset (generated data's own tasks)")
    ap.add_argument("--report-only", action="store_true",
                    help="tabulate what exists; train nothing")
    args = ap.parse_args()
    if len(set(args.scales)) != len(args.scales):
        raise SystemExit(f"--scales {' '.join(args.scales)}: each scale once")
    logging.basicConfig(level=logging.INFO, format="mixtune: %(message)s", stream=sys.stderr)
    for noisy in ("transformers", "datasets", "torch.distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    name = "generated" if args.data == "generated" else Path(args.data).name
    root = Path(args.out) / name
    base = base_config(args.data, args.steps, args.seq_len, args.vocab_size)
    k = domain_count(args.data)
    steps, batch = base["main"]["steps"], base["main"]["batch_size"]
    seq_len = base["data"]["synthetic"]["seq_len"] if args.data == "generated" else args.seq_len
    settings = {"data": args.data, "scales": args.scales, "first_scale": args.scales[0],
                "seeds": {s: scale_seeds(s, args) for s in args.scales}, "steps": steps,
                "batch_size": batch, "seq_len": seq_len, "main_tokens": steps * batch * seq_len,
                "lr": base["train"]["lr"], "proxy_steps": proxy_steps(steps), "domains": k,
                "regmix_proxies": regmix_proxies(k), "aioli": aioli_options(steps, k),
                "doremi": DOREMI, "downstream": args.downstream}
    try:
        if not args.report_only:
            first = root / args.scales[0]
            for i, scale in enumerate(args.scales):
                out = root / scale
                cfg = scale_config(base, scale, scale_seeds(scale, args), out, k,
                                   None if i == 0 else first)
                run_scale(out, cfg, args.downstream)
        write_study(root, name, args, settings)
    except UserError as e:
        raise SystemExit(f"mixture_study: {e}") from None


if __name__ == "__main__":
    main()
