"""The settings of `mixtune process`, next to it (importing this module imports no datatrove)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixtune.data.config import ReaderOptions
from mixtune.executors import ExecutorOptions


@dataclass(kw_only=True)
class ProcessSettings(ExecutorOptions, ReaderOptions):
    """How `mixtune process` filters and deduplicates, whatever the sources: data.process in a
    run YAML (where the pipeline gives the sources and the output)."""

    pipeline: str = "minimal"
    """A built-in pipeline (minimal, c4, refinedweb, dclm-baseline) or a YAML file of steps."""
    quality_model: str | None = None
    """fastText classifier file for dclm-baseline's quality filter (none: the step is left out)."""
    keep_work: bool = False
    """Keep OUT.work/ (intermediate shards, signatures, datatrove logs) after success."""



@dataclass
class ProcessOptions(ProcessSettings):
    """mixtune process SOURCE... --pipeline P --out DIR."""

    sources: list[str]
    """Raw sources, in any layout `mixtune prepare` reads."""
    out: str
    """Folder of the processed corpus, one folder per domain of jsonl.zst (train/ and validation/
    kept when the input had them); it appears only when complete."""
    overwrite: bool = False
    """Redo a complete output."""

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
