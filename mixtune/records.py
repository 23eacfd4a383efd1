"""The records mixtune writes and reads back, one typed class per kind, in one place.

    Manifest     DATASET/manifest.json        what a dataset holds (prepare, synthetic)
    TrainRow     RUN/metrics.jsonl            one optimizer step              ("kind": "train")
    EvalRow      RUN/metrics.jsonl            one evaluation during training  ("kind": "eval")
    EvalResult   RUN/eval.json, eval rows     per-domain validation log-ppl, average, worst
    RunSummary   OUTPUT/summary.json          a `mixtune run`: mixtures, methods' records, main runs

`to_json()` gives exactly the documented layout (README, "Formats"); `from_json()` reads it back.
Readers are lenient where the report must describe a partial or crashed run: a missing or
unreadable number becomes None, never an exception, and the report says what is missing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from mixtune.io import read_jsonl

FORMAT_VERSION = 1  # of the dataset folder
SUMMARY_VERSION = 2  # of summary.json: 2 keeps each method's record under its name ("methods")


def finite(value) -> float | None:
    """A finite float, or None (JSON null, NaN from an empty domain, garbage)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(value) -> int | None:
    f = finite(value)
    return int(f) if f is not None else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


# -- dataset -----------------------------------------------------------------------------------


@dataclass
class DomainCounts:
    """One domain in one split of a dataset."""

    documents: int
    tokens: int
    sequences: int
    skipped: dict[str, int] = field(default_factory=dict)
    """Records skipped, by reason."""
    duplicates: int | None = None
    """Documents whose exact text (8-byte BLAKE2b) came earlier in the same split and domain; None:
    not counted (a manifest from before they were, generated data, or a very large corpus)."""
    in_train: int | None = None
    """Validation only: documents whose exact text is also in the domain's training split."""

    def __post_init__(self):
        for name in ("duplicates", "in_train"):  # read from a file: a damaged one says which
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise TypeError(f"{name}: {v!r} is not a count")

    def to_json(self) -> dict:
        out = {
            "documents": self.documents,
            "tokens": self.tokens,
            "sequences": self.sequences,
            "skipped": dict(sorted(self.skipped.items())),
        }
        return out | {k: v for k, v in (("duplicates", self.duplicates),
                                         ("in_train", self.in_train)) if v is not None}


@dataclass
class TokenizerInfo:
    sha256: str
    """Of tokenizer.json: two datasets or models agree on token ids iff it matches."""
    vocab_size: int
    eos_id: int
    source: str


@dataclass
class Manifest:
    """DATASET/manifest.json."""

    domains: list[str]
    """Sorted by name; a domain's index in this list is its id everywhere."""
    seq_len: int
    dtype: str
    """numpy dtype string of the token files ('<u2' or '<u4')."""
    tokenizer: TokenizerInfo
    splits: dict[str, dict[str, DomainCounts]]
    """split -> domain -> counts."""
    sources: list[str]
    format_version: int = FORMAT_VERSION
    skipped_outside_domains: list[dict] | None = None
    """Skipped records with no split or domain entry of their own (prepare)."""
    skipped_total: int | None = None
    options: dict | None = None
    """The prepare options that determine the output (a rerun with others is refused)."""
    synthetic: dict | None = None
    """How generated domains were made: vocab, doc_len, seed, and per domain its loss floor."""

    def to_json(self) -> dict:
        out: dict[str, Any] = {"format_version": self.format_version}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "format_version" or value is None:
                continue
            if f.name == "tokenizer":
                value = dict(vars(value))
            elif f.name == "splits":
                value = {s: {d: c.to_json() for d, c in v.items()} for s, v in value.items()}
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, obj: dict) -> Manifest:
        """Strict: a dataset is machine-written; a damaged manifest raises KeyError/TypeError,
        which `open_dataset` turns into a message naming the file."""
        splits = {
            s: {d: DomainCounts(**c) for d, c in v.items()} for s, v in obj["splits"].items()
        }
        known = {f.name for f in fields(cls)}
        rest = {k: v for k, v in obj.items() if k in known and k not in ("tokenizer", "splits")}
        return cls(tokenizer=TokenizerInfo(**obj["tokenizer"]), splits=splits, **rest)

    def loss_floors(self) -> dict[str, float] | None:
        """Generated data only: the exact irreducible loss of each domain."""
        if self.synthetic is None:
            return None
        return {d: v["loss_floor"] for d, v in self.synthetic["domains"].items()}


