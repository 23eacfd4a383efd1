"""The plan of `mixtune run`: a run config turned into stages, in order.

    data                       prepare (or generate) the dataset        (unless data.dataset is given)
    <offline methods>          e.g. iterated DoReMi: round-N/reference, round-N/proxy; RegMix:
                               regmix/proxy-NNN, a swarm run as tasks at once
    summary.json               the mixtures to compare (written before the main runs); each
                               method's proposal capped at max_epochs repetitions of any domain
    main/<mixture>/seed-S      a model per mixture and seed: fixed weights, or an online
                               method's mixer choosing them as the model trains
    report/                    always rewritten: it shows the runs as they are

The plan is a generator (see runner.py): a method's stages are planned from the results of the
ones before. A new kind of stage (evaluation, processing) or a new offline method is a new `yield`
here or a new registered method, never a change to the runner.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Generator
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np

from mixtune import distributed, schema
from mixtune.data.config import PrepareOptions
from mixtune.data.store import Dataset, open_dataset
from mixtune.data.weights import (
    as_dict,
    mixture_name,
    resolve_weights,
    spec_problem,
    write_weights,
)
from mixtune.errors import UserError
from mixtune.executors import EXECUTOR_SETTINGS
from mixtune.io import write_json_atomic
from mixtune.mixing import METHOD_OPTIONS, METHODS
from mixtune.mixing.repetition import cap_repetition
from mixtune.mixing.static import StaticConfig
from mixtune.mixing.target import check_target
from mixtune.pipeline.config import DataConfig, RunConfig, StageSpec
from mixtune.pipeline.names import baseline_name
from mixtune.pipeline.stage import Stage, StageGroup
from mixtune.process.config import ProcessOptions
from mixtune.records import RunSummary
from mixtune.train.config import TrainConfig

log = logging.getLogger(__name__)

Plan = Generator[Stage | StageGroup, Path | list[Path], Path]


@dataclass
class PlanContext:
    """What an offline method plans with: the run config, the dataset, and stage factories."""

    cfg: RunConfig
    out: Path
    dataset: Dataset
    data_path: Path
    data_deps: tuple[str, ...]
    dist: distributed.Dist
    source: str = ""
    """The run YAML, named in the errors its values cause against the dataset ("" from Python)."""
    planned: dict[str, Stage] = field(default_factory=dict)
    """Train stages planned so far, by name (a main run identical to one of them reuses it)."""

    @property
    def domains(self) -> list[str]:
        return self.dataset.domains

    @property
    def tokens(self) -> np.ndarray:
        """Training tokens per domain."""
        counts = self.dataset.counts("train")
        return np.array([float(counts[d]) for d in self.domains])

    @property
    def main_tokens(self) -> int:
        """Tokens one main run trains on: what a mixture's repetition of a domain is counted in."""
        main = self.cfg.main
        return main.steps * main.global_batch * (self.cfg.train.seq_len or self.dataset.seq_len)

    def train_flops(self, spec: StageSpec) -> float:
        """Training FLOPs of one run of `spec` (6·N per token plus attention, as MFU counts them):
        what a method's compute is compared with one main run's in."""
        from mixtune.model.flops import flops_per_token

        seq_len = self.cfg.train.seq_len or self.dataset.seq_len
        tokens = spec.steps * spec.global_batch * seq_len
        return tokens * flops_per_token(spec.scale, self.dataset.vocab_size, seq_len)

    def weights(self, spec: str, key: str = "reference_weights") -> np.ndarray:
        """The weights of `spec`, the YAML's `key`; a spec the dataset refuses (a file naming a
        domain it lacks) is an error naming the YAML and the key."""
        try:
            return resolve_weights(spec, self.domains, self.dataset.counts("train"),
                                   budget_tokens=self.main_tokens)
        except UserError as e:
            raise UserError(f"{self.label(key)}: {e}") from None

    def label(self, key: str) -> str:
        """`key` of the run YAML as an error names it: `run.yaml: key`."""
        return f"{self.source}: {key}" if self.source else key

    def on_main(self, write) -> None:
        """Call `write()` on rank 0 alone (a file every rank then reads), then wait for it."""
        if self.dist.is_main:
            write()
        distributed.barrier()

    def write_weights(self, rel: str, weights: np.ndarray) -> Path:
        path = self.out / rel
        if self.dist.is_main:
            write_weights(path, weights, self.domains, layout="flat")
        distributed.barrier()
        return path

    def train_config(self, name: str, mixing, spec: StageSpec, seed: int | None = None) -> TrainConfig:
        """The `train:` settings, with this stage's dataset, folder, model size and mixture."""
        t, downstream = self.cfg.train, self.cfg.eval
        # The eval: section applies to every model: the reference stays identical to the main run
        # on its mixture (and is reused for it).
        evaluation = replace(t.eval, every=spec.eval_every, tasks=downstream.joined(),
                             limit=downstream.limit, shots=downstream.shots)
        return schema.extend(
            TrainConfig, t, data=str(self.data_path), out=str(self.out / name), scale=spec.scale,
            steps=spec.steps, batch_size=spec.batch_size, seed=t.seed if seed is None else seed,
            mixing=mixing, eval=evaluation,
        )

    def train_stage(self, name: str, mixing, spec: StageSpec, *, seed: int | None = None,
                    deps: tuple[str, ...] = (), brief: bool = False) -> Stage:
        """A stage training one model; its identity holds a weights file's numbers, not its path.
        `brief`: one line when it ends, not the evaluation table (a swarm's many runs)."""
        tc = self.train_config(name, mixing, spec, seed)
        identity = tc.identity()
        if isinstance(mixing, StaticConfig) and mixing.weights.endswith(".json"):
            identity["weights"] = json.loads(Path(mixing.weights).read_text())
        elif not isinstance(mixing, StaticConfig):  # e.g. Aioli's init: another mixture's file
            for key, value in schema.to_flat(mixing).items():
                if isinstance(value, str) and value.endswith(".json") and Path(value).is_file():
                    identity[f"{key}_weights"] = json.loads(Path(value).read_text())
        # A partial of a module function, not a closure: a swarm's stages run in other processes.
        stage = Stage(name, identity, partial(_train, tc, name if brief else None), deps=self.data_deps + deps)
        self.planned[name] = stage
        return stage

    def train_group(self, stages: list[Stage], executor=None, logs: str = "tasks") -> StageGroup:
        """Independent train stages the runner may run at once as tasks on `executor`."""
        return StageGroup(stages, executor, logs)


