"""Collect eval records under folders, join them to their models and datasets, rank them.

Every row is one model identity: dataset, mixture (its name and weights, not the path of the file
they were read from), scale, tokens and recipe, all but the seed. Seeds of the same identity are
one row with mean ± std. A model's newest evaluation counts. Links to run folders are followed: a
`mixtune run` links a main run identical to its DoReMi reference to that run (there, the main run's
own folder names its mixture).
The caller chooses the measure that ranks (`rank_by`): CORE (higher is better), mean downstream
bits per byte or average validation log-ppl (lower is better), the others breaking ties in that
order; a row without the measure ranks after those with it. `auto` ranks by CORE only where it
stands out of noise above chance, as it does not at laptop scale (`ranking`).
Proxies (DoReMi's, RegMix's swarm) are trained to pick a mixture, not chosen by anyone: they are
left out unless asked for. Beside a main run of a `mixtune run` that ran RegMix stands what
RegMix predicted for its mixture, so the fit's ranking can be checked against the measured one.
Every record is checked as it is read (provenance.FIELDS): a damaged one (not JSON, a field missing
or of the wrong type) is left out with a note naming its file and field; the rest still ranks.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mixtune.errors import UserError
from mixtune.mixing.swarm import MIXTURES_DIR
from mixtune.provenance import (
    DATASET_KINDS,
    DATASET_RECORD,
    EVALS_DIR,
    MODEL_RECORD,
    RecordError,
    read_record,
)
from mixtune.records import AVERAGE_TARGET, Metrics
from mixtune.tables import NONE, csv_cell, fmt_ms, md_table, md_text, mean_curve, mean_std

MEASURES = [  # key, label, better
    ("core", "CORE", "higher"),
    ("extended", "EXTENDED", "higher"),
    ("mean_bpb", "mean BPB", "lower"),
    ("avg_log_ppl", "avg log-ppl", "lower"),
    ("worst_log_ppl", "worst log-ppl", "lower"),
]
RANK_BY = ("core", "mean_bpb", "avg_log_ppl")
"""The measures a board may rank by, in the order they break ties."""
RANK_CHOICES = ("auto", *RANK_BY)
BETTER = {key: better for key, _, better in MEASURES}
LABELS = {key: label for key, label, _ in MEASURES}
PIPELINE_DATASET = ("data", "dataset")
"""Where `mixtune run` prepares its dataset, under its output folder: OUTPUT/data/dataset."""
SWARM_MIXTURES = Path(MIXTURES_DIR).parts
"""Where RegMix's swarm writes its proxies' mixture specs, under a run's output folder: a static
run whose spec lies there is a swarm proxy."""
MAIN_RUNS, SUMMARY = "main", "summary.json"
"""A `mixtune run` keeps its main runs at OUTPUT/main/<mixture>/seed-S, its summary beside them."""
PREDICTED = "RegMix predicted ({})"


def _stat(values: list[float | None]) -> dict | None:
    """Mean, sample std (0 for one value) and count of the numbers present; None without any."""
    mean, std = mean_std(values)
    if mean is None:
        return None
    return {"mean": mean, "std": std or 0.0, "n": sum(v is not None for v in values)}


@dataclass(frozen=True)
class Prediction:
    """RegMix's predicted target for a run's mixture, and the summary.json that says so (one
    prediction per run of the pipeline, however many seeds of it the row holds)."""

    source: str
    target: str
    value: float


@dataclass
class Entry:
    """One model, its newest evaluation and its dataset."""

    model: dict
    evaluation: dict
    dataset: dict | None
    run: Path
    prediction: Prediction | None = None
    also: tuple[str, ...] = ()
    """The other mixtures of its `mixtune run` that are this very model (see Records.also)."""

    def measures(self) -> dict[str, float | None]:
        e, m = self.evaluation, self.evaluation.get("eval_metrics") or {}
        return {"core": e.get("Core"), "extended": e.get("Extended"), "mean_bpb": m.get("mean_bpb"),
                "avg_log_ppl": m.get("average_log_ppl"), "worst_log_ppl": m.get("worst_log_ppl")}

    @property
    def mixture(self) -> str:
        """The mixture's name: for a main run of a `mixtune run`, the name the run gave it (its
        folder, OUTPUT/main/<mixture>/seed-S), also where the run is reused from an earlier stage
        whose record names another file (a DoReMi reference of an older mixtune, trained on
        `reference_weights.json`); else the model record's. Mixtures of the run that are the same
        model are named together: "uniform = unimax"."""
        if is_main_run(self.run) and (Path(self.run).parent.parent.parent / SUMMARY).is_file():
            return " = ".join([Path(self.run).parent.name, *self.also])
        return self.model["mixture"]["name"]

    def identity(self) -> str:
        h = {k: v for k, v in self.model["hyperparameters"].items() if k != "seed"}
        mixture = self.model["mixture"]
        if self.model.get("method") == "static" and isinstance(h.get("mixing"), dict):
            # The weights, not the file they were read from: a main run reused from a DoReMi
            # reference read the same numbers from round-1/, the other seeds from mixtures/.
            h["mixing"] = {k: v for k, v in h["mixing"].items() if k != "weights"}
            weights = mixture.get("weights") or {}
            h["weights"] = {d: round(w, 12) if isinstance(w, float) else w for d, w in weights.items()}
        return json.dumps([self.model.get("dataset_uuid") or self.model.get("dataset_path"),
                           self.mixture, h], sort_keys=True, default=str)


@dataclass
class Row:
    entries: list[Entry] = field(default_factory=list)

    @property
    def first(self) -> Entry:
        return self.entries[0]

    def stat(self, key: str) -> dict | None:
        return _stat([e.measures()[key] for e in self.entries])

    def rank_key(self, by: str = RANK_BY[0]) -> tuple:
        """Best first by the measure `by`, ties broken by the other measures (RANK_BY's order);
        a row without a measure after those with it."""
        key = []
        for name in (by, *(m for m in RANK_BY if m != by)):
            s = self.stat(name)
            key += [s is None, 0.0 if s is None else (-s["mean"] if BETTER[name] == "higher" else s["mean"])]
        return tuple(key)

    def predicted(self, target: str) -> dict | None:
        """RegMix's prediction for `target`, once per summary that made one (not once per seed,
        which would show a spread of 0 that no measurement had)."""
        found = {p.source: p.value for e in self.entries
                 if (p := e.prediction) is not None and p.target == target}
        return _stat(list(found.values()))


@dataclass(frozen=True)
class Ranking:
    """The measure a board ranks by, and why where `auto` passed CORE over."""

    key: str
    note: str | None = None

    @property
    def label(self) -> str:
        return LABELS[self.key]

    def sentence(self) -> str:
        """What the board says of its order: 'Ranked by mean BPB (lower is better).' and the note."""
        text = f"Ranked by {self.label} ({BETTER[self.key]} is better)."
        return f"{text} {self.note}" if self.note else text


def ranking(rows: list[Row], rank_by: str = "auto") -> Ranking:
    """The measure that ranks `rows`: the one asked for, or with `auto` CORE where the best row's
    stands out of noise above chance (CORE is centred: 0 is chance; mean − std > 0 over two seeds
    or more, never with one), else mean downstream BPB where a row has it, else average log-ppl."""
    _check_rank_by(rank_by)
    if rank_by != "auto":
        present = [k for k in (rank_by, *RANK_BY) if any(r.stat(k) for r in rows)]
        if not present or present[0] == rank_by:
            return Ranking(rank_by)
        return Ranking(present[0], f"No model here has {LABELS[rank_by]}, so the board ranks on "
                                   f"{LABELS[present[0]]}.")
    cores = [s for r in rows if (s := r.stat("core")) is not None]
    best = max(cores, key=lambda s: s["mean"], default=None)
    if best is not None and best["n"] >= 2 and best["mean"] - best["std"] > 0:
        return Ranking("core")
    key = "mean_bpb" if any(r.stat("mean_bpb") for r in rows) else "avg_log_ppl"
    if best is None:
        return Ranking(key)
    if best["n"] >= 2:
        why = f"CORE is within noise of chance at this scale (0 is chance; best row {_fmt(best)})"
    else:
        why = (f"CORE cannot be told from noise with one seed per row (0 is chance; best row "
               f"{_fmt(best)}), and at this scale it is within noise of chance")
    return Ranking(key, f"{why}, so the board ranks on {_MEANING[key]}; --rank-by core ranks on "
                        "CORE anyway.")


def _check_rank_by(rank_by: str) -> None:
    if rank_by not in RANK_CHOICES:
        raise UserError(f"rank_by {rank_by!r}: one of {', '.join(RANK_CHOICES)}.")


_MEANING = {"mean_bpb": "mean bits per byte", "avg_log_ppl": "average validation log-ppl"}


def rank(rows: list[Row], rank_by: str = "auto") -> list[Row]:
    """`rows`, best first by `ranking(rows, rank_by)`."""
    by = ranking(rows, rank_by).key
    return sorted(rows, key=lambda r: r.rank_key(by))


def collect(paths: list[Path], proxies: bool = False,
            rank_by: str = "auto") -> tuple[list[Row], list[str]]:
    """The rows of every model under `paths`, ranked by `rank_by` (one of RANK_CHOICES; see
    `ranking`), and notes on what could not be joined or was skipped as damaged."""
    _check_rank_by(rank_by)  # before reading every record
    found = Records()
    for root in map(Path, paths):
        if not root.exists():
            raise UserError(f"{root}: no such folder; give folders holding runs or datasets.")
        found.gather(root)
    rows: dict[str, Row] = {}
    summaries: dict[Path, dict] = {}
    for model_uuid, e in found.newest_evals().items():
        model = found.models[model_uuid]
        if (is_proxy(model) or found.only_a_reference(model_uuid)) and not proxies:
            continue
        ds = found.datasets.get(model.get("dataset_uuid")) or found.dataset_at(model)
        if ds is None:
            found.notes.append(f"model {model['name']} ({model_uuid}): dataset "
                               f"{model.get('dataset_uuid') or model.get('dataset_path')} has no "
                               "record here")
        run = found.runs[model_uuid]
        entry = Entry(model, e, ds, run, regmix_prediction(run, summaries), found.also(model_uuid))
        rows.setdefault(entry.identity(), Row()).entries.append(entry)
    for row in rows.values():
        row.entries.sort(key=lambda en: en.model["hyperparameters"]["seed"])
    return rank(list(rows.values()), rank_by), found.notes


BOARD_MODEL = {"mixture": "mapping", "dataset_name": "text", "hyperparameters.scale": "text",
               "hyperparameters.tokens": "int", "hyperparameters.seed": "int"}
"""What a row needs of a model record beyond what every model record has (provenance.FIELDS)."""


class Records:
    """The records under some folders, each checked as it is read: a damaged one is skipped with
    a note naming its file and field, never the end of the whole board."""

    def __init__(self):
        self.models: dict[str, dict] = {}
        self.runs: dict[str, Path] = {}
        """Each model's folder, one place where it was found twice (see _place)."""
        self.places: dict[str, set[Path]] = {}
        """Every folder each model was found at."""
        self.datasets: dict[str, dict] = {}
        self.evals: list[tuple[Path, dict]] = []
        self.notes: list[str] = []
        self.damaged_runs: set[Path] = set()
        """Run folders whose model record was skipped: their evaluations need no note of their own."""

    def read(self, path: Path, kind, require: dict[str, str] | None = None) -> dict | None:
        try:
            return read_record(path, kind, require)
        except RecordError as e:
            note = f"skipped {e.path}: {e.problem}"
            if note not in self.notes:
                self.notes.append(note)
            return None

    def gather(self, root: Path) -> None:
        folders = list(_folders(root))
        for path in (f / DATASET_RECORD for f in folders):
            if path.exists() and (rec := self.read(path, DATASET_KINDS)) is not None:
                self.datasets[rec["uuid"]] = rec
        for path in (f / MODEL_RECORD for f in folders):
            if not path.exists():
                continue
            if (rec := self.read(path, "model", BOARD_MODEL)) is None:
                self.damaged_runs.add(path.parent)
                continue
            self.places.setdefault(rec["uuid"], set()).add(path.parent)
            if rec["uuid"] not in self.runs or _place(path.parent) > _place(self.runs[rec["uuid"]]):
                self.models[rec["uuid"]] = rec
                self.runs[rec["uuid"]] = path.parent
        seen = {e["uuid"] for _, e in self.evals}
        for path in (p for f in folders if f.name == EVALS_DIR for p in sorted(f.glob("*.json"))):
            if (rec := self.read(path, "eval")) is not None and rec["uuid"] not in seen:
                seen.add(rec["uuid"])
                self.evals.append((path, rec))

    def also(self, uuid: str) -> tuple[str, ...]:
        """The other mixtures of the same `mixtune run` whose main runs are this model: a run links
        main/unimax/seed-0 to ../uniform/seed-0 where UniMax's weights are uniform's, and the
        board then says so ("uniform = unimax") instead of losing a mixture the verdict names."""
        run = Path(self.runs[uuid]).absolute()
        if not is_main_run(run):
            return ()
        output = run.parent.parent.parent
        names = {p.parent.name for p in map(Path.absolute, self.places[uuid])
                 if is_main_run(p) and p.parent.parent.parent == output}
        return tuple(sorted(names - {run.parent.name}))

    def only_a_reference(self, uuid: str) -> bool:
        """Whether a model is a DoReMi round's reference (found at OUTPUT/round-N/reference) and
        no main run of its `mixtune run` as well: a main run identical to the reference is that
        run, linked, and stays on the board; a reference of its own (other steps) is a method's
        run, like a proxy. (By where the run is, not where its weights file is: a user's own run
        on a round's weights is no reference.)"""
        places = [Path(p).absolute() for p in self.places[uuid]]
        in_round = any(p.name == "reference" and re.fullmatch(r"round-\d+", p.parent.name)
                       for p in places)
        return in_round and not any(is_main_run(p) for p in places)

    def newest_evals(self) -> dict[str, dict]:
        """Each model's newest evaluation, by its model's uuid."""
        newest: dict[str, dict] = {}
        for path, e in self.evals:
            model = e["model_uuid"]
            if model not in self.models:
                if path.parent.parent not in self.damaged_runs:
                    self.notes.append(f"evaluation {e['uuid']}: its model {model} is not under the "
                                      "given folders (a run trained again since, or not collected)")
                continue
            if model not in newest or e["creation_date"] > newest[model]["creation_date"]:
                newest[model] = e
        return newest

    def dataset_at(self, model: dict) -> dict | None:
        """The dataset record where the model says its dataset is, if it is the same dataset."""
        path = Path(model.get("dataset_path") or "") / DATASET_RECORD
        if not model.get("dataset_uuid") or not path.is_file():
            return None
        rec = self.read(path, DATASET_KINDS)
        return rec if rec is not None and rec["uuid"] == model["dataset_uuid"] else None


