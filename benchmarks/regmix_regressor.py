"""Does RegMix's regressor matter? The mixture study's swarm refitted with another regressor,
its proposal trained like every other mixture of the study.

    python benchmarks/regmix_regressor.py [--study runs/mixture_study/generated]
                                          [--regressor loglinear]

The study (benchmarks/mixture_study.py) fits LightGBM, RegMix's regressor, to its swarm. This
refits the same swarm (the first scale's regmix/mixtures.csv and results.csv, so no proxy is
trained again) with --regressor and proposes as the pipeline does (the token-share prior, the
`regmix:` section's candidates, top and seed, the repetition cap), into
<first scale>/mixtures/regmix-<regressor>.json. That mixture then trains at every scale of the
study on each seed, with main/natural/seed-N's own config.yaml (only the weights and the folder
change), in <scale>/extra/regmix-<regressor>/seed-N, and per scale it prints the mean ± std of
the average validation log-ppl of every mixture of the study and of the refit, each one's paired
difference, seed by seed, against natural, and the refit's against each (90% intervals, from the
verdict's `decide`).

Resumable: a finished run (eval.json) is skipped, an interrupted one resumes from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import yaml

from mixtune import regmix
from mixtune.data.store import open_dataset
from mixtune.data.weights import DEFAULT_MAX_EPOCHS, write_weights
from mixtune.errors import UserError
from mixtune.io import load_yaml
from mixtune.mixing.repetition import cap_repetition
from mixtune.mixing.swarm import RegMixConfig
from mixtune.report.verdict import decide
from mixtune.tables import aligned, fmt_ms, mean_std
from mixtune.train.config import load_train_config, train_config

REFERENCE = "natural"


def scales(study: Path) -> list[Path]:
    """The study's scale folders, the first (the one with the swarm) first."""
    found = [p for p in sorted(study.iterdir()) if (p / "study.yaml").is_file()]
    first = [p for p in found if (p / "regmix" / "results.csv").is_file()]
    if not first:
        raise UserError(f"{study}: no scale with a finished swarm (regmix/results.csv); run "
                        "benchmarks/mixture_study.py first.")
    return first + [p for p in found if p != first[0]]


def propose(first: Path, regressor: str) -> Path:
    """Refit the first scale's swarm and propose as the pipeline does; write the mixture."""
    out = first / "mixtures" / f"regmix-{regressor}.json"
    if out.is_file():
        return out
    run = yaml.safe_load((first / "study.yaml").read_text())
    opts = RegMixConfig(**run.get("regmix", {}))
    swarm = regmix.read_swarm(first / "regmix" / "mixtures.csv", first / "regmix" / "results.csv")
    parts, mix = regmix.target_parts(swarm, run.get("target", "average"))
    model = regmix.fit_parts(swarm.weights, parts, mix, regressor, opts.seed)
    cfg = load_train_config(natural_config(first, 0))
    ds = open_dataset(cfg.data)
    counts = ds.counts("train")
    tokens = np.array([counts[d] for d in swarm.domains], dtype=np.float64)
    prior = np.maximum(tokens / tokens.sum(), 1e-12)  # the pipeline's: the token shares
    proposal = regmix.propose(model, len(swarm.domains), prior, samples=opts.candidates,
                              top=opts.top, seed=opts.seed + 1)
    budget = cfg.steps * cfg.batch_size * cfg.grad_accum * (cfg.seq_len or ds.seq_len)
    max_epochs = run.get("max_epochs", DEFAULT_MAX_EPOCHS)  # none: no cap, as in the pipeline
    capped = proposal if max_epochs is None else \
        cap_repetition(proposal, tokens, budget, max_epochs).weights
    cv = regmix.cross_validated_rank_correlation(swarm.weights, parts, regressor, seed=opts.seed,
                                                 mix=mix)
    print(f"{first.name}: {regressor} fit of {len(swarm.ids)} proxies, cross-validated rank "
          f"correlation {cv:.3f}; proposal " + ", ".join(
              f"{d} {w:.3f}" for d, w in zip(swarm.domains, capped, strict=True)))
    write_weights(out, dict(zip(swarm.domains, map(float, capped), strict=True)))
    return out


def natural_config(scale: Path, seed: int) -> Path:
    """The study's natural main run of `seed` at `scale`: every refit run copies its settings."""
    return scale / "main" / REFERENCE / f"seed-{seed}" / "config.yaml"


def train(scale: Path, weights: Path, name: str, seeds: list[int]) -> None:
    from mixtune.train.loop import run

    for seed in seeds:
        out = scale / "extra" / name / f"seed-{seed}"
        if (out / "eval.json").is_file():
            continue
        flat = load_yaml(natural_config(scale, seed))
        run(train_config(**{**flat, "weights": str(weights), "out": str(out)}))


def average(run: Path) -> float | None:
    file = run / "eval.json"
    return json.loads(file.read_text())["average"] if file.is_file() else None


def values(scale: Path, name: str, seeds: list[int]) -> dict[str, dict[str, float]]:
    """{mixture: {seed: average}}: natural, every other mixture of the study at this scale, and
    the refitted RegMix's runs (a mixture with no finished run is left out)."""
    folders = {REFERENCE: scale / "main" / REFERENCE}
    main = scale / "main"
    for folder in sorted(main.iterdir()) if main.is_dir() else []:
        folders.setdefault(folder.name, folder)
    folders[name] = scale / "extra" / name
    out: dict[str, dict[str, float]] = {}
    for mixture, folder in folders.items():
        got = {f"seed-{s}": average(folder / f"seed-{s}") for s in seeds}
        if any(v is not None for v in got.values()):
            out[mixture] = {s: v for s, v in got.items() if v is not None}
    return out


def table(scale: Path, name: str, seeds: list[int]) -> list[list[str]]:
    """Per mixture: its mean, its paired difference against natural, and the refitted RegMix's
    paired difference against it (below 0: the refit is better)."""
    vals = values(scale, name, seeds)
    rows = [["mixture", "average log-ppl", "Δ vs natural", "90% interval", f"{name} − it",
             "90% interval"]]
    for mixture, by_seed in vals.items():
        vs_natural = _paired(vals, mixture, REFERENCE)
        refit_vs = _paired(vals, name, mixture)
        rows.append([mixture, fmt_ms(*mean_std(by_seed.values())), *vs_natural, *refit_vs])
    return rows


def _paired(vals: dict[str, dict[str, float]], mixture: str, reference: str) -> list[str]:
    """`mixture` minus `reference`, seed by seed: mean ± std and the 90% interval (two seeds
    or more)."""
    found = [c for c in decide(vals, reference, "average").comparisons if c.mixture == mixture]
    if mixture == reference or not found or found[0].n < 2:
        return ["—", "—"]
    c = found[0]
    return [f"{c.mean:+.4f} ± {c.std:.4f}", f"[{c.low:+.4f}, {c.high:+.4f}]"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="runs/mixture_study/generated",
                    help="one data set's folder of the mixture study")
    ap.add_argument("--regressor", default="loglinear", choices=regmix.REGRESSORS)
    args = ap.parse_args(argv)
    try:
        folders = scales(Path(args.study))
        name = f"regmix-{args.regressor}"
        weights = propose(folders[0], args.regressor)
        for scale in folders:
            seeds = yaml.safe_load((scale / "study.yaml").read_text())["seeds"]
            train(scale, weights, name, seeds)
            print(f"\n{scale.name}, seeds {seeds}")
            print("\n".join(aligned(table(scale, name, seeds))))
    except UserError as e:
        print(f"regmix_regressor: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
