"""Every setting of mixtune, typed, with its default, its rule and its documentation, once.

    ProcessOptions   mixtune process: raw sources -> filtered, deduplicated sources
    PrepareOptions   mixtune prepare                              (data.prepare in a run YAML)
    TrainConfig      mixtune train / doremi; a run folder's config.yaml   (train: in a run YAML)
      mixing           static weights or a DoReMi proxy (or any registered method)
      optim            AdamW and the learning-rate schedule
      eval             validation during and after training         (keys eval_*)
      checkpoint       cadence and retention                        (keys checkpoint_every, keep_checkpoints)
      log              progress, MFU, TensorBoard / W&B
    RunConfig        mixtune run CONFIG.yaml: data, proxy, main, mixtures, seeds, train, and each
                     mixture method's own section (doremi:, with the method's config class)

The CLI flags and the YAML keys are derived from these dataclasses (`mixtune.schema`), and a run
YAML is checked in full when it is loaded, before any stage runs. Outside, every option has one flat
name (`lr`, `eval_every`); inside, `cfg.optim.lr`, `cfg.eval.every`. This module imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from mixtune import schema
from mixtune.errors import UserError
from mixtune.executors import ExecutorOptions
from mixtune.mixing import METHOD_OPTIONS, MIXERS
from mixtune.mixing.static import StaticConfig
from mixtune.mixing.weights import spec_problem
from mixtune.model.scales import get_scale, scale_problem, steps_for_budget
from mixtune.schema import at_least, in_range, named_sections, nonempty, positive, section, setting

# -- prepare -----------------------------------------------------------------------------------


@dataclass
class PrepareOptions(ExecutorOptions):
    sources: list[str]
    """Folders (SOURCE/<domain>/..., optionally with train/ and validation/) or files."""
    out: str
    """Dataset folder to write (atomically: it is absent or complete)."""
    text_field: str = "text"
    """Dotted path of the text in each record."""
    domain_field: str | None = None
    """Dotted path of the domain in each record, e.g. meta.pile_set_name (none: from folders)."""
    validation_fraction: float = setting(0.05, check=in_range(0, 1, lo_open=True, hi_open=True))
    """Share of documents hashed into validation when a source has no validation/ folder."""
    tokenizer: str | None = None
    """HF tokenizer folder or tokenizer.json (none: train a byte-level BPE on the training split)."""
    vocab_size: int = 8192
    """Vocabulary of the trained BPE."""
    tokenizer_train_bytes: int = setting(1 << 30, check=at_least(1))
    """Characters of training text the BPE is trained on (a sample of a big corpus is enough)."""
    seq_len: int = setting(512, check=at_least(1))
    """Tokens per training sequence."""
    skip_bad_records: bool = False
    """Skip and count malformed records instead of failing on the first one."""
    overwrite: bool = False
    """Redo a complete output."""

    def validate(self, label) -> None:
        super().validate(label)
        if self.tokenizer is None and self.vocab_size < 300:
            raise UserError(
                f"{label('vocab_size')} {self.vocab_size}: a byte-level BPE needs at least 300 "
                "(256 bytes + merges)."
            )

    def recorded(self) -> dict:
        """The options that determine the output (a rerun with others is refused)."""
        return {
            "sources": [str(Path(s).resolve()) for s in self.sources],
            "text_field": self.text_field,
            "domain_field": self.domain_field,
            "validation_fraction": self.validation_fraction,
            "tokenizer": str(Path(self.tokenizer).resolve()) if self.tokenizer else None,
            "vocab_size": None if self.tokenizer else self.vocab_size,
            "seq_len": self.seq_len,
            "skip_bad_records": self.skip_bad_records,
        }


# -- process -----------------------------------------------------------------------------------


@dataclass
class ProcessOptions(ExecutorOptions):
    """mixtune process SOURCE... --pipeline P --out DIR."""

    sources: list[str]
    """Raw sources, in any layout `mixtune prepare` reads."""
    out: str
    """Folder of the processed corpus, one folder per domain of jsonl.zst (train/ and validation/
    kept when the input had them); it appears only when complete."""
    pipeline: str = "minimal"
    """A built-in pipeline (minimal, c4, refinedweb, dclm-baseline) or a YAML file of steps."""
    quality_model: str | None = None
    """fastText classifier file for dclm-baseline's quality filter (none: the step is left out)."""
    text_field: str = "text"
    """Dotted path of the text in each record."""
    domain_field: str | None = None
    """Dotted path of the domain in each record, e.g. meta.pile_set_name (none: from folders)."""
    skip_bad_records: bool = False
    """Skip and count malformed records instead of failing on the first one."""
    overwrite: bool = False
    """Redo a complete output."""
    keep_work: bool = False
    """Keep OUT.work/ (intermediate shards, signatures, datatrove logs) after success."""

    def recorded(self, steps: list[dict]) -> dict:
        """What determines the output (a complete output made otherwise is not reused)."""
        return {
            "sources": [str(Path(s).resolve()) for s in self.sources],
            "steps": steps,
            "tasks": self.tasks,
            "text_field": self.text_field,
            "domain_field": self.domain_field,
            "skip_bad_records": self.skip_bad_records,
        }