def _folders(root: Path):
    """`root` and every folder below it, in name order, through links to folders too (a
    `mixtune run` links main/natural/seed-0 to round-1/reference where they are one model), but
    never round a circle of links."""
    stack = [(Path(root), frozenset())]
    while stack:
        folder, above = stack.pop()
        real = os.path.realpath(folder)
        if real in above:
            continue
        yield folder
        try:
            children = sorted(p for p in folder.iterdir() if p.is_dir())
        except OSError:  # unreadable, or gone meanwhile: nothing below it to rank
            continue
        stack += [(child, above | {real}) for child in reversed(children)]


def _place(run: Path) -> tuple[bool, bool]:
    """Which folder a run found twice (through a link) is listed at, the greater first: a main run
    (its folder names its mixture, and finds RegMix's prediction), then the folder itself rather
    than a link to it (main/uniform/seed-0 -> main/natural/seed-0 where the two mixtures are one)."""
    return is_main_run(run), os.path.realpath(run) == os.path.abspath(run)


def is_main_run(run: Path) -> bool:
    """Whether `run` is where a `mixtune run` keeps a main run: OUTPUT/main/<mixture>/seed-S."""
    run = Path(run).absolute()
    return run.parent.parent.name == MAIN_RUNS and run.name.startswith("seed-")


