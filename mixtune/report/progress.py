"""The report of a run that has not written summary.json yet: the data is still being prepared,
or a mixture method's stages (DoReMi's reference and proxy) are still training. It says what each
stage has done so far, from the records the stages write (stage.json, a training run's
config.yaml and metrics.jsonl, a proxy's weights_history.jsonl), and what comes next."""

from __future__ import annotations

from pathlib import Path

from mixtune.errors import UserError
from mixtune.io import load_yaml, read_json, read_jsonl, write_bytes_atomic
from mixtune.records import Metrics
from mixtune.tables import md_code, md_table

RECORD = "stage.json"  # pipeline/stage.py writes it; read here as the documented JSON


def write_progress(output: Path, report_dir: Path) -> Path:
    """report.md listing the stages found under `output` and how far each got."""
    records = sorted(output.rglob(RECORD))
    if not records:
        raise UserError(f"{output}: no stage of a `mixtune run` here (no summary.json, no "
                        f"{RECORD}); point the report at the output folder of a run.")
    rows = [_row(output, path) for path in records]
    lines = ["# mixtune report (the run is under way)", "",
             f"Output folder {md_code(output)}. `summary.json` is written once the mixture methods have "
             "proposed their mixtures; until then this page shows the stages so far. The main "
             "models, their comparison and the plots follow; run `mixtune report` again (or let "
             "`mixtune run` finish, which writes the full report).", "",
             *md_table(["stage", "state", "progress"], rows, "lll"), ""]
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / "report.md"
    write_bytes_atomic(path, "\n".join(lines).encode())
    return path


def _row(output: Path, record: Path) -> list[str]:
    folder = record.parent
    stage = read_json(record, f"delete {folder} to redo the stage.")
    state = "complete" if stage.get("complete") else "started"
    return [md_code(folder.relative_to(output)), state, _progress(folder)]


def _progress(folder: Path) -> str:
    """Steps done of a training stage (and a proxy's latest weights); '' for other stages."""
    if not (folder / "config.yaml").is_file():
        return ""
    steps = load_yaml(folder / "config.yaml").get("steps")
    done = Metrics.read(folder / "metrics.jsonl").last_step
    text = f"step {done} of {steps}"
    history = read_jsonl(folder / "weights_history.jsonl")
    if history and isinstance(history[-1].get("weights"), dict):
        weights = ", ".join(f"{d} {w:.3f}" for d, w in history[-1]["weights"].items()
                            if isinstance(w, int | float))
        text += f"; α_t now: {weights}"
    return text
