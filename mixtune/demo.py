"""`mixtune demo`: the whole chain on generated domains, with nothing to download or prepare."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml

from mixtune.pipeline import run_pipeline
from mixtune.report.terminal import print_outcome


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
    print_outcome(out)
    print(f"\nDoReMi weights: {out}/mixtures/doremi.json\nreport:         {out}/report/report.md")
    return out
