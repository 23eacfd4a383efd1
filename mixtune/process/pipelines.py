"""Built-in processing pipelines, and pipelines read from YAML.

A pipeline file is a YAML list of steps (or a mapping with a `steps:` list), each
`{op: NAME, ARG: VALUE, ...}`, in the spirit of DCLM's `baselines_configs/*.yaml`. `mixtune process
--show-pipeline NAME` prints a built-in one as YAML, to copy and edit.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mixtune.errors import UserError
from mixtune.process.ops import Step, parse_step

# RefinedWeb's document heuristics (Penedo et al. 2023) as DCLM applies them to Common Crawl:
# English at >= 0.65, Gopher quality and repetition rules, line-wise corrections, and at least 50
# words left.
_REFINEDWEB = [
    {"op": "language", "languages": ["en"], "threshold": 0.65},
    {"op": "gopher_repetition"},
    {"op": "gopher_quality"},
    {"op": "refinedweb_lines"},
    {"op": "length", "min_words": 50},
]

BUILTIN: dict[str, tuple[str, list[dict]]] = {
    "minimal": ("drop near-empty documents (< 20 words), then exact duplicates",
                [{"op": "length", "min_words": 20}, {"op": "exact_dedup"}]),
    "c4": ("C4's page rules (Raffel et al. 2020): lines ending in punctuation, >= 3 words and "
           ">= 5 sentences, no curly braces, lorem ipsum, javascript or policy lines; then exact "
           "dedup", [{"op": "c4_quality"}, {"op": "exact_dedup"}]),
    "refinedweb": ("RefinedWeb's heuristics: English (lingua, >= 0.65), Gopher repetition and "
                   "quality rules, line-wise corrections, >= 50 words", _REFINEDWEB),
    "dclm-baseline": ("DCLM-Baseline: the RefinedWeb heuristics, BFF paragraph+document dedup, "
                      "then the fastText quality filter when --quality-model is given",
                      [*_REFINEDWEB, {"op": "bff_dedup"}]),
}
QUALITY_STEP = "fasttext_quality"


def builtin_steps(name: str, quality_model: str | None = None) -> list[dict]:
    steps = [dict(s) for s in BUILTIN[name][1]]
    if name == "dclm-baseline" and quality_model is not None:
        steps.append({"op": QUALITY_STEP, "model": quality_model})
    return steps


def load_pipeline(spec: str, quality_model: str | None = None) -> list[Step]:
    """The checked steps of a built-in pipeline name or a YAML file."""
    if spec in BUILTIN:
        return [parse_step(s, f"pipeline {spec}, step {i + 1}")
                for i, s in enumerate(builtin_steps(spec, quality_model))]
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--pipeline {spec}: neither a built-in pipeline "
                        f"({', '.join(BUILTIN)}) nor a file.")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise UserError(f"{path}: cannot read the pipeline ({err}).") from None
    if isinstance(raw, dict) and set(raw) == {"steps"}:
        raw = raw["steps"]
    if not isinstance(raw, list) or not raw:
        raise UserError(f"{path}: a pipeline is a non-empty YAML list of steps "
                        "(- op: NAME, with its arguments).")
    steps = [parse_step(s, f"{path}, step {i + 1}") for i, s in enumerate(raw)]
    if quality_model is not None:
        raise UserError("--quality-model adds the quality filter to the built-in dclm-baseline; "
                        f"in {path} add a step `op: {QUALITY_STEP}` with `model: PATH` instead.")
    return steps


def to_yaml(steps: list[dict]) -> str:
    return yaml.safe_dump(steps, sort_keys=False, allow_unicode=True)
