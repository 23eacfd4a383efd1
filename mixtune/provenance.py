"""Records that link every score to its model and every model to its dataset (DCLM's
`exp_data/{datasets,models,evals}` JSON, with field names kept where they mean the same).

    DATASET/dataset_record.json        prepare, synthetic data     uuid, name, tokenizer, num_tokens, ...
    RUN/model_record.json              training (at the end)       uuid, dataset_uuid, hyperparameters, mixture
    RUN/evals/<date>-<uuid8>.json      every evaluation of a run   uuid, model_uuid, dataset_uuid, metrics

Each record has a uuid, a name, its creation date, the mixtune version and, when mixtune runs from
a git checkout, the commit. Records are written atomically and never rewritten: work that is redone
(a dataset prepared again, a run trained again, another evaluation) writes a new record with a new
uuid, so an old score never silently points at a new model.

A record is checked against its kind's fields (`FIELDS`) when it is read: one that is not JSON, not
an object, of another kind, or with a field missing or of the wrong type is a `RecordError` naming
the file and the field, never a KeyError or TypeError further on.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from mixtune.errors import UserError
from mixtune.io import write_json_atomic

DATASET_RECORD = "dataset_record.json"
DATASET_KINDS = ("dataset", "processed")
"""What a dataset_record.json may record: a tokenized dataset, or a corpus `mixtune process` wrote."""
MODEL_RECORD = "model_record.json"
EVALS_DIR = "evals"


@cache
def git_commit() -> str | None:
    """The commit of the mixtune checkout running this, or None (an installed wheel, no git)."""
    here = Path(__file__).resolve().parent
    try:
        proc = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout.strip() or None) if proc.returncode == 0 else None


def package_version() -> str:
    """mixtune's version as installed (pyproject.toml's); 'unknown' in a checkout not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mixtune")
    except PackageNotFoundError:
        return "unknown"


def new_record(name: str, **fields) -> dict:
    """A record's common head (uuid, name, creation date, version, commit) and `fields`."""
    return {
        "uuid": str(uuid.uuid4()),
        "name": name,
        "creation_date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mixtune_version": package_version(),
        "git_commit": git_commit(),
        **fields,
    }


def dataset_record(folder: Path, manifest, sources: list[str]) -> dict:
    """What identifies a prepared dataset: its tokenizer, domains and token counts, sources."""
    train = manifest.splits.get("train", {})
    return new_record(
        Path(folder).name,
        kind="dataset",
        dataset_url=str(Path(folder).resolve()),
        sources=list(sources),
        source_records=_source_records(sources),
        tokenized=True,
        tokenizer={"sha256": manifest.tokenizer.sha256, "vocab_size": manifest.tokenizer.vocab_size,
                   "source": manifest.tokenizer.source},
        seq_len=manifest.seq_len,
        domains=list(manifest.domains),
        num_tokens=sum(c.tokens for c in train.values()),
        domain_tokens={d: c.tokens for d, c in train.items()},
        validation_tokens=sum(c.tokens for c in manifest.splits.get("validation", {}).values()),
    )


def _source_records(sources: list[str]) -> list[str]:
    """The uuids of sources that are themselves recorded (a corpus `mixtune process` wrote)."""
    uuids = []
    for source in sources:
        path = Path(source) / DATASET_RECORD
        if path.is_file():
            uuids.append(read_record(path, DATASET_KINDS)["uuid"])
    return uuids


def write_dataset_record(staged: Path, final: Path, manifest, sources: list[str]) -> dict:
    """The record of the dataset being written into `staged`, to be published as `final`."""
    record = dataset_record(final, manifest, sources)
    write_json_atomic(Path(staged) / DATASET_RECORD, record)
    return record


# -- reading, checked ----------------------------------------------------------------------------

_HEAD = {"uuid": "text", "name": "text", "creation_date": "text", "kind": "text",
         "mixtune_version": "text?", "git_commit": "text?"}