# -- train -------------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule. A setting left at none takes the value of the scale's
    recipe (`mixtune scales`): DoReMi's for its scales, DCLM's for the dclm-* scales."""

    lr: float | None = setting(None, check=positive)
    """Peak learning rate (none: the scale's recipe; DoReMi 1e-3, DCLM 3e-3 or 2e-3)."""
    schedule: Literal["exponential", "cosine"] | None = None
    """Decay after the warm-up (none: the scale's recipe; DoReMi exponential, DCLM cosine)."""
    final_lr_ratio: float | None = setting(None, check=in_range(0, 1, lo_open=True))
    """The decay ends at lr × this (none: the scale's recipe; DoReMi 0.1, DCLM 3e-5 / lr)."""
    warmup_fraction: float | None = setting(None, check=in_range(0, 1, hi_open=True))
    """Linear warm-up over this fraction of the steps (none: the scale's recipe; DoReMi 6%)."""
    warmup_steps: int | None = setting(None, check=at_least(0))
    """Linear warm-up over this many steps, instead of a fraction (none: the scale's recipe;
    DCLM's GPU scales 2000 or 5000)."""
    weight_decay: float | None = setting(None, check=at_least(0))
    """AdamW weight decay, not applied to norms (none: the scale's recipe; DoReMi 0.01, DCLM 0.033
    or 0.05)."""
    beta1: float = setting(0.9, check=in_range(0, 1, hi_open=True))
    """AdamW β1."""
    beta2: float | None = setting(None, check=in_range(0, 1, hi_open=True))
    """AdamW β2 (none: the scale's recipe; DoReMi 0.99, DCLM 0.95)."""
    grad_clip: float = setting(1.0, check=positive)
    """Clip the global gradient norm to this."""
    z_loss: float | None = setting(None, check=at_least(0))
    """Weight of the z-loss, mean log²Z of the softmax normaliser, added to the training loss
    (none: the scale's recipe; DoReMi 0, DCLM 1e-4 or 5e-6)."""

    def resolve(self, scale: str) -> OptimConfig:
        """Every none filled from `scale`'s recipe. A warm-up given either way replaces the
        recipe's warm-up as a whole."""
        r = get_scale(scale).recipe
        given_warmup = self.warmup_fraction is not None or self.warmup_steps is not None
        pick = lambda mine, recipe: recipe if mine is None else mine  # noqa: E731
        return replace(
            self,
            lr=pick(self.lr, r.lr),
            schedule=pick(self.schedule, r.schedule),
            # DCLM's cool-down is an absolute 3e-5: with the recipe's lr, the recipe's ratio.
            final_lr_ratio=pick(self.final_lr_ratio, r.final_lr_ratio),
            warmup_fraction=self.warmup_fraction if given_warmup else r.warmup_fraction,
            warmup_steps=self.warmup_steps if given_warmup else r.warmup_steps,
            weight_decay=pick(self.weight_decay, r.weight_decay),
            beta2=pick(self.beta2, r.beta2),
            z_loss=pick(self.z_loss, r.z_loss),
        )

    @classmethod
    def for_scale(cls, scale: str = "tiny") -> OptimConfig:
        """The recipe of `scale`, every setting filled (DoReMi's for tiny ... 8B)."""
        return cls().resolve(scale)


def _tasks_problem(spec: str) -> str | None:
    return None if [p for p in spec.split(",") if p.strip()] else "names no task"


@dataclass
class EvalConfig:
    every: int = setting(0, check=at_least(0))
    """Evaluate on the validation split every N steps (0: only at the end)."""
    max_tokens_per_domain: int | None = setting(65536, check=at_least(0))
    """Validation tokens per domain, during and at the end of training (0 or none: all)."""
    batch_size: int = setting(8, check=at_least(1), identity=False)
    """Sequences per evaluation forward pass."""
    tasks: str | None = setting(None, check=_tasks_problem)
    """Downstream tasks scored at every evaluation: dataset (the dataset's generated tasks),
    core, extended, doremi or task names, comma-separated (none: only per-domain log-ppl)."""
    limit: int | None = setting(200, check=at_least(1))
    """Items of each downstream task scored during training (none: all)."""
    shots: int | None = setting(None, check=at_least(0))
    """Few-shot examples per downstream item (none: each task's suite setting)."""


@dataclass
class CheckpointConfig:
    every: int = setting(100, check=at_least(1), identity=False)
    """Steps between checkpoints: a crash costs at most this many."""
    keep: int = setting(2, check=at_least(1), key="keep_checkpoints", identity=False)
    """Checkpoints kept on disk, the newest."""


@dataclass
class LogConfig:
    report_to: Literal["none", "tensorboard", "wandb"] = setting("none", identity=False)
    """Mirror metrics.jsonl to TensorBoard or Weights & Biases (pip install 'mixtune[tensorboard]'
    or 'mixtune[wandb]')."""
    progress_every: float = setting(30.0, check=positive, identity=False)
    """Seconds between progress lines when stderr is not a terminal (a log file, a batch job)."""
    peak_tflops: float | None = setting(None, check=positive, identity=False)
    """Peak TFLOP/s of one device, for MFU (none: a known GPU's bf16 peak, else a matmul measured
    on the device)."""

    def validate(self, label) -> None:
        import importlib.util

        # Checked on every rank before any collective: no rank waits on one that failed.
        if self.report_to != "none" and importlib.util.find_spec(self.report_to) is None:
            raise UserError(
                f"{label('report_to')} {self.report_to}: the package is not installed "
                f"(pip install 'mixtune[{self.report_to}]')."
            )


def device_problem(device: str) -> str | None:
    if device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit()):
        return None
    return "use auto, cpu, cuda or cuda:N"


