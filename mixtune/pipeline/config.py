"""The settings of `mixtune run CONFIG.yaml`, next to the pipeline that runs them.

    RunConfig        output, data, proxy, main, mixtures, seeds, eval, train, nproc, and each
                     mixture method's own section (doremi:, parsed by the method's config class)
      DataConfig       the corpus: sources (with data.prepare / data.process), a dataset, or
                       data.synthetic
      StageSpec        scale, steps and batch of the proxy and main models
      TrainSettings    `train:`, every training stage's settings (train/config.py)

A run YAML is checked in full when it is loaded, before any stage runs (no torch imported here).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mixtune import schema
from mixtune.data.config import PrepareSettings
from mixtune.data.weights import DEFAULT_MAX_EPOCHS, spec_problem
from mixtune.errors import UserError
from mixtune.eval.config import TaskSelection
from mixtune.io import load_yaml
from mixtune.mixing import METHOD_OPTIONS
from mixtune.mixing.target import AVERAGE, is_downstream, target_problem
from mixtune.model.scales import DEFAULT_SCALE, get_scale, scale_problem
from mixtune.process.config import ProcessSettings
from mixtune.schema import at_least, named_sections, nonempty, positive, setting
from mixtune.synthetic import SyntheticConfig
from mixtune.train.config import TrainSettings

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    sources: list[str] | None = None
    """Raw sources for mixtune prepare (folders or files; relative to the config file)."""
    dataset: str | None = None
    """An already prepared dataset folder (relative to the config file)."""
    synthetic: SyntheticConfig | None = None
    """Generated domains with exactly known loss floors."""
    prepare: PrepareSettings = setting(
        factory=PrepareSettings,
        owned={
            "sources": "set data.sources",
            "out": "the dataset is written to OUTPUT/data/dataset",
            "overwrite": "redo the data stage with --force data",
        },
    )
    """Options of mixtune prepare for `sources` (text_field, domain_field, vocab_size, seq_len, ...)."""
    process: ProcessSettings | None = setting(
        None,
        owned={
            "sources": "set data.sources",
            "out": "the corpus is written to OUTPUT/process/corpus",
            "overwrite": "redo the process stage with --force process",
        },
    )
    """Filter and deduplicate `sources` with mixtune process before preparing them (pipeline,
    quality_model, tasks, executor, ...); none: prepare the sources as they are."""

    def validate(self, label) -> None:
        for name, opts in (("prepare", self.prepare), ("process", self.process)):
            if opts is not None and opts.executor == "slurm":
                raise UserError(f"{label.section()}: {name}.executor slurm: mixtune run waits for "
                                f"each stage; use local or ray here, or run `mixtune {name} "
                                "--executor slurm` and give its output to this run.")
        if self.process is not None:
            if self.sources is None:
                raise UserError(f"{label.section()}: process needs sources (the raw corpus).")
            moved = [k for k in ("text_field", "domain_field")
                     if getattr(self.prepare, k) != getattr(PrepareSettings, k)]
            if moved:
                raise UserError(f"{label.section()}: with process, set {', '.join(moved)} under "
                                "process: (prepare then reads the processed corpus, one folder "
                                "per domain).")
        given = [k for k in ("sources", "dataset", "synthetic") if getattr(self, k) is not None]
        if len(given) != 1:
            raise UserError(
                f"{label.section()}: needs exactly one of sources, dataset or synthetic"
                f"{' (got ' + ', '.join(given) + ')' if given else ''}."
            )


@dataclass
class StageSpec:
    scale: str = setting(DEFAULT_SCALE, check=scale_problem)
    """Model scale (see mixtune scales)."""
    steps: int = setting(200, check=at_least(1))
    """Optimizer steps."""
    batch_size: int | None = setting(None, check=at_least(1))
    """Global batch in sequences (none: the scale's recipe; 32 for the DoReMi scales)."""
    eval_every: int = setting(0, check=at_least(0))
    """Validation every N steps (0: only at the end)."""

    @property
    def global_batch(self) -> int:
        return self.batch_size or get_scale(self.scale).recipe.batch_size


# Keys of `train:` that the pipeline sets per stage, and where the user sets them instead.
PIPELINE_OWNED = {
    **dict.fromkeys(("data", "out"), "the pipeline sets it for each stage"),
    **dict.fromkeys(
        (schema.METHOD, "weights", "reference", "proxy_sampling", "eta", "smoothing", "loss_normalization"),
        "set the mixtures with mixtures:, reference_weights: and each method's section (doremi:)",
    ),
    **dict.fromkeys(
        ("scale", "steps", "chinchilla_multiplier", "batch_size", "eval_every"),
        "set it per model in proxy: and main:",
    ),
    **dict.fromkeys(("eval_tasks", "eval_limit", "eval_shots"), "set it in the eval: section"),
}


def _seeds_problem(seeds: list[int]) -> str | None:
    if not seeds:
        return "must not be empty"
    return "must be at least 0" if min(seeds) < 0 else None


@dataclass
class RunConfig:
    output: str
    """Folder of the whole run (relative paths in this file are relative to the file)."""
    data: DataConfig
    """The corpus: exactly one of sources, dataset or synthetic."""
    reference_weights: str = setting("natural", check=spec_problem)
    """Mixture of the first round's reference model, and the baseline every mixture is compared with."""
    proxy: StageSpec = setting(factory=StageSpec)
    """Scale and steps of the reference and proxy models (the same, as in the paper)."""
    main: StageSpec = setting(factory=lambda: StageSpec(steps=400, eval_every=50))
    """Scale and steps of the model trained on each mixture."""
    mixtures: list[str] = setting(factory=lambda: ["reference", "uniform", "doremi"], check=nonempty)
    """Mixtures to compare: reference, a mixture method (doremi, regmix, aioli; its options in the
    section of its name), or any weights spec (natural, uniform, temperature:T, unimax[:E], a
    file). The default holds the cheap candidates that the mixture study found worth a try
    (README, "The mixture study"): on generated domains uniform (free) and DoReMi (at most 1.17
    main runs of compute) beat natural beyond the seed spread at both scales, each best at one;
    on the real dev corpus no mixture did, and DoReMi and Aioli were worse at `small`. RegMix
    with its default swarm (10-12 main runs) and LightGBM never beat natural (refitted with
    `regressor: loglinear`, the same swarm gave the best mixture on generated domains); Aioli
    beat it on generated domains only. Add them to check on your own data."""
    target: str | dict[str, float] = setting(AVERAGE, check=target_problem)
    """What the mixture should be best at, and what the report's verdict compares mixtures on
    (lower is better): average (mean per-domain validation log-ppl), a domain, {domain: weight},
    downstream or downstream:<suite> (gold bits per byte; eval: must score tasks). RegMix fits
    its regression to it unless its own section sets one."""
    max_epochs: float | None = setting(DEFAULT_MAX_EPOCHS, check=positive)
    """Repetition cap of every method's proposal: no domain repeated more than this many times in
    a main run, the rest spread over the others (none: no cap). About 4 costs little (Muennighoff
    et al., arXiv 2305.16264); small proxies never see repetition, so they may ask for far more."""
    seeds: list[int] = setting(factory=lambda: [0, 1, 2], check=_seeds_problem)
    """Seeds of the main models (mean ± std over them in the report). Three by default: the
    verdict claims a win only beyond the spread over seeds, never from one seed, and in the
    mixture study the seed-to-seed spread of the paired difference (0.02-0.04 log-ppl) was as
    large as the differences between mixtures."""
    methods: dict[str, Any] = named_sections(METHOD_OPTIONS)
    """Each mixture method's options, in a section under its name (`doremi: {eta: 0.03}`)."""
    eval: TaskSelection = setting(factory=TaskSelection)
    """Downstream tasks scored while training (tasks, limit, shots)."""
    train: TrainSettings = setting(factory=TrainSettings, owned=PIPELINE_OWNED)
    """Settings of every training stage (lr, grad_accum, precision, checkpoint_every, seed of the
    reference and proxy, ...)."""
    nproc: int = setting(1, check=at_least(1))
    """Processes per stage; more than 1 relaunches the run under torchrun (one node)."""

    def validate(self, label) -> None:
        if is_downstream(self.target) and not self.eval.tasks:
            raise UserError(f"{label('target')} {self.target!r}: the main models score no tasks; "
                            "set eval: {tasks: ...} (e.g. core), or use a validation target.")
        methods = METHOD_OPTIONS.names()
        for i, m in enumerate(self.mixtures):
            if m == "reference" or m in methods:
                continue
            problem = spec_problem(m)
            if problem:
                raise UserError(
                    f"{label('mixtures')}[{i}] {m!r}: {problem}; a mixture is a weights spec or "
                    f"one of reference, {', '.join(methods)}"
                    f"{schema.did_you_mean(m, ['reference', *methods, 'natural', 'uniform'])}."
                )
        for m in self.mixtures:  # a method's defaults must do without a section (DoReMi's do)
            if m in methods and m not in self.methods:
                self.methods[m] = schema.parse(METHOD_OPTIONS.get(m), {}, labels=label.nested(m))
            check_run = getattr(self.methods.get(m), "check_run", None)
            if check_run is not None:  # options that depend on the rest of the run (eval: tasks)
                check_run(self, label.nested(m))

    def options(self, method: str):
        """The options of a method the run names (its section, or its defaults)."""
        return self.methods[method]


def load_run_config(path: Path) -> RunConfig:
    """A `mixtune run` YAML, checked in full; its paths made absolute, relative to the file."""
    path = Path(path)
    raw = load_yaml(path)
    base = path.resolve().parent
    # Paths are resolved before the checks, so that a weights file is looked for where it is.
    for key in ("output",):
        if isinstance(raw.get(key), str):
            raw[key] = str(_rel(base, raw[key]))
    data = raw.get("data")
    if isinstance(data, dict):
        if isinstance(data.get("sources"), list):
            data["sources"] = [str(_rel(base, s)) if isinstance(s, str) else s for s in data["sources"]]
        if isinstance(data.get("dataset"), str):
            data["dataset"] = str(_rel(base, data["dataset"]))
    if isinstance(raw.get("reference_weights"), str):
        raw["reference_weights"] = _weights_path(base, raw["reference_weights"])
    if isinstance(raw.get("mixtures"), list):
        raw["mixtures"] = [_weights_path(base, m) if isinstance(m, str) else m for m in raw["mixtures"]]
    for name, options in raw.items():  # a method's weights files (doremi.proxy_sampling)
        if METHOD_OPTIONS.get(name) is not None and isinstance(options, dict):
            for key, value in options.items():
                if isinstance(value, str) and value.endswith(".json"):
                    options[key] = _weights_path(base, value)
    if "rounds" in raw:  # the top-level key of mixtune 0.1, now the DoReMi method's option
        raise UserError(f"{path}: rounds: an option of the doremi method now; write it as "
                        "doremi: {rounds: N} (or {until: tol, max: n}).")
    cfg = schema.parse(RunConfig, raw, str(path))
    quiet = os.environ.get("RANK", "0") != "0" or os.environ.get("MIXTUNE_LAUNCHED")  # said once
    for name in raw:  # checked, but nothing will read it: most likely a method left out by mistake
        if METHOD_OPTIONS.get(name) is not None and name not in cfg.mixtures and not quiet:
            log.warning("%s: %s: options of a method the run does not train (it is not in "
                        "mixtures: %s); they are unused.", path, name, ", ".join(cfg.mixtures))
    # What is on disk is checked after the file's own shape, whose mistakes explain more.
    for i, source in enumerate(cfg.data.sources or []):
        if not Path(source).exists():
            raise UserError(f"{path}: data.sources[{i}] {source!r}: no such file or folder.")
    if cfg.data.dataset is not None and not (Path(cfg.data.dataset) / "manifest.json").is_file():
        raise UserError(
            f"{path}: data.dataset {cfg.data.dataset!r}: not a prepared dataset (no manifest.json); "
            "prepare it with mixtune prepare, or give data.sources instead."
        )
    return cfg


def _rel(base: Path, p: str) -> Path:
    # Not resolve()d: these paths are in the stages' identities, and an output made with the
    # path as written must resume (a resolved `examples/../runs` or symlink would refuse it).
    p = Path(os.path.expanduser(p))
    return p if p.is_absolute() else base / p


def _weights_path(base: Path, spec: str) -> str:
    return str(_rel(base, spec)) if spec.endswith(".json") else spec