# -- evaluation --------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """Per-domain validation log-perplexity and its summary over domains."""

    log_ppl: dict[str, float | None]
    """Nats per token, token-weighted within a domain (None: no validation tokens)."""
    tokens: dict[str, int]
    """Target tokens scored per domain."""
    average: float
    """Uniform average over the domains with a value (DoReMi's headline number)."""
    worst: float
    worst_domain: str | None

    @classmethod
    def from_sums(cls, domains, loss_sums, counts) -> EvalResult:
        log_ppl = {
            d: (s / n if n else None) for d, s, n in zip(domains, loss_sums, counts, strict=True)
        }
        present = {d: v for d, v in log_ppl.items() if v is not None}
        return cls(
            log_ppl=log_ppl,
            tokens={d: int(n) for d, n in zip(domains, counts, strict=True)},
            average=sum(present.values()) / len(present) if present else math.nan,
            worst=max(present.values()) if present else math.nan,
            worst_domain=max(present, key=present.get) if present else None,
        )

    def to_json(self) -> dict:
        return {
            "log_ppl": self.log_ppl,
            "tokens": self.tokens,
            "average": self.average,
            "worst": self.worst,
            "worst_domain": self.worst_domain,
        }

    @classmethod
    def from_json(cls, obj: dict) -> EvalResult:
        return cls(
            log_ppl={d: finite(v) for d, v in _dict(obj.get("log_ppl")).items()},
            tokens={d: _int(v) or 0 for d, v in _dict(obj.get("tokens")).items()},
            average=finite(obj.get("average")),
            worst=finite(obj.get("worst")),
            worst_domain=obj.get("worst_domain") if isinstance(obj.get("worst_domain"), str) else None,
        )


@dataclass
class EvalFile:
    """RUN/eval.json: the final evaluation (`step` when written by training, not by mixtune eval),
    with the downstream results under "downstream" when tasks were scored."""

    result: EvalResult
    split: str = "validation"
    step: int | None = None
    dataset: str | None = None
    max_tokens_per_domain: int | None = None
    downstream: dict | None = None

    def to_json(self) -> dict:
        head: dict[str, Any] = {} if self.step is None else {"step": self.step}
        head["split"] = self.split
        if self.dataset is not None:
            head.update(dataset=self.dataset, max_tokens_per_domain=self.max_tokens_per_domain)
        body = {**head, **self.result.to_json()}
        return body if self.downstream is None else {**body, "downstream": self.downstream}

    @classmethod
    def from_json(cls, obj: dict) -> EvalFile:
        return cls(
            EvalResult.from_json(obj),
            split=obj.get("split", "validation"),
            step=_int(obj.get("step")),
            dataset=obj.get("dataset"),
            max_tokens_per_domain=obj.get("max_tokens_per_domain"),
            downstream=obj.get("downstream") if isinstance(obj.get("downstream"), dict) else None,
        )


# -- metrics.jsonl -----------------------------------------------------------------------------


@dataclass
class TrainRow:
    """One optimizer step of RUN/metrics.jsonl."""

    step: int
    loss: float
    """The objective that was minimised (for a proxy: the α-weighted loss)."""
    mean_loss: float
    """Plain mean token loss of the global batch (comparable across runs)."""
    lr: float
    grad_norm: float
    tokens: int
    """Training tokens seen so far."""
    step_time_s: float
    tokens_per_s: float
    mfu: float | None
    """Model FLOPs utilisation: achieved training FLOP/s over the device's peak."""
    domain_loss: dict[str, float | None]
    domain_sequences: dict[str, int]
    mixer: dict[str, dict[str, float]] = field(default_factory=dict)
    """The mixture method's per-domain numbers (a proxy: domain_excess, domain_weights)."""

    def to_json(self) -> dict:
        out = {"kind": "train"}
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "mixer"})
        return {**out, **self.mixer}


@dataclass
class EvalRow:
    """One evaluation of RUN/metrics.jsonl."""

    step: int
    tokens: int
    """Training tokens seen at this evaluation."""
    result: EvalResult
    downstream: dict | None = None
    """DownstreamResult.to_json() when downstream tasks are scored in training."""

    def to_json(self) -> dict:
        # `tokens` is the training position, as in train rows; the scored tokens are eval_tokens.
        body = self.result.to_json()
        row = {"kind": "eval", "step": self.step, **body, "eval_tokens": body["tokens"],
               "tokens": self.tokens}
        return row if self.downstream is None else {**row, "downstream": self.downstream}