@dataclass
class TrainConfig:
    data: str
    """Prepared dataset folder (mixtune prepare)."""
    out: str = setting(identity=False)
    """Run folder: config.yaml, metrics.jsonl, checkpoints/step-N/, final/ (rerunning continues it)."""
    steps: int | None = setting(None, check=at_least(1))
    """Optimizer steps (none: the token budget, 20 tokens per parameter × chinchilla_multiplier)."""
    chinchilla_multiplier: float = setting(1.0, check=positive)
    """With steps none: train on this many times the Chinchilla-optimal tokens (DCLM's 1x, 2x)."""
    scale: str = setting("tiny", check=scale_problem)
    """Model scale and its recipe (see mixtune scales)."""
    batch_size: int | None = setting(None, check=at_least(1))
    """Global batch in sequences, whatever the number of processes and micro-batches (none: the
    scale's recipe; 32, DCLM's GPU scales 256 to 2048)."""
    seq_len: int | None = setting(None, check=at_least(1))
    """Tokens per sequence (none: the dataset's)."""
    grad_accum: int = setting(1, check=at_least(1))
    """Micro-batches per optimizer step on each process."""
    seed: int = setting(0, check=at_least(0))
    """Seeds the model's initial weights and the data order."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that supports it, else fp32."""
    device: str = setting("auto", check=device_problem, identity=False)
    """auto, cpu, cuda or cuda:N (under torchrun each process takes cuda:LOCAL_RANK)."""
    parallelism: Literal["auto", "ddp", "fsdp"] = setting("auto", identity=False)
    """How N processes share the model: ddp replicates it; fsdp (FSDP2) shards parameters,
    gradients and AdamW state, with sharded checkpoints. auto: fsdp when the fp32 training state
    (~16 bytes per parameter) would fill over half of a device's memory, else ddp. One process
    always trains the plain model."""
    mixing: Any = section(StaticConfig, variants=MIXERS)
    optim: OptimConfig = section(OptimConfig)
    eval: EvalConfig = section(EvalConfig, prefix="eval")
    checkpoint: CheckpointConfig = section(CheckpointConfig, prefix="checkpoint")
    log: LogConfig = section(LogConfig)

    def resolved(self, vocab_size: int | None = None, seq_len: int | None = None) -> TrainConfig:
        """Every none the scale's recipe decides filled in: the optimizer settings, the batch, and
        with the dataset's vocabulary and sequence length, the steps of the token budget."""
        recipe = get_scale(self.scale).recipe
        batch = self.batch_size or recipe.batch_size
        steps = self.steps
        if steps is None and vocab_size is not None and seq_len is not None:
            steps = steps_for_budget(self.scale, vocab_size, self.chinchilla_multiplier, batch,
                                     self.seq_len or seq_len)
        return replace(self, optim=self.optim.resolve(self.scale), batch_size=batch, steps=steps)

    def identity(self) -> dict:
        """The settings that change what is computed (a run folder refuses others); a value the
        recipe decides counts as that value, given or not."""
        return schema.identity(self.resolved())

    def to_yaml(self) -> str:
        return yaml.safe_dump(schema.to_flat(self), sort_keys=False)