FIELDS: dict[str, dict[str, str]] = {
    "dataset": {**_HEAD, "num_tokens": "int?", "seq_len": "int?", "domains": "list?",
                "domain_tokens": "mapping?", "tokenizer": "mapping?", "sources": "list?"},
    "processed": {**_HEAD, "domains": "list?", "documents": "mapping?", "dataset_url": "text?"},
    "model": {**_HEAD, "dataset_uuid": "text?", "dataset_path": "text?", "dataset_name": "text?",
              "method": "text?", "mixture": "mapping?", "mixture.name": "text",
              "mixture.weights": "mapping?", "mixture.weights.*": "number?",
              "hyperparameters": "mapping", "hyperparameters.scale": "text?",
              "hyperparameters.tokens": "int?", "hyperparameters.seed": "int?",
              "hyperparameters.global_bs": "int?", "hyperparameters.seq_len": "int?"},
    "eval": {**_HEAD, "model_uuid": "text", "dataset_uuid": "text?", "step": "int?",
             "Core": "number?", "Extended": "number?", "Core_tasks": "text?",
             "Extended_tasks": "text?", "eval_metrics": "mapping?",
             **{f"eval_metrics.{k}": "number?" for k in ("average_log_ppl", "worst_log_ppl",
                                                         "mean_bpb")},
             **{f"eval_metrics.{k}": "mapping?" for k in ("log_ppl", "icl", "bpb")},
             **{f"eval_metrics.{k}.*": "number?" for k in ("log_ppl", "icl", "bpb")}},
}
"""Per kind, its fields and their types: text, int, number, mapping, list or any; `?` where the
field may be missing or null. `a.b` is field b of mapping a (checked when a is there), `a.*`
every value of mapping a. Fields not named here are not checked (a reader ignores them)."""
_TYPES = {"text": (str, "text"), "int": (int, "an integer"), "number": ((int, float), "a number"),
          "mapping": (dict, "a mapping"), "list": (list, "a list"), "any": (object, "a value")}
_MISSING = object()
FIX = "write it again with the command that made it, or remove it"


class RecordError(UserError):
    """A record that cannot be used: the message names the file and what is wrong (the field)."""

    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}; {FIX}.")
        self.path, self.problem = Path(path), problem


def read_record(path: Path, kind: str | tuple[str, ...] | None = None,
                require: dict[str, str] | None = None) -> dict:
    """The record in `path`, checked against the fields of its kind, which must be `kind` (or one
    of them; None: any), and the further fields a reader `require`s (as in `FIELDS`); a
    RecordError naming the file and the field otherwise."""
    try:
        record = json.loads(Path(path).read_bytes())
    except IsADirectoryError:
        raise RecordError(path, "a folder, not a record file") from None
    except OSError as e:
        raise RecordError(path, f"cannot be read ({e.strerror})") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise RecordError(path, f"not valid JSON ({e})") from None
    problem = record_problem(record, kind, require)
    if problem is not None:
        raise RecordError(path, problem)
    return record


def record_problem(record, kind: str | tuple[str, ...] | None = None,
                   require: dict[str, str] | None = None) -> str | None:
    """What makes `record` no record of `kind` (None: it is one): not an object, another kind,
    or the first field that is missing or of the wrong type."""
    if not isinstance(record, dict):
        return f"not a JSON object: {_show(record)}"
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and record.get("kind") not in kinds:
        wanted = " or ".join(f'"{k}"' for k in kinds)
        return f'field "kind" is {_show(record.get("kind", _MISSING))} (wanted: {wanted})'
    own = record.get("kind")
    for key, want in {**(FIELDS.get(own, {}) if isinstance(own, str) else {}),
                      **(require or {})}.items():
        for name, value in _fields(record, key.split(".")):
            if (problem := _type_problem(value, want)) is not None:
                return f'field "{name}" is {problem}'
    return None


