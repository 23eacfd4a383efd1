"""`mixtune run CONFIG.yaml`: the whole DoReMi chain, stage by stage, resumable.

    prepare (or generate) -> round-1/reference -> round-1/proxy -> [round-2/reference on ᾱ_1 -> ...]
    -> main/<mixture>/seed-<s> for every mixture and seed -> summary.json -> report/ (always rewritten)

Every stage is a folder under the output. A finished stage is skipped; a partial one resumes from its
last checkpoint (each training stage is a `train.run`, itself resumable); a finished stage whose
resolved config changed is refused unless `--force STAGE`, which redoes it and every stage after it.
Under torchrun every rank walks the same stages; only rank 0 writes the non-training stages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mixtune import distributed
from mixtune.config import TrainConfig, from_dict, load_yaml
from mixtune.data.store import open_dataset, write_json_atomic
from mixtune.errors import UserError
from mixtune.mixing.static import as_dict, load_weights_file, resolve_weights

log = logging.getLogger(__name__)


@dataclass
class DataSpec:
    sources: list[str] | None = None
    """Raw sources for `mixtune prepare` (folders or files)."""
    dataset: str | None = None
    """An already prepared dataset folder."""
    synthetic: dict | None = None
    """Generated domains: keyword arguments of `mixtune.data.synthetic.write_dataset`."""
    prepare: dict = field(default_factory=dict)
    """Options of `prepare` (text_field, domain_field, vocab_size, seq_len, validation_fraction, tokenizer)."""


@dataclass
class ModelSpec:
    scale: str = "tiny"
    steps: int = 200
    batch_size: int = 32
    eval_every: int = 0


@dataclass
class RunConfig:
    output: str
    """Folder of the whole run (relative paths are relative to the config file)."""
    data: DataSpec
    reference_weights: str = "natural"
    """Mixture of the first round's reference model (and the baseline mixture compared)."""
    proxy: ModelSpec = field(default_factory=ModelSpec)
    """Scale and steps of the reference and proxy models (the same, as in the paper)."""
    main: ModelSpec = field(default_factory=lambda: ModelSpec(steps=400, eval_every=50))
    """Scale and steps of the models trained on each mixture."""
    mixtures: list[str] = field(default_factory=lambda: ["reference", "uniform", "doremi"])
    """Mixtures to compare: reference, doremi, or any weights spec (natural, uniform, temperature:T, file)."""
    rounds: int | dict = 1
    """Rounds of iterated DoReMi: a number, or {until: tol, max: n} on ‖ᾱ − α_ref‖∞."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Seeds of the main models (mean ± std over them in the report)."""
    doremi: dict = field(default_factory=dict)
    """eta, smoothing, loss_normalization, proxy_sampling."""
    train: dict = field(default_factory=dict)
    """Settings shared by every training stage (lr, grad_accum, precision, checkpoint_every, ...)."""
    nproc: int = 1
    """Processes per stage; > 1 relaunches the run under torchrun (one node)."""


def load_config(path: Path) -> RunConfig:
    raw = load_yaml(path)
    where = str(path)
    try:
        raw["data"] = from_dict(DataSpec, raw.get("data") or {}, f"{where}: data")
        for key in ("proxy", "main"):
            if key in raw:
                raw[key] = from_dict(ModelSpec, raw[key] or {}, f"{where}: {key}")
        cfg = from_dict(RunConfig, raw, where)
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None
    if "output" not in raw:
        raise UserError(f"{where}: needs `output:` (the run folder).")
    base = Path(path).resolve().parent
    cfg.output = str(_rel(base, cfg.output))
    d = cfg.data
    if sum(x is not None for x in (d.sources, d.dataset, d.synthetic)) != 1:
        raise UserError(f"{where}: data needs exactly one of sources, dataset or synthetic.")
    if d.sources is not None:
        d.sources = [str(_rel(base, s)) for s in d.sources]
    if d.dataset is not None:
        d.dataset = str(_rel(base, d.dataset))
    # Weights files, like every other path in the file, are relative to the config file.
    cfg.reference_weights = _weights_path(base, cfg.reference_weights)
    cfg.mixtures = [_weights_path(base, m) for m in cfg.mixtures]
    if "proxy_sampling" in cfg.doremi:
        cfg.doremi["proxy_sampling"] = _weights_path(base, cfg.doremi["proxy_sampling"])
    if not cfg.seeds:
        raise UserError(f"{where}: seeds must list at least one seed.")
    _rounds(cfg)  # validates
    return cfg


