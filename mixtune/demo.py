"""`mixtune demo`: the whole chain on generated domains, with nothing to download or prepare."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import yaml

from mixtune.pipeline import run_pipeline
from mixtune.records import RunSummary


def demo_config() -> dict:
    return yaml.safe_load(resources.files("mixtune.configs").joinpath("demo.yaml").read_text())


QUICK_STEPS = 150
"""The quick look's steps per model: the whole chain and its report in about 1.5 minutes on two
idle cores, too short for DoReMi's weights to settle (--full: demo.yaml's 600)."""


def run_demo(out: str | Path, steps: int | None = None, force: list[str] | None = None,
             full: bool = False) -> Path:
    out = Path(out).resolve()
    cfg = demo_config()
    cfg["output"] = str(out)
    if steps is None and not full:
        steps = QUICK_STEPS
        cfg["eval"]["limit"] = 50  # items per generated task: its scoring is a third of the time
    if steps is not None:
        for spec in (cfg["proxy"], cfg["main"]):
            spec["steps"], spec["eval_every"] = steps, max(1, steps // 10)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "demo.yaml"
    config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_pipeline(config_path, force=force)
    summary = RunSummary.from_json(json.loads((out / "summary.json").read_text()))
    print_weights(summary)
    print_mixtures(summary, out)
    print(f"\nDoReMi weights: {out}/mixtures/doremi.json\nreport:         {out}/report/report.md")
    return out


def print_weights(summary: RunSummary) -> None:
    names = list(summary.mixtures)
    print("\n" + "domain".ljust(16) + "".join(n.rjust(12) for n in names))
    for d in summary.domains:
        print(d.ljust(16) + "".join(f"{summary.mixtures[n][d]:12.3f}" for n in names))


def print_mixtures(summary: RunSummary, out: Path) -> None:
    from mixtune.report.collect import OutputFolder
    from mixtune.report.tables import text_table
    from mixtune.report.verdict_section import plain_sentence

    folder = OutputFolder.read(out)
    print("\n" + "\n".join(text_table(folder.table)))
    print(plain_sentence(folder.verdict))