def _fields(value, parts: list[str], names: tuple[str, ...] = ()):
    """(dotted name, value or _MISSING) of each field `parts` names under `value`; nothing below a
    level that is not a mapping (that level's own check says so)."""
    if not parts:
        yield ".".join(names), value
    elif isinstance(value, dict) and parts[0] == "*":
        for k, v in value.items():
            yield from _fields(v, parts[1:], (*names, str(k)))
    elif isinstance(value, dict):
        yield from _fields(value.get(parts[0], _MISSING), parts[1:], (*names, parts[0]))


def _type_problem(value, want: str) -> str | None:
    optional, (types, noun) = want.endswith("?"), _TYPES[want.rstrip("?")]
    if value is _MISSING or value is None:
        return None if optional else ("missing" if value is _MISSING else "null")
    if isinstance(value, types) and not (isinstance(value, bool) and types is not object):
        return None
    return f"{_show(value)}, not {noun}"


def _show(value) -> str:
    """A value as a message shows it: its JSON, cut short; what a missing field is."""
    if value is _MISSING:
        return "missing"
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def dataset_uuid(dataset_folder: Path) -> str | None:
    """The uuid of a dataset's record; None for a dataset prepared before records existed."""
    path = Path(dataset_folder) / DATASET_RECORD
    return read_record(path, "dataset")["uuid"] if path.is_file() else None


def write_model_record(run: Path, **fields) -> dict:
    """RUN/model_record.json, written when the run finishes (before final/ marks it complete; an
    interrupted finish writes it again, with a new uuid, when the run is finished again)."""
    record = new_record(Path(run).name, kind="model", **fields)
    write_json_atomic(Path(run) / MODEL_RECORD, record)
    return record


def model_record(run: Path) -> dict | None:
    path = Path(run) / MODEL_RECORD
    return read_record(path, "model") if path.is_file() else None


def write_eval_record(run: Path, model: dict, **fields) -> Path:
    """A new RUN/evals/<date>-<uuid8>.json for one evaluation of the run's model."""
    record = new_record(
        f"evaluation_{model['name']}",
        kind="eval",
        model=model["name"],
        model_uuid=model["uuid"],
        dataset_uuid=model.get("dataset_uuid"),
        **fields,
    )
    stamp = record["creation_date"].replace(":", "").replace("-", "")
    path = Path(run) / EVALS_DIR / f"{stamp}-{record['uuid'][:8]}.json"
    write_json_atomic(path, record)
    return path


def eval_metrics(result, downstream: dict | None) -> dict:
    """An evaluation's numbers in the records' layout: per-domain log-ppl, downstream scores and
    the suites' aggregates (`Core`, `Extended` as DCLM names them)."""
    fields: dict = {
        "eval_metrics": {
            "log_ppl": dict(result.log_ppl),
            "average_log_ppl": result.average,
            "worst_log_ppl": result.worst,
            "worst_domain": result.worst_domain,
        },
        "Core": None,
        "Extended": None,
        "missing tasks": [],
    }
    if downstream:
        tasks = downstream.get("tasks", {})
        # Each task's score in its primary metric (acc, acc_norm, ...; as DCLM's `icl`).
        fields["eval_metrics"]["icl"] = {t: r.get(r.get("primary") or "acc") for t, r in tasks.items()}
        fields["eval_metrics"]["bpb"] = {t: r.get("bpb") for t, r in tasks.items()}
        fields["eval_metrics"]["mean_bpb"] = downstream.get("mean_bpb")
        for suite, agg in downstream.get("aggregates", {}).items():
            key = {"core": "Core", "extended": "Extended"}.get(suite)
            if key and agg.get("present"):
                fields[key] = agg["value"]
                fields[f"{key}_tasks"] = f"{agg['present']}/{agg['total']}"
                fields["missing tasks"] = sorted(set(fields["missing tasks"]) | set(agg["missing"]))
    return fields