@dataclass
class Metrics:
    """A run's metrics.jsonl, read leniently: step -> value curves the report plots."""

    train_loss: dict[int, float] = field(default_factory=dict)
    """Per step: mean_loss (loss for rows written before mean_loss existed)."""
    eval_average: dict[int, float] = field(default_factory=dict)
    evals: dict[int, EvalResult] = field(default_factory=dict)
    downstream: dict[int, DownstreamResult] = field(default_factory=dict)
    """Step -> downstream results, for runs that scored tasks while training."""
    sequences: dict[int, dict[str, int]] = field(default_factory=dict)
    """Step -> the global batch's sequences per domain (what was trained on, whatever the mixer)."""
    weights: dict[int, dict[str, float]] = field(default_factory=dict)
    """Step -> an online mixer's domain weights (Aioli's held mixture p), where it logs them."""
    heldout_tokens: dict[int, dict[str, float]] = field(default_factory=dict)
    """Step -> held-out tokens scored so far per domain (a mixer's extra forward passes)."""
    last_step: int = 0

    def trained_mixture(self) -> dict[str, float]:
        """The share of each domain in every sequence trained on ({} without train rows)."""
        total: dict[str, float] = {}
        for counts in self.sequences.values():
            for d, n in counts.items():
                total[d] = total.get(d, 0.0) + (finite(n) or 0.0)
        s = sum(total.values())
        return {d: n / s for d, n in total.items()} if s > 0 else {}

    @classmethod
    def read(cls, path: Path) -> Metrics:
        m = cls()
        for row in _jsonl_rows(path):
            step = _int(row.get("step"))
            if step is None:
                continue
            m.last_step = max(m.last_step, step)
            if row.get("kind") == "train":
                loss = finite(row.get("mean_loss", row.get("loss")))
                if loss is not None:
                    m.train_loss[step] = loss
                if isinstance(row.get("domain_sequences"), dict):
                    m.sequences[step] = row["domain_sequences"]
                for key, into in (("domain_weights", m.weights),
                                  ("domain_heldout_tokens", m.heldout_tokens)):
                    if isinstance(row.get(key), dict):
                        into[step] = {d: finite(v) or 0.0 for d, v in row[key].items()}
            elif row.get("kind") == "eval":
                result = EvalResult.from_json(row)
                if result.average is not None:
                    m.eval_average[step] = result.average
                if row.get("log_ppl") is not None:
                    m.evals[step] = result
                if isinstance(row.get("downstream"), dict):
                    m.downstream[step] = DownstreamResult.from_json(row["downstream"])
        return m


def _jsonl_rows(path: Path) -> list[dict]:
    """`read_jsonl`'s rows; a line with bytes that are not UTF-8 is skipped as a torn line is,
    instead of the whole file failing to decode (read_jsonl decodes the file as one text)."""
    try:
        return read_jsonl(path)
    except UnicodeDecodeError:
        rows = []
        for line in Path(path).read_bytes().splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # JSONDecodeError, UnicodeDecodeError
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


# -- summary.json ------------------------------------------------------------------------------


AVERAGE_TARGET = "average"
"""The default target (mixing/target.py): the mean per-domain validation log-ppl."""