def _train(tc: TrainConfig, brief: str | None, _folder: Path) -> None:
    """Train; `brief`: the stage's name, to say in one line how it ended instead of a table."""
    from mixtune.train.loop import run

    folder = run(tc, table=brief is None)
    if brief is not None and (folder / "eval.json").is_file():  # (ranks other than 0: none)
        result = json.loads((folder / "eval.json").read_text())
        log.info("stage %s: done, average log-ppl %.4f, worst %.4f (%s)", brief,
                 result["average"], result["worst"], result["worst_domain"])


def plan(cfg: RunConfig, dist: distributed.Dist, source: str = "") -> Plan:
    """Every stage of the run, in order; returns the output folder. `source`: the run YAML."""
    out = Path(cfg.output)
    if cfg.data.dataset is not None:
        data, data_deps = Path(cfg.data.dataset), ()
    elif cfg.data.process is not None:
        corpus = yield process_stage(cfg)
        data, data_deps = (yield data_stage(cfg, corpus, ("process",))), ("process", "data")
    else:
        data, data_deps = (yield data_stage(cfg)), ("data",)
    ds = open_dataset(data)
    if len(ds.domains) == 1:
        log.warning("the dataset has one domain (%s): every mixture is the same.", ds.domains[0])
    ctx = PlanContext(cfg, out, ds, data, data_deps, dist, source)
    check_target(cfg.target, ds.domains, ctx.label("target"))  # before anything trains for it
    mixtures: dict[str, tuple[np.ndarray | None, tuple[str, ...]]] = {}
    methods: dict[str, dict] = {}  # each method's record, under its name in summary.json
    capped: dict[str, dict] = {}  # the proposals the repetition cap changed
    origins: dict[str, str] = {}  # mixture -> the method behind it
    offline = {}
    for i, m in enumerate(cfg.mixtures):
        if m == "reference":
            _add(mixtures, baseline_name(cfg), ctx.weights(cfg.reference_weights), ())
        elif METHOD_OPTIONS.is_offline(m):
            offline[m] = METHODS.get(m)(cfg.options(m))
            proposal = yield from offline[m].propose(ctx)
            for name, w in {m: proposal.weights, **proposal.extra}.items():
                _add(mixtures, name, _capped(ctx, name, w, capped), tuple(proposal.sources))
                origins[name] = m
            methods[m] = proposal.summary
        elif METHOD_OPTIONS.get(m) is not None:  # online: its mixer trains the main models
            mixtures[m], methods[m] = (None, ()), _online_record(ctx)
            origins[m] = m
        else:
            _add(mixtures, mixture_name(m), ctx.weights(m, f"mixtures[{i}]"), ())
    fixed = {n: w for n, (w, _) in mixtures.items() if w is not None}
    for m, method in offline.items():  # e.g. RegMix's predicted target of every mixture
        methods[m].update(method.annotate(fixed))

    main, runs = _main_stages(ctx, mixtures)
    distributed.barrier()
    summary = RunSummary(
        domains=ds.domains, reference_mixture=baseline_name(cfg),
        mixtures={n: as_dict(w, ds.domains) if w is not None else {} for n, (w, _) in mixtures.items()},
        main_runs=runs, dataset=str(data), methods=methods, loss_floor=ds.manifest.loss_floors(),
        max_epochs=cfg.max_epochs, capped=capped, target=cfg.target, main_tokens=ctx.main_tokens,
        origins=origins,
        epochs={n: as_dict(w * ctx.main_tokens / np.maximum(ctx.tokens, 1), ds.domains)
                for n, w in fixed.items()},
    )
    if dist.is_main:  # before the main runs, so that `mixtune report` works on a partial run
        write_json_atomic(out / "summary.json", summary.to_json())
    for stage in main:  # noqa: UP028 (the runner sends each folder back; a list cannot take it)
        yield stage
    if dist.is_main:
        from mixtune.report import write_report

        log.info("report: %s", write_report(out))
    distributed.barrier()
    return out