def _rel(base: Path, p: str) -> Path:
    p = Path(os.path.expanduser(p))
    return p if p.is_absolute() else base / p


def _weights_path(base: Path, spec) -> str:
    spec = str(spec)
    return str(_rel(base, spec)) if spec.endswith(".json") else spec


def _rounds(cfg: RunConfig) -> tuple[int, float | None]:
    """(maximum rounds, tolerance or None)."""
    r = cfg.rounds
    bad = UserError(f"rounds: {r!r}; use a number >= 1 or {{until: 0.01, max: 5}} (max >= 1).")
    if isinstance(r, bool):
        raise bad
    if isinstance(r, int) and r >= 1:
        return r, None
    if isinstance(r, dict) and set(r) <= {"until", "max"} and "until" in r:
        m, tol = r.get("max", 5), r["until"]
        if (
            isinstance(m, int)
            and not isinstance(m, bool)
            and m >= 1
            and isinstance(tol, (int, float))
            and tol >= 0
        ):
            return m, float(tol)
    raise bad


def config_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Pipeline:
    def __init__(self, cfg: RunConfig, force: list[str] | None = None):
        self.cfg, self.force = cfg, list(force or [])
        self.out = Path(cfg.output)
        self.dist = distributed.setup(cfg.train.get("device", "auto"))
        self._forced_from: int | None = None
        self._stage_index = 0
        self._force_matched: set[str] = set()

    # -- stage bookkeeping -----------------------------------------------------------------------

    def _stage(self, name: str, resolved: dict) -> bool:
        """Decide whether stage `name` must run; refuse a changed finished stage unless forced.

        Returns True when the stage is complete (skip it). A forced stage and every later one is
        cleared and rerun.
        """
        self._stage_index += 1
        folder = self.out / name
        marker = folder / "stage.json"
        matched = [
            f
            for f in self.force
            if f == name or name.startswith(f.rstrip("/") + "/") or f in name.split("/")
        ]
        self._force_matched.update(matched)
        forced = bool(matched)
        if forced and self._forced_from is None:
            self._forced_from = self._stage_index
        if self._forced_from is not None:
            if self.dist.is_main and folder.exists():
                log.info("stage %s: redoing (--force)", name)
                shutil.rmtree(folder)
            distributed.barrier()
        h = config_hash(resolved)
        if marker.is_file():
            saved = json.loads(marker.read_text())
            if saved.get("config_hash") != h:
                old = saved.get("config", {})
                diff = ", ".join(
                    f"{k}: {old.get(k)!r} -> {resolved.get(k)!r}"
                    for k in sorted(set(old) | set(resolved))
                    if old.get(k) != resolved.get(k)
                )
                raise UserError(
                    f"stage {name} finished with another configuration ({diff or 'config changed'}); "
                    f"rerun with --force {name} to redo it and the stages after it."
                )
            if saved.get("complete"):
                log.info("stage %s: complete, skipped", name)
                return True
        elif self.dist.is_main:
            write_json_atomic(
                marker, {"stage": name, "config_hash": h, "config": resolved, "complete": False}
            )
        distributed.barrier()
        log.info("stage %s: running", name)
        return False

    def _done(self, name: str) -> None:
        if self.dist.is_main:
            marker = self.out / name / "stage.json"
            state = json.loads(marker.read_text())
            state["complete"] = True
            write_json_atomic(marker, state)
        distributed.barrier()

    # -- stages ------------------------------------------------------------------------------------

    def run(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        data = self.stage_data()
        ds = open_dataset(data)
        domains = ds.domains
        max_rounds, tol = _rounds(self.cfg)
        ref_weights = resolve_weights(self.cfg.reference_weights, domains, ds.counts("train"))
        baseline = ref_weights
        rounds = []
        for r in range(1, max_rounds + 1):
            ref_file = self._write_weights(
                f"round-{r}/reference_weights.json", ref_weights, domains
            )
            ref_run = self.stage_train(f"round-{r}/reference", data, ref_file, self.cfg.proxy)
            proxy_run = self.stage_train(
                f"round-{r}/proxy", data, None, self.cfg.proxy, reference=ref_run
            )
            avg = load_weights_file(proxy_run / "domain_weights.json", domains)
            linf = float(np.abs(avg - ref_weights).max())
            rounds.append(
                {
                    "round": r,
                    "reference_weights": as_dict(ref_weights, domains),
                    "doremi_weights": as_dict(avg, domains),
                    "linf": linf,
                    "reference_run": f"round-{r}/reference",
                    "proxy_run": f"round-{r}/proxy",
                }
            )
            log.info("round %d: ‖ᾱ − α_ref‖∞ = %.4f", r, linf)
            if tol is not None and linf < tol:
                break
            ref_weights = avg

        mixtures = self._mixtures(baseline, rounds, domains, ds)
        main_runs = {
            n: {f"seed-{s}": f"main/{n}/seed-{s}" for s in self.cfg.seeds} for n in mixtures
        }
        summary = {
            "domains": domains,
            "reference_mixture": self._baseline_name(),
            "mixtures": {n: as_dict(w, domains) for n, w in mixtures.items()},
            "rounds": rounds,
            "main_runs": main_runs,
            "loss_floor": {
                d: v["loss_floor"] for d, v in ds.manifest["synthetic"]["domains"].items()
            }
            if "synthetic" in ds.manifest
            else None,
            "dataset": str(data),
        }
        if self.dist.is_main:
            # Written before the main runs, so that `mixtune report` works on a partial run.
            write_json_atomic(self.out / "summary.json", summary)
        for name, w in mixtures.items():
            wfile = self._write_weights(f"mixtures/{name}.json", w, domains)
            for seed in self.cfg.seeds:
                self.stage_train(
                    main_runs[name][f"seed-{seed}"], data, wfile, self.cfg.main, seed=seed
                )

        if self.dist.is_main:
            # Cheap, so always rewritten: the report reflects the runs as they are now.
            from mixtune.report import write_report

            write_report(self.out)
            log.info("report: %s", self.out / "report" / "report.md")
            for f in sorted(set(self.force) - self._force_matched):
                log.warning(
                    "--force %s matched no stage (stages: data, round-N/reference, round-N/proxy, "
                    "main/<mixture>/seed-S, or one part of them such as proxy or main)",
                    f,
                )
        distributed.barrier()
        return self.out

    def stage_data(self) -> Path:
        d = self.cfg.data
        if d.dataset is not None:
            return Path(d.dataset)
        name = "data"
        resolved = dataclasses.asdict(d)
        if self._stage(name, resolved):
            return self.out / name / "dataset"
        if self.dist.is_main:
            target = self.out / name / "dataset"
            if d.synthetic is not None:
                from mixtune.data.synthetic import DomainSpec, write_dataset

                kw = dict(d.synthetic)
                if "domains" in kw:  # YAML gives plain mappings: {name, kind, params, seed}
                    try:
                        kw["domains"] = [DomainSpec(**spec) for spec in kw["domains"]]
                    except (TypeError, ValueError) as e:
                        raise UserError(f"data.synthetic.domains: {e}") from None
                try:
                    write_dataset(target, **kw)
                except (TypeError, ValueError) as e:
                    raise UserError(f"data.synthetic: {e}") from None
            else:
                from mixtune.data.prepare import PrepareOptions, prepare

                try:
                    opts = PrepareOptions(sources=d.sources, out=str(target), **d.prepare)
                except TypeError as e:
                    raise UserError(f"data.prepare: {e}") from None
                prepare(opts)
        self._done(name)
        return self.out / name / "dataset"

    def stage_train(
        self,
        name: str,
        data: Path,
        weights: Path | None,
        spec: ModelSpec,
        *,
        reference: Path | None = None,
        seed: int | None = None,
    ) -> Path:
        from mixtune.train import run

        dm = dict(self.cfg.doremi)
        sampling = dm.pop("proxy_sampling", "uniform")
        kw = dict(self.cfg.train)
        if seed is None:
            seed = kw.pop("seed", 0)
        kw.pop("seed", None)
        try:
            tc = TrainConfig(
                data=str(data),
                out=str(self.out / name),
                weights=str(weights) if weights else sampling,
                scale=spec.scale,
                steps=spec.steps,
                batch_size=spec.batch_size,
                eval_every=spec.eval_every,
                seed=seed,
                reference=str(reference) if reference else None,
                **(dm if reference else {}),
                **kw,
            )
        except TypeError as e:
            raise UserError(f"train/doremi settings: {e}") from None
        resolved = tc.identity()
        if weights is not None:
            resolved["weights"] = json.loads(Path(weights).read_text())  # the numbers, not the path
        if not self._stage(name, resolved):
            run(tc)
            self._done(name)
        return self.out / name

    # -- helpers -----------------------------------------------------------------------------------

    def _baseline_name(self) -> str:
        spec = self.cfg.reference_weights
        return Path(spec).stem if spec.endswith(".json") else spec.replace(":", "")

    def _mixtures(self, baseline, rounds, domains, ds) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}

        def add(name: str, w: np.ndarray) -> None:
            if name in out:
                if np.allclose(out[name], w, rtol=0, atol=1e-12):
                    return  # the same mixture listed twice (e.g. reference_weights: uniform and uniform)
                raise UserError(
                    f"mixtures: two different mixtures are named {name!r}; rename one of the weights files."
                )
            out[name] = w

        for m in self.cfg.mixtures:
            if m == "reference":
                add(self._baseline_name(), baseline)
            elif m == "doremi":
                add("doremi", np.array([rounds[-1]["doremi_weights"][d] for d in domains]))
                if len(rounds) > 1:
                    for r in rounds[:-1]:
                        out[f"doremi-round{r['round']}"] = np.array(
                            [r["doremi_weights"][d] for d in domains]
                        )
            else:
                name = (
                    Path(m).stem
                    if (m.endswith(".json") or Path(m).is_file())
                    else m.replace(":", "")
                )
                add(name, resolve_weights(m, domains, ds.counts("train")))
        return out

    def _write_weights(self, rel: str, w: np.ndarray, domains: list[str]) -> Path:
        path = self.out / rel
        if self.dist.is_main:
            write_json_atomic(path, as_dict(w, domains))
        distributed.barrier()
        return path


def run_pipeline(config_path: str | Path, force: list[str] | None = None) -> Path:
    cfg = load_config(Path(config_path))
    if cfg.nproc > 1 and "WORLD_SIZE" not in os.environ:
        # Data preparation is single-process work: do it here, before the ranks exist to wait on it.
        launcher = Pipeline(cfg, force)
        launcher.stage_data()
        force = [f for f in (force or []) if f not in launcher._force_matched]  # done: not twice
        # Relaunch this very command under torchrun; every stage then runs on `nproc` processes.
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(cfg.nproc),
            "-m",
            "mixtune",
            "run",
            str(config_path),
        ] + [a for f in (force or []) for a in ("--force", f)]
        rc = subprocess.call(cmd, env={**os.environ, "MIXTUNE_LAUNCHED": "1"})
        if rc != 0:
            raise UserError(
                f"the torchrun launch of {config_path} failed (exit {rc}); see the messages above."
            )
        return Path(cfg.output)
    return Pipeline(cfg, force).run()


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