def train_config(**flat) -> TrainConfig:
    """A checked TrainConfig from flat keys, as on the command line: `train_config(data=..., lr=...)`."""
    return schema.parse(TrainConfig, flat, "train settings")


def load_train_config(path: Path) -> TrainConfig:
    """A run folder's config.yaml."""
    flat = load_yaml(path)
    if schema.METHOD not in flat:
        raise UserError(f"{path}: written by an older mixtune (no `{schema.METHOD}` key); delete "
                        f"{Path(path).parent} to train that run again.")
    return schema.parse(TrainConfig, flat, str(path))


@dataclass
class EvalOptions:
    """mixtune eval MODEL."""

    tasks: str | None = None
    """What to score: domains (per-domain validation log-ppl), core, extended, doremi, dataset
    (the dataset's generated tasks), task names or task files, comma-separated (none: domains for a
    run folder; downstream tasks are added to it)."""
    limit: int | None = setting(None, check=at_least(1))
    """Score the first N items of each task (none: all)."""
    shots: int | None = setting(None, check=at_least(0))
    """Few-shot examples per item (none: each task's suite setting)."""
    out: str | None = None
    """JSON file of the results (none: RUN/eval.json for a run folder; else only the table)."""
    harness: Literal["mixtune", "lm-eval"] = "mixtune"
    """Score downstream tasks with mixtune or with lm-evaluation-harness on the same local data
    (pip install 'mixtune[lm-eval]')."""
    data: str | None = None
    """Dataset folder for domains (none: the one the run was trained on)."""
    max_tokens_per_domain: int | None = setting(None, check=at_least(0))
    """Validation tokens per domain (0 or none: all)."""
    batch_size: int = setting(8, check=at_least(1))
    """Sequences per forward pass of the per-domain evaluation."""
    batch_tokens: int = setting(8192, check=at_least(64))
    """Padded context tokens per forward pass of downstream scoring (memory bound)."""
    device: str = setting("auto", check=device_problem)
    """auto, cpu, cuda or cuda:N."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on a GPU that supports it, else fp32."""


# -- run ---------------------------------------------------------------------------------------


@dataclass
class SyntheticDomain:
    name: str
    """File name of the domain: letters, digits, '_', '-', '.'."""
    kind: Literal["noise", "repeat", "markov"]
    """noise (nothing to learn), repeat (a fixed cycle) or markov (a sparse Markov chain)."""
    params: dict[str, int | float] = setting(factory=dict)
    """repeat: period; markov: branching, concentration."""
    seed: int = setting(0, check=at_least(0))
    """Fixes the source's structure (cycle order, transition table)."""


@dataclass
class SyntheticConfig:
    domains: list[SyntheticDomain] | None = None
    """The domains (none: noise, repeat and three Markov chains of graded difficulty)."""
    train_tokens: int | dict[str, int] = 200_000
    """Training tokens per domain: one number, or {domain: tokens}."""
    validation_tokens: int | dict[str, int] = 20_000
    """Validation tokens per domain: one number, or {domain: tokens}."""
    doc_len: int = setting(256, check=at_least(1))
    """Symbols per document (each followed by EOS)."""
    seq_len: int = setting(128, check=at_least(1))
    """Tokens per training sequence."""
    vocab: int = setting(256, check=at_least(1))
    """Symbols per domain."""
    seed: int = setting(0, check=at_least(0))
    """Sampling seed."""
    disjoint: bool = False
    """Give every domain its own symbol ids, as real domains differ in vocabulary."""

    def validate(self, label) -> None:
        from mixtune.data.synthetic import SpecError, check_config

        try:  # the generator's own checks of a description, named here
            check_config(self.specs(), self.train_tokens, self.validation_tokens, self.doc_len, self.vocab)
        except SpecError as e:
            raise UserError(f"{label.section()}: {e}.") from None

    def specs(self):
        from mixtune.data.synthetic import DomainSpec, default_domains

        if self.domains is None:
            return default_domains()
        return [DomainSpec(d.name, d.kind, d.params, d.seed) for d in self.domains]