def _main_stages(ctx: PlanContext, mixtures: dict) -> tuple[list[Stage], dict]:
    """The main runs to train, and {mixture: {"seed-S": stage name}}. Every main model has the
    same scale, steps, batch and seeds: a fixed mixture, or an online method choosing its mixture
    as it trains. One identical to a stage planned before is a link to it, not a second run."""
    cfg, out, dist = ctx.cfg, ctx.out, ctx.dist
    main, runs = [], {}
    files = {name: ctx.write_weights(f"mixtures/{name}.json", w)
             for name, (w, _) in mixtures.items() if w is not None}
    for name, (w, sources) in mixtures.items():
        if w is None:
            mixing, sources = _online_options(cfg, name, files, mixtures)
        else:
            mixing = StaticConfig(weights=str(files[name]))
        for seed in cfg.seeds:
            stage = ctx.train_stage(f"main/{name}/seed-{seed}", mixing, cfg.main, seed=seed,
                                    deps=sources)
            runs.setdefault(name, {})[f"seed-{seed}"] = stage.name
            same = _same_run(stage, ctx.planned)
            if same is not None and not _real_folder(out / stage.name):
                del ctx.planned[stage.name]  # a link to the identical run: every path still works
                if dist.is_main:
                    _link(out / stage.name, out / same)
            else:
                if dist.is_main and (out / stage.name).is_symlink():
                    (out / stage.name).unlink()  # no longer identical: it trains on its own
                main.append(stage)
    return main, runs


def _online_record(ctx: PlanContext) -> dict:
    """An online method's entry in summary.json: its compute is known only once its main runs
    trained (the held-out tokens they scored), so the FLOPs to count it in are kept here."""
    from mixtune.model.flops import flops_per_token

    seq_len = ctx.cfg.train.seq_len or ctx.dataset.seq_len
    per_token = flops_per_token(ctx.cfg.main.scale, ctx.dataset.vocab_size, seq_len)
    # A forward pass is a third of a training step's 6·N (plus attention) per token.
    return {"online": True, "flops": {"main_run": ctx.train_flops(ctx.cfg.main),
                                      "forward_per_token": per_token / 3}}


def _online_options(cfg: RunConfig, name: str, files: dict[str, Path], mixtures: dict):
    """(options, deps) of an online method's main runs. An `init` naming another mixture of the
    run (Aioli correcting RegMix's proposal) becomes that mixture's weights file, and its main
    runs then depend on the stages that proposed it."""
    opts = cfg.options(name)
    init = getattr(opts, "init", None)
    if not isinstance(init, str) or spec_problem(init) is None:
        return opts, ()  # a weights spec of its own (natural, uniform, a file)
    prior = baseline_name(cfg) if init == "reference" else init
    return replace(opts, init=str(files[prior])), mixtures[prior][1]


