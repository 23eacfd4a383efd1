"""`mixtune eval --harness lm-eval`: lm-evaluation-harness on the same local task files.

For users who want lm-evaluation-harness's own numbers (pip install 'mixtune[lm-eval]'). Each
task is handed to it as a YAML task over our JSONL files (`dataset_path: json`, test split
`test.jsonl`, few-shot split `fewshot.jsonl`), with the same prompt fields and delimiters, so both
harnesses score the same prompts; lm-eval draws its own few-shot examples. Multiple-choice tasks
give `acc` and `acc_norm`, language-modelling tasks `acc` (exact greedy match); lm-eval has no
per-token accuracy, so the centred score here centres `acc`. Schema and generative QA tasks are
left to mixtune's own scoring (lm-eval needs task-specific code for them). Each format says
which it is, and how lm-eval reads its items (`TaskFormat.lm_eval`).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import yaml

from mixtune.errors import UserError
from mixtune.eval import suites
from mixtune.eval.formats import FORMATS
from mixtune.eval.tasks import FEWSHOT, TEST, TaskSpec, load_task
from mixtune.records import DownstreamResult, TaskResult

log = logging.getLogger(__name__)


def task_yaml(name: str, path: Path, spec: TaskSpec, shots: int) -> dict:
    """An lm-eval task over one of our task folders (of a format lm-eval can score)."""
    how = FORMATS[spec.format].lm_eval
    files = {"test": str(path / TEST)}
    if (path / FEWSHOT).is_file():
        files["train"] = str(path / FEWSHOT)
    doc = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": files},
        "test_split": "test",
        "output_type": how.output_type,
        "target_delimiter": spec.continuation_delimiter,
        "fewshot_delimiter": spec.example_delimiter,
        "num_fewshot": shots,
        "description": spec.prefix,
    }
    if "train" in files:
        doc["fewshot_split"] = "train"
    doc["metric_list"] = [{"metric": m, "aggregation": "mean", "higher_is_better": True}
                          for m in how.metrics]
    doc.update(how.fields)
    return doc


def evaluate_with_lm_eval(model, tokenizer, spec: suites.TasksSpec, roots: list[Path], *,
                          limit: int | None, shots: int | None,
                          batch_size: int = 8) -> DownstreamResult:
    """Score the already loaded `model` with lm-eval's HF wrapper (no second load)."""
    try:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise UserError("--harness lm-eval: lm-evaluation-harness is not installed "
                        "(pip install 'mixtune[lm-eval]').") from None
    picked = []
    with tempfile.TemporaryDirectory(prefix="mixtune-lm-eval-") as tmp:
        for entry, path in suites.locate(spec, shots, roots):
            task = load_task(path)
            if task.format.lm_eval is None:
                log.warning("--harness lm-eval: %s (%s) is left out; lm-eval needs its own code "
                            "for that format", entry.name, task.spec.format)
                continue
            k = entry.shots if entry.shots >= 0 else task.spec.shots
            name = f"mixtune_{entry.name}"
            doc = task_yaml(name, path, task.spec, k)
            (Path(tmp) / f"{name}.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
            picked.append((entry, task, name, k))
        if not picked:
            raise UserError(f"--harness lm-eval: none of {suites.spec_text(spec)} is a format "
                            "lm-eval can score here.")
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        out = lm_eval.simple_evaluate(
            model=lm, tasks=[p[2] for p in picked], task_manager=TaskManager(include_path=tmp),
            limit=limit,
        )
    return _results(out["results"], picked, limit)


def _results(results: dict, picked, limit) -> DownstreamResult:
    tasks = {}
    for entry, task, name, k in picked:
        r = results[name]
        acc, acc_norm = r.get("acc,none"), r.get("acc_norm,none")
        baseline = entry.baseline if entry.kind else task.spec.random_baseline
        n = min(limit, len(task.items)) if limit else len(task.items)
        tasks[entry.name] = TaskResult(
            entry.name, task.name, task.spec.format, k, n, acc=acc, acc_norm=acc_norm,
            acc_centered=None if acc is None else (acc - baseline) / (1 - baseline),
        )
    centred = {n: t.acc_centered for n, t in tasks.items() if t.acc_centered is not None}
    aggregates = {s: suites.aggregate(s, centred).to_json() for s, members in suites.SUITES.items()
                  if set(members) & set(tasks)}
    return DownstreamResult(tasks, aggregates, limit)