@dataclass
class DataConfig:
    sources: list[str] | None = None
    """Raw sources for mixtune prepare (folders or files; relative to the config file)."""
    dataset: str | None = None
    """An already prepared dataset folder (relative to the config file)."""
    synthetic: SyntheticConfig | None = None
    """Generated domains with exactly known loss floors."""
    prepare: PrepareOptions = setting(
        factory=lambda: PrepareOptions(sources=[], out="-"),
        owned={
            "sources": "set data.sources",
            "out": "the dataset is written to OUTPUT/data/dataset",
            "overwrite": "redo the data stage with --force data",
        },
        fixed={"sources": [], "out": "-"},
    )
    """Options of mixtune prepare for `sources` (text_field, domain_field, vocab_size, seq_len, ...)."""
    process: ProcessOptions | None = setting(
        None,
        owned={
            "sources": "set data.sources",
            "out": "the corpus is written to OUTPUT/process/corpus",
            "overwrite": "redo the process stage with --force process",
        },
        fixed={"sources": [], "out": "-"},
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
                     if getattr(self.prepare, k) != getattr(PrepareOptions, k)]
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
    scale: str = setting("tiny", check=scale_problem)
    """Model scale (see mixtune scales)."""
    steps: int = setting(200, check=at_least(1))
    """Optimizer steps."""
    batch_size: int = setting(32, check=at_least(1))
    """Global batch in sequences."""
    eval_every: int = setting(0, check=at_least(0))
    """Validation every N steps (0: only at the end)."""


@dataclass
class DownstreamConfig:
    tasks: str | None = setting(None, check=_tasks_problem)
    """Downstream tasks scored at every evaluation of every model, shown in the report: dataset,
    core, extended, doremi or task names (none: per-domain log-ppl only)."""
    limit: int | None = setting(200, check=at_least(1))
    """Items of each task scored (none: all)."""
    shots: int | None = setting(None, check=at_least(0))
    """Few-shot examples per item (none: each task's suite setting)."""


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
    """Mixtures to compare: reference, a mixture method (doremi, ...; its options in the section
    of its name), or any weights spec (natural, uniform, temperature:T, a file)."""
    seeds: list[int] = setting(factory=lambda: [0], check=_seeds_problem)
    """Seeds of the main models (mean ± std over them in the report)."""
    methods: dict[str, Any] = named_sections(METHOD_OPTIONS)
    """Each mixture method's options, in a section under its name (`doremi: {eta: 0.03}`)."""
    eval: DownstreamConfig = setting(factory=DownstreamConfig)
    """Downstream tasks scored while training (tasks, limit, shots)."""
    train: TrainConfig = setting(
        factory=lambda: TrainConfig(data="-", out="-", steps=1),
        owned=PIPELINE_OWNED,
        fixed={"data": "-", "out": "-", "steps": 1},
    )
    """Settings of every training stage (lr, grad_accum, precision, checkpoint_every, seed of the
    reference and proxy, ...)."""
    nproc: int = setting(1, check=at_least(1))
    """Processes per stage; more than 1 relaunches the run under torchrun (one node)."""

    def validate(self, label) -> None:
        methods = METHOD_OPTIONS.names()
        for i, m in enumerate(self.mixtures):
            if m == "reference" or m in methods:
                continue
            problem = spec_problem(m)
            if problem:
                raise UserError(
                    f"{label('mixtures')}[{i}] {m!r}: {problem}, or reference, "
                    f"{', '.join(methods)}"
                    f"{schema.did_you_mean(m, ['reference', *methods, 'natural', 'uniform'])}."
                )
        for m in self.mixtures:  # a method's defaults must do without a section (DoReMi's do)
            if m in methods and m not in self.methods:
                self.methods[m] = schema.parse(METHOD_OPTIONS.get(m), {}, labels=label.nested(m))

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
    cfg = schema.parse(RunConfig, raw, str(path))
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
    p = Path(os.path.expanduser(p))
    return p if p.is_absolute() else base / p


def _weights_path(base: Path, spec: str) -> str:
    return str(_rel(base, spec)) if spec.endswith(".json") else spec


def load_yaml(path: Path) -> dict:
    try:
        obj = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found.") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e}).") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level.")
    return obj