@dataclass
class RunSummary:
    """OUTPUT/summary.json: what a `mixtune run` compares. Written before the main runs, so the
    report can describe a partial run."""

    domains: list[str]
    reference_mixture: str
    """Name of the baseline mixture every other one is compared with."""
    mixtures: dict[str, dict[str, float]]
    """name -> {domain: weight}."""
    main_runs: dict[str, dict[str, str]]
    """name -> {"seed-S": run folder relative to the output}."""
    dataset: str
    methods: dict[str, dict] = field(default_factory=dict)
    """Per mixture method of the run, its own record: an offline method's `Proposal.summary`
    (DoReMi: its rounds), {"online": true} for one whose main models trained with its mixer."""
    loss_floor: dict[str, float] | None = None
    max_epochs: float | None = None
    """The repetition cap on the methods' proposals (none: no cap)."""
    capped: dict[str, dict] = field(default_factory=dict)
    """The proposals the cap changed: name -> {"capped": {domain: {epochs_before, epochs_after}},
    "feasible": ...}."""
    epochs: dict[str, dict[str, float]] = field(default_factory=dict)
    """How many times a main run repeats each domain, per fixed mixture."""
    target: str | dict[str, float] = AVERAGE_TARGET
    """What the mixtures are compared on (mixing/target.py), lower is better."""
    verdict: dict | None = None
    """The report's answer (report/verdict.py), added by the report once main runs finished."""
    main_tokens: int | None = None
    """Training tokens of one main run (what a mixture's repetition of a domain is counted in)."""
    origins: dict[str, str] = field(default_factory=dict)
    """Mixture -> the method that proposed it or trained it online (a fixed mixture: absent)."""
    format_version: int = SUMMARY_VERSION

    def to_json(self) -> dict:
        return {
            "format_version": self.format_version,
            "domains": self.domains,
            "reference_mixture": self.reference_mixture,
            "mixtures": self.mixtures,
            "methods": self.methods,
            "main_runs": self.main_runs,
            "loss_floor": self.loss_floor,
            "dataset": self.dataset,
            "max_epochs": self.max_epochs,
            "capped": self.capped,
            "epochs": self.epochs,
            "target": self.target,
            "main_tokens": self.main_tokens,
            "origins": self.origins,
            **({"verdict": self.verdict} if self.verdict is not None else {}),
        }

    @classmethod
    def from_json(cls, obj: dict) -> RunSummary:
        """Raises ValueError for a summary of another format version (a run of an older mixtune)."""
        if obj.get("format_version") != SUMMARY_VERSION:
            raise ValueError(f"format version {obj.get('format_version', 1)}, this mixtune reads "
                             f"{SUMMARY_VERSION}")
        methods = _dict(obj.get("methods"))
        return cls(
            domains=list(obj["domains"]),
            reference_mixture=obj.get("reference_mixture"),
            mixtures=_dict(obj.get("mixtures")),
            main_runs=_dict(obj.get("main_runs")),
            dataset=obj.get("dataset", "?"),
            methods={n: r for n, r in methods.items() if isinstance(r, dict)},
            loss_floor=obj.get("loss_floor") or None,
            max_epochs=finite(obj.get("max_epochs")),
            capped={n: r for n, r in _dict(obj.get("capped")).items() if isinstance(r, dict)},
            epochs={n: r for n, r in _dict(obj.get("epochs")).items() if isinstance(r, dict)},
            target=obj.get("target") if isinstance(obj.get("target"), str | dict) else AVERAGE_TARGET,
            verdict=obj.get("verdict") if isinstance(obj.get("verdict"), dict) else None,
            main_tokens=_int(obj.get("main_tokens")),
            origins={n: m for n, m in _dict(obj.get("origins")).items() if isinstance(m, str)},
        )


# -- downstream tasks --------------------------------------------------------------------------


@dataclass
class TaskResult:
    """One entry of a downstream evaluation (means over its items)."""

    name: str
    """The entry (DCLM's name where it is one of its tasks)."""
    task: str
    format: str
    shots: int
    n: int
    acc: float | None = None
    acc_norm: float | None = None
    acc_per_token: float | None = None
    acc_centered: float | None = None
    """(primary − random baseline) / (1 − random baseline)."""
    primary: str = "acc"
    """Which accuracy is centred (DCLM's choice for the format)."""
    bpb: float | None = None
    gold_prob: float | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_json(cls, obj: dict) -> TaskResult:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in obj.items() if k in known})


@dataclass
class DownstreamResult:
    """Every entry's metrics and the suite scores (`aggregates`: name -> Aggregate.to_json())."""

    tasks: dict[str, TaskResult]
    aggregates: dict[str, dict]
    limit: int | None = None

    @property
    def mean_bpb(self) -> float | None:
        values = [t.bpb for t in self.tasks.values() if t.bpb is not None]
        return sum(values) / len(values) if values else None

    def to_json(self) -> dict:
        return {
            "tasks": {n: t.to_json() for n, t in self.tasks.items()},
            "aggregates": self.aggregates,
            "mean_bpb": self.mean_bpb,
            "limit": self.limit,
        }

    @classmethod
    def from_json(cls, obj: dict) -> DownstreamResult:
        tasks = {n: TaskResult.from_json(t) for n, t in _dict(obj.get("tasks")).items()
                 if isinstance(t, dict)}
        return cls(tasks, _dict(obj.get("aggregates")), obj.get("limit"))