def is_proxy(model: dict) -> bool:
    """Whether a model was trained to choose a mixture rather than on one chosen: DoReMi's proxies
    train by a method of their own (mixture "doremi proxy"; an online method's main models, as
    Aioli's, are named after the method and are no proxies); RegMix's swarm are plain static
    runs, told apart only by where their (random) mixtures lie."""
    if model.get("method") != "static":
        return _dig(model, "mixture", "name") != model.get("method")
    spec = _dig(model, "mixture", "spec")
    return isinstance(spec, str) and Path(spec).parent.parts[-2:] == SWARM_MIXTURES


def regmix_prediction(run: Path, summaries: dict[Path, dict]) -> Prediction | None:
    """What RegMix predicted for a main run of a `mixtune run` (OUTPUT/main/<mixture>/seed-S),
    from OUTPUT/summary.json; None for any other run, and for a summary that is missing, damaged
    or has no prediction for that mixture: a board is still worth showing without it.
    `summaries` keeps each summary read once (None for one that could not be)."""
    run = Path(run).absolute()
    if not is_main_run(run):
        return None
    path = run.parent.parent.parent / SUMMARY
    if path not in summaries:
        summaries[path] = _read_lenient(path)
    regmix = _dig(summaries[path], "methods", "regmix")
    value = _dig(regmix, "predicted", run.parent.name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return Prediction(str(path), target_label(_dig(regmix, "target")), float(value))


def run_verdicts(rows: list[Row]) -> list[str]:
    """"<run>: <verdict>" for each `mixtune run` whose main models are on the board: the sentence
    its report wrote into OUTPUT/summary.json (none before its report has run)."""
    found: dict[Path, str | None] = {}
    for row in rows:
        for e in row.entries:
            run = Path(e.run).absolute()
            path = run.parent.parent.parent / SUMMARY
            if is_main_run(run) and path not in found:
                summary = _read_lenient(path)
                sentence = _dig(summary, "verdict", "sentence")
                found[path] = sentence if isinstance(sentence, str) else None
                target = _dig(summary, "target")
                if found[path] and target not in (None, AVERAGE_TARGET):
                    # Else the order below can contradict the sentence (a mixture first on the
                    # average log-ppl that the verdict calls worse on the run's target).
                    found[path] += (" The board ranks by its own measure below, not by this "
                                    "run's target; the run's report ranks by the target.")
    return [f"{p.parent.name}: {s}" for p, s in found.items() if s]


def target_label(target) -> str:
    """RegMix's target as its report writes it: `average`, a domain, `1·web, 2·code`, ..."""
    if target is None:
        return "average"  # RegMix's default, for a summary that does not say
    if isinstance(target, dict):
        return ", ".join(f"{w:g}·{d}" if isinstance(w, int | float) else f"{w}·{d}"
                         for d, w in target.items())
    return str(target)


def _read_lenient(path: Path):
    """The JSON in `path`, or None when it is missing, unreadable or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _dig(value, *keys):
    """value[k1][k2]..., or None as soon as a level is missing or not a mapping."""
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value


# -- output ---------------------------------------------------------------------------------------

def dataset_name(model: dict) -> str:
    """The name that tells a model's dataset apart: its folder's name, except for the dataset of a
    `mixtune run`, whose folder is always OUTPUT/data/dataset: there, the run's OUTPUT name."""
    path = Path(model.get("dataset_path") or "")
    if path.parts[-2:] == PIPELINE_DATASET and path.parent.parent.name:
        return path.parent.parent.name
    return model["dataset_name"]


def _describe(row: Row) -> dict:
    m = row.first.model
    h = m["hyperparameters"]
    return {"dataset": dataset_name(m), "mixture": row.first.mixture, "scale": h["scale"],
            "tokens": h["tokens"], "seeds": ",".join(str(e.model["hyperparameters"]["seed"])
                                                     for e in row.entries)}


def _fmt(stat: dict | None, digits: int = 4) -> str:
    if stat is None:
        return NONE
    return fmt_ms(stat["mean"], stat["std"] if stat["n"] > 1 else None, digits)


def to_markdown(rows: list[Row], tasks: bool = False, rank_by: str = "auto") -> str:
    """The board as a Markdown table, ranked by `rank_by`, and a line below it that says by
    which measure (and, where `auto` passed CORE over, why)."""
    order = ranking(rows, rank_by)
    rows = rank(rows, order.key)
    head = ["#", "dataset", "mixture", "scale", "tokens", "seeds"] + [lab for _, lab, _ in MEASURES]
    targets = predicted_targets(rows)
    task_names = _task_names(rows) if tasks else []
    head += [PREDICTED.format(t) for t in targets] + task_names
    body = []
    for i, row in enumerate(rows, 1):
        d = _describe(row)
        core = _fmt(row.stat("core"))
        if (n := row.first.evaluation.get("Core_tasks")) and core != NONE:
            core += f" ({n})"
        cells = [str(i), d["dataset"], d["mixture"], d["scale"], f"{d['tokens']:,}", d["seeds"], core]
        cells += [_fmt(row.stat(k), 3 if "ppl" in k else 4) for k, _, _ in MEASURES[1:]]
        cells += [_fmt(row.predicted(t), _target_digits(t)) for t in targets]
        cells += [_fmt(_task_stat(row, t)) for t in task_names]
        body.append(cells)
    table = "\n".join(md_table(head, body, "l" * 6 + "r" * (len(head) - 6)))
    verdicts = "".join(f"Verdict, {md_text(v)}\n\n" for v in run_verdicts(rows))
    return f"{verdicts}{table}\n\n{order.sentence()}\n"


def to_csv(rows: list[Row], tasks: bool = False, rank_by: str = "auto") -> str:
    """The board as CSV, ranked by `rank_by` (its `rank` column)."""
    rows = rank(rows, rank_by)
    buf = io.StringIO()
    targets = predicted_targets(rows)
    task_names = _task_names(rows) if tasks else []
    table = [["rank", "dataset", "mixture", "scale", "tokens", "seeds", "n"]
             + [f"{k}{s}" for k, _, _ in MEASURES for s in ("", "_std")]
             + [PREDICTED.format(t) for t in targets] + task_names
             + ["model_uuids", "eval_uuids", "dataset_uuid"]]
    for i, row in enumerate(rows, 1):
        d = _describe(row)
        stats = [row.stat(k) for k, _, _ in MEASURES]
        table.append([i, d["dataset"], d["mixture"], d["scale"], d["tokens"], d["seeds"], len(row.entries)]
                     + [x for s in stats for x in ((s["mean"], s["std"]) if s else ("", ""))]
                     + [(s["mean"] if (s := row.predicted(t)) else "") for t in targets]
                     + [(s["mean"] if (s := _task_stat(row, t)) else "") for t in task_names]
                     + [" ".join(e.model["uuid"] for e in row.entries),
                        " ".join(e.evaluation["uuid"] for e in row.entries),
                        row.first.model.get("dataset_uuid") or ""])
    # Names come from folders and YAML: a cell like `=cmd|...` must not run in a spreadsheet.
    csv.writer(buf).writerows([[csv_cell(c) for c in cells] for cells in table])
    return buf.getvalue()


def predicted_targets(rows: list[Row]) -> list[str]:
    """The RegMix targets with a prediction in some row, as they first appear: one column each,
    since runs with different targets predict different things (none at all: no column)."""
    seen = [e.prediction.target for r in rows for e in r.entries if e.prediction is not None]
    return list(dict.fromkeys(seen))


def _target_digits(target: str) -> int:
    """As many digits as the measure the target is made of: log-ppl 3, bits per byte 4."""
    return 4 if target.startswith("downstream") else 3


def _icl(evaluation: dict) -> dict:
    """An evaluation's score per downstream task ({} where it scored none)."""
    return (evaluation.get("eval_metrics") or {}).get("icl") or {}


def _task_names(rows: list[Row]) -> list[str]:
    return sorted({t for r in rows for e in r.entries for t in _icl(e.evaluation)})


def _task_stat(row: Row, task: str) -> dict | None:
    return _stat([_icl(e.evaluation).get(task) for e in row.entries])


def to_board(rows: list[Row], title: str = "mixtune leaderboard", curves: dict | None = None,
             rank_by: str = "auto") -> dict:
    """The rows as `leaderboard.html.render_html` takes them, ranked by `rank_by`; its
    "ranking" says by which measure (key, label, better, note, sentence)."""
    from datetime import datetime, timezone

    order = ranking(rows, rank_by)
    rows = rank(rows, order.key)
    columns = [{"key": "dataset", "label": "dataset", "kind": "text"},
               {"key": "mixture", "label": "mixture", "kind": "text"},
               {"key": "scale", "label": "scale", "kind": "text"},
               {"key": "tokens", "label": "tokens", "kind": "int"},
               {"key": "seeds", "label": "seeds", "kind": "text"}]
    columns += [{"key": k, "label": lab, "kind": "number", "digits": 3 if "ppl" in k else 4,
                 "better": better} for k, lab, better in MEASURES]
    targets = predicted_targets(rows)
    columns += [{"key": f"regmix_predicted:{t}", "label": PREDICTED.format(t), "kind": "number",
                 "digits": _target_digits(t), "better": "lower"} for t in targets]
    out_rows = []
    for i, row in enumerate(rows):
        values = _describe(row)
        values.update({k: row.stat(k) for k, _, _ in MEASURES})
        values.update({f"regmix_predicted:{t}": _one(row.predicted(t)) for t in targets})
        tasks = {t: s["mean"] for t in _task_names([row]) if (s := _task_stat(row, t))}
        first = row.first
        out_rows.append({
            "id": f"row{i}",
            "values": values,
            "note": {"core": f"{first.evaluation['Core_tasks']} tasks"} if first.evaluation.get("Core_tasks") else {},
            "weights": first.model["mixture"].get("weights") or {},
            "tasks": tasks,
            "links": {"model": " ".join(e.model["uuid"] for e in row.entries),
                      "eval": " ".join(e.evaluation["uuid"] for e in row.entries),
                      "dataset": first.model.get("dataset_uuid") or "",
                      "runs": " ".join(str(e.run) for e in row.entries)},
        })
    return {"title": title, "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "columns": columns, "rows": out_rows, "curves": curves or {},
            "verdicts": run_verdicts(rows),
            "ranking": {"key": order.key, "label": order.label, "better": BETTER[order.key],
                        "note": order.note, "sentence": order.sentence()}}


def _one(stat: dict | None) -> dict | float | None:
    """A stat for the page, as a bare number when there is one value: its cell then shows no
    'mean ± std over n = 1' tooltip, which would suggest seeds where there was one prediction."""
    return stat["mean"] if stat is not None and stat["n"] == 1 else stat


CURVE_NAMES = {"core": "CORE", "mean_bpb": "mean BPB", "avg_log_ppl": "average log-ppl"}
"""The name of each ranking measure's curve (metrics.jsonl) on the page."""


def curves(rows: list[Row], rank_by: str = "auto") -> dict:
    """Each row's evaluations during training (metrics.jsonl), mean over its seeds at the steps
    every seed has, against training tokens: of the measure that ranks the board (`ranking`),
    else, where the runs logged none of it, of the next one (RANK_BY's order) they did: never
    CORE where it is noise and does not rank."""
    by = ranking(rows, rank_by).key
    several = len({dataset_name(r.first.model) for r in rows}) > 1
    per_row = []
    for row in rows:
        metrics = [Metrics.read(e.run / "metrics.jsonl") for e in row.entries]
        measured = {
            "CORE": [{step: agg["value"] for step, d in m.downstream.items()
                      if (agg := d.aggregates.get("core") or {}).get("present")} for m in metrics],
            "mean BPB": [{step: d.mean_bpb for step, d in m.downstream.items()
                          if d.mean_bpb is not None} for m in metrics],
            "average log-ppl": [m.eval_average for m in metrics],
        }
        per_row.append((row, measured))
    order = [CURVE_NAMES[k] for k in (by, *(m for m in RANK_BY if m not in (by, "core")))]
    metric = next((name for name in order if any(c for _, measured in per_row for c in measured[name])),
                  order[0])
    series = []
    for row, measured in per_row:
        steps, values = mean_curve(measured[metric])
        h, d = row.first.model["hyperparameters"], _describe(row)
        per_step = (h.get("global_bs") or 0) * (h.get("seq_len") or 0)
        if steps and per_step:  # a record without its batch's tokens has no place on the axis
            series.append({
                "label": f"{d['mixture']} · {d['scale']}" + (f" · {d['dataset']}" if several else ""),
                "points": [[s * per_step, v] for s, v in zip(steps, values, strict=True)],
            })
    return {"metric": metric, "x": "training tokens", "series": series}
