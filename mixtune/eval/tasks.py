"""Downstream tasks: the local cache, and reading a task (installed or a user's).

A task is a folder (installed ones live in the cache, `~/.cache/mixtune/tasks/<name>/`, or under
`$MIXTUNE_TASKS`; `mixtune tasks download` fills it, `mixtune tasks list` shows it):

    task.json      what the task is (`TaskSpec`): format, default shots, random baseline, prompt
                   delimiters, item counts, and where it came from (package, version, file)
    test.jsonl     the scored items, one JSON object per line
    fewshot.jsonl  the items few-shot examples are drawn from (never scored; may be absent)

The formats (multiple_choice, schema, language_modeling, generative_qa) and their items' fields
are in `mixtune.eval.formats`.

A user's own task is such a folder, or a single JSONL file (its format read from the keys of its
first item; few-shot examples then come from the same file, never the item being scored).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mixtune.errors import UserError
from mixtune.eval.formats import FORMATS, TaskFormat, infer_format
from mixtune.io import read_json

FORMAT_VERSION = 1
SPEC = "task.json"
TEST = "test.jsonl"
FEWSHOT = "fewshot.jsonl"


def cache_dir() -> Path:
    """Where installed tasks live: $MIXTUNE_TASKS, else ~/.cache/mixtune/tasks."""
    env = os.environ.get("MIXTUNE_TASKS")
    return Path(env) if env else Path.home() / ".cache" / "mixtune" / "tasks"


@dataclass
class Source:
    """Where an installed task's items came from."""

    package: str
    version: str
    path: str
    """The file inside the package."""
    note: str = ""
    """How the items were selected or changed (e.g. the few-shot pool held out of validation)."""


@dataclass
class TaskSpec:
    """TASK/task.json."""

    name: str
    format: str
    """A registered format's name (`formats.FORMATS`)."""
    shots: int = 0
    """Few-shot examples before each item, as DCLM's suite sets them (`--shots` overrides)."""
    random_baseline: float = 0.0
    """Accuracy of guessing (DCLM's v2 table, as a fraction): centred accuracy is
    (acc − b) / (1 − b)."""
    continuation_delimiter: str = " "
    """Between a query (context) and its answer (choice, continuation)."""
    example_delimiter: str = "\n\n"
    """Between few-shot examples, and before the scored item."""
    prefix: str = ""
    """Text once before everything (e.g. MMLU's 'The following are ... about anatomy.')."""
    description: str = ""
    n: int = 0
    """Items in test.jsonl."""
    fewshot_n: int = 0
    """Items in fewshot.jsonl."""
    source: Source | None = None
    format_version: int = FORMAT_VERSION

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict, where: str) -> TaskSpec:
        try:
            source = Source(**obj["source"]) if obj.get("source") else None
            spec = cls(**{**obj, "source": source})
        except TypeError as e:  # a missing or unknown key of a file we read
            raise UserError(f"{where}: not a task description ({e}).") from None
        if spec.format not in FORMATS:
            raise UserError(f"{where}: format {spec.format!r}; use one of {', '.join(FORMATS)}.")
        return spec


@dataclass
class Task:
    """A task ready to score: its description, its items and its few-shot pool."""

    spec: TaskSpec
    items: list[dict]
    fewshot: list[dict] = field(default_factory=list)
    fewshot_from_items: bool = False
    """No separate pool: few-shot examples come from the other items (a user's bare file)."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def format(self) -> TaskFormat:
        return FORMATS[self.spec.format]


def read_items(path: Path, fmt: str | None = None) -> tuple[str, list[dict]]:
    """The items of a task JSONL file, each checked against its format; the format is read
    from the first item's keys when not given. Errors name the file and line."""
    items, found = [], FORMATS[fmt] if fmt is not None else None
    try:
        # Lines end at "\n" only: splitlines() would also cut at U+2028 inside a JSON string.
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the task file ({e}).") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"{where}: malformed JSON ({e.msg}, column {e.colno}).") from None
        if not isinstance(item, dict):
            raise UserError(f"{where}: expected a JSON object per line.")
        if found is None:
            found = infer_format(item, where)
        found.check(item, where)
        items.append(item)
    if not items:
        raise UserError(f"{path}: no items.")
    return found.name, items


def load_task(path: Path) -> Task:
    """A task folder (task.json + test.jsonl [+ fewshot.jsonl]) or a single JSONL file."""
    path = Path(path)
    if path.is_file():
        fmt, items = read_items(path)
        spec = TaskSpec(name=path.stem.removesuffix(".jsonl"), format=fmt, n=len(items))
        return Task(spec, items, fewshot_from_items=True)
    spec = TaskSpec.from_json(read_json(path / SPEC, "download the task again."), str(path / SPEC))
    _, items = read_items(path / TEST, spec.format)
    fewshot = read_items(path / FEWSHOT, spec.format)[1] if (path / FEWSHOT).is_file() else []
    return Task(spec, items, fewshot, fewshot_from_items=not fewshot)


def installed(root: Path | None = None) -> dict[str, Path]:
    """Installed task folders by name."""
    root = root or cache_dir()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / SPEC).is_file() and (p / TEST).is_file()}
