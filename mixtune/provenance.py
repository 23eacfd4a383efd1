"""Records that link every score to its model and every model to its dataset (DCLM's
`exp_data/{datasets,models,evals}` JSON, with field names kept where they mean the same).

    DATASET/dataset_record.json        prepare, synthetic data     uuid, name, tokenizer, num_tokens, ...
    RUN/model_record.json              training (at the end)       uuid, dataset_uuid, hyperparameters, mixture
    RUN/evals/<date>-<uuid8>.json      every evaluation of a run   uuid, model_uuid, dataset_uuid, metrics

Each record has a uuid, a name, its creation date, the mixtune version and, when mixtune runs from
a git checkout, the commit. Records are written atomically and never rewritten: work that is redone
(a dataset prepared again, a run trained again, another evaluation) writes a new record with a new
uuid, so an old score never silently points at a new model.
"""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from mixtune.io import read_json, write_json_atomic

DATASET_RECORD = "dataset_record.json"
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
            uuids.append(read_json(path, f"delete {path} or fix it.").get("uuid"))
    return uuids


def write_dataset_record(staged: Path, final: Path, manifest, sources: list[str]) -> dict:
    """The record of the dataset being written into `staged`, to be published as `final`."""
    record = dataset_record(final, manifest, sources)
    write_json_atomic(Path(staged) / DATASET_RECORD, record)
    return record


def read_record(path: Path) -> dict:
    return read_json(Path(path), "write it again with the command that made it, or remove it")


def dataset_uuid(dataset_folder: Path) -> str | None:
    """The uuid of a dataset's record; None for a dataset prepared before records existed."""
    path = Path(dataset_folder) / DATASET_RECORD
    return read_record(path)["uuid"] if path.is_file() else None


def write_model_record(run: Path, **fields) -> dict:
    """RUN/model_record.json, written when the run finishes (before final/ marks it complete; an
    interrupted finish writes it again, with a new uuid, when the run is finished again)."""
    record = new_record(Path(run).name, kind="model", **fields)
    write_json_atomic(Path(run) / MODEL_RECORD, record)
    return record


def model_record(run: Path) -> dict | None:
    path = Path(run) / MODEL_RECORD
    return read_record(path) if path.is_file() else None


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