def _capped(ctx: PlanContext, name: str, w: np.ndarray, capped: dict) -> np.ndarray:
    """A method's proposal with no domain repeated more than max_epochs times in a main run
    (small proxies never see repetition, so nothing else stops them asking for it)."""
    if ctx.cfg.max_epochs is None:
        return w
    cap = cap_repetition(w, ctx.tokens, ctx.main_tokens, ctx.cfg.max_epochs)
    if cap.capped.any() or not cap.feasible:
        capped[name] = cap.summary(ctx.domains)
        log.warning("%s: capped at %g epochs of %s in a main run of %d tokens", name,
                    ctx.cfg.max_epochs, ", ".join(np.asarray(ctx.domains)[cap.capped]),
                    ctx.main_tokens)
    return cap.weights


def _add(mixtures: dict, name: str, w: np.ndarray, sources: tuple[str, ...]) -> None:
    if name in mixtures:
        if np.allclose(mixtures[name][0], w, rtol=0, atol=1e-12):
            return  # the same mixture listed twice (e.g. reference_weights: uniform and uniform)
        raise UserError(
            f"mixtures: two different mixtures are named {name!r}; rename one of the weights files."
        )
    mixtures[name] = (w, sources)


def _real_folder(path: Path) -> bool:
    """A run folder of its own (from before it was identical to another run): kept, and left to
    the runner, which skips it or refuses it as changed."""
    return path.exists() and not path.is_symlink()


def _link(path: Path, target: Path) -> None:
    rel = os.path.relpath(target, path.parent)
    if path.is_symlink() and os.readlink(path) != rel:
        path.unlink()  # a link to another run, from an earlier configuration
    if not path.is_symlink():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(rel, target_is_directory=True)


def _same_run(stage: Stage, planned: dict[str, Stage]) -> str | None:
    """An earlier planned stage that trains exactly this model with these evaluations (then its
    run is the main run too); a notice when only the evaluation cadence differs."""
    def without_eval(identity: dict) -> dict:
        return {k: v for k, v in identity.items() if k != "eval_every"}

    for name, other in planned.items():
        if name == stage.name:
            continue
        if other.identity == stage.identity:
            log.info("%s: the same model as %s (same settings and mixture); reusing it.",
                     stage.name, name)
            return name
        if without_eval(other.identity) == without_eval(stage.identity):
            log.info("%s trains the same model as %s but evaluates every %s steps; give proxy: the "
                     "same eval_every to reuse %s instead of training it again.", stage.name, name,
                     stage.identity.get("eval_every"), name)
    return None


def process_stage(cfg: RunConfig) -> Stage:
    """Filter and deduplicate the sources (mixtune process) into OUTPUT/process/corpus."""
    opts = cfg.data.process
    identity = {k: v for k, v in schema.to_flat(opts).items()
                if k not in EXECUTOR_SETTINGS or k == "tasks"}  # BFF dedups per task
    identity["sources"] = list(cfg.data.sources)
    if Path(opts.pipeline).is_file():  # the steps, not the file's name
        identity["pipeline"] = Path(opts.pipeline).read_text(encoding="utf-8")

    def run(folder: Path) -> None:
        from mixtune.process.run import process

        process(schema.extend(ProcessOptions, opts, sources=cfg.data.sources,
                              out=str(folder / "corpus")))

    return Stage("process", identity, run, output="corpus", all_ranks=False)


def data_stage(cfg: RunConfig, corpus: Path | None = None, deps: tuple[str, ...] = ()) -> Stage:
    """Prepare the sources (or the processed corpus) into OUTPUT/data/dataset."""
    d = cfg.data
    sources = [str(corpus)] if corpus is not None else d.sources

    def run(folder: Path) -> None:
        target = folder / "dataset"
        if d.synthetic is not None:
            from mixtune.synthetic import write_dataset

            s = d.synthetic
            write_dataset(target, domains=s.specs(), train_tokens=s.train_tokens,
                          validation_tokens=s.validation_tokens, doc_len=s.doc_len,
                          seq_len=s.seq_len, vocab=s.vocab, seed=s.seed, disjoint=s.disjoint)
        else:
            from mixtune.data.prepare import prepare

            prepare(schema.extend(PrepareOptions, d.prepare, sources=sources, out=str(target)))

    return Stage("data", _data_identity(d), run, deps=deps, output="dataset", all_ranks=False)


def _data_identity(d: DataConfig) -> dict:
    """What the data stage computes: where prepare's tasks run does not change the dataset."""
    identity = schema.to_flat(d)
    identity["prepare"] = {k: v for k, v in identity["prepare"].items()
                           if k not in EXECUTOR_SETTINGS}
    return identity
