"""Task suites and their aggregates: DCLM's CORE and EXTENDED, and the DoReMi harness's QA.

An *entry* of a suite scores one installed task with a number of shots: DCLM's `hellaswag` (10-shot)
and `hellaswag_zeroshot` are two entries of the task `hellaswag`. Shots, random baselines and task
types are DCLM's (mlfoundations/dclm, eval/eval_meta_data.csv, the v2 table of Sept. 2025, whose
baselines corrected v1's); CORE is its `low_variance_datasets` list (22 entries), EXTENDED every
entry of the table (53). Centred accuracy is (acc − b) / (1 − b), with b the baseline.

A suite score averages the centred accuracy of the entries that were scored, and says how many
that is: "CORE (20/22)" is never presented as if it were complete; the missing entries are listed
beside it. Entries whose data cannot be installed here (Winograd/WSC273, AGIEval, GSM8K-CoT, ...)
are named with the reason.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mixtune.errors import UserError
from mixtune.eval.tasks import cache_dir, installed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    name: str
    """DCLM's name for it (what results and suites use)."""
    task: str | None
    """The installed task it scores (None: not obtainable here)."""
    shots: int
    baseline: float
    """Random-guess accuracy as a fraction (DCLM v2)."""
    kind: str
    """DCLM's task type: multiple choice, schema, language modeling, question answering."""


def _e(name, shots, baseline_pct, kind, task="=") -> Entry:
    return Entry(name, name if task == "=" else task, shots, baseline_pct / 100, kind)


MC, LM, SCHEMA, QA = "multiple choice", "language modeling", "schema", "question answering"
UNAVAILABLE = None  # data not obtainable from the package registries (see the module doc)

# DCLM's v2 table, in its order. (commonsense_qa's 40.3 is the table's value, not 1/5.)
DCLM: dict[str, Entry] = {e.name: e for e in [
    _e("mmlu_zeroshot", 0, 25, MC, "mmlu"),
    _e("hellaswag_zeroshot", 0, 25, MC, "hellaswag"),
    _e("jeopardy", 10, 0, LM),
    _e("triviaqa_sm_sub", 3, 0, QA, "triviaqa"),
    _e("gsm8k_cot", 3, 0, QA, UNAVAILABLE),
    _e("agi_eval_sat_math_cot", 3, 0, QA, UNAVAILABLE),
    _e("aqua_cot", 3, 0, QA, UNAVAILABLE),
    _e("svamp_cot", 3, 0, QA, UNAVAILABLE),
    _e("bigbench_qa_wikidata", 10, 0, LM),
    _e("arc_easy", 10, 25, MC),
    _e("arc_challenge", 10, 25, MC),
    _e("mmlu_fewshot", 5, 25, MC, "mmlu"),
    _e("bigbench_misconceptions", 10, 50, MC),
    _e("copa", 0, 50, MC),
    _e("siqa", 10, 50, MC),
    _e("commonsense_qa", 10, 40.3, MC),
    _e("piqa", 10, 50, MC),
    _e("openbook_qa", 0, 25, MC),
    _e("bigbench_novel_concepts", 10, 25, MC),
    _e("bigbench_strange_stories", 10, 50, MC),
    _e("bigbench_strategy_qa", 10, 50, MC),
    _e("lambada_openai", 0, 0, LM),
    _e("hellaswag", 10, 25, MC),
    _e("winograd", 0, 50, SCHEMA, UNAVAILABLE),
    _e("winogrande", 0, 50, SCHEMA),
    _e("bigbench_conlang_translation", 0, 0, LM),
    _e("bigbench_language_identification", 10, 25, MC),
    _e("bigbench_conceptual_combinations", 10, 33, MC),
    _e("bigbench_elementary_math_qa", 10, 25, MC),
    _e("bigbench_dyck_languages", 10, 0, LM),
    _e("agi_eval_lsat_ar", 3, 25, MC, UNAVAILABLE),
    _e("bigbench_cs_algorithms", 10, 0, LM),
    _e("bigbench_logical_deduction", 10, 25, MC),
    _e("bigbench_operators", 10, 0, LM),
    _e("bigbench_repeat_copy_logic", 10, 0, LM),
    _e("simple_arithmetic_nospaces", 10, 0, LM, UNAVAILABLE),
    _e("simple_arithmetic_withspaces", 10, 0, LM, UNAVAILABLE),
    _e("math_qa", 10, 20, MC, UNAVAILABLE),
    _e("logi_qa", 10, 25, MC, UNAVAILABLE),
    _e("pubmed_qa_labeled", 10, 0, LM, UNAVAILABLE),
    _e("squad", 10, 0, LM),
    _e("agi_eval_lsat_rc", 3, 25, MC, UNAVAILABLE),
    _e("agi_eval_lsat_lr", 3, 25, MC, UNAVAILABLE),
    _e("coqa", 0, 0, LM),
    _e("bigbench_understanding_fables", 10, 25, MC),
    _e("boolq", 10, 62, MC),
    _e("agi_eval_sat_en", 3, 25, MC, UNAVAILABLE),
    _e("winogender_mc_female", 10, 50, MC, UNAVAILABLE),
    _e("winogender_mc_male", 10, 50, MC, UNAVAILABLE),
    _e("enterprise_pii_classification", 10, 50, MC, UNAVAILABLE),
    _e("bbq", 3, 50, MC, UNAVAILABLE),
    _e("gpqa_main", 5, 25, MC, UNAVAILABLE),
    _e("gpqa_diamond", 5, 25, MC, UNAVAILABLE),
]}

CORE = [
    "hellaswag_zeroshot", "jeopardy", "bigbench_qa_wikidata", "arc_easy", "arc_challenge", "copa",
    "commonsense_qa", "piqa", "openbook_qa", "lambada_openai", "hellaswag", "winograd",
    "winogrande", "bigbench_dyck_languages", "agi_eval_lsat_ar", "bigbench_cs_algorithms",
    "bigbench_operators", "bigbench_repeat_copy_logic", "squad", "coqa", "boolq",
    "bigbench_language_identification",
]
EXTENDED = list(DCLM)

# The DoReMi reference harness's downstream tasks: 1-shot generative QA, greedy, exact match.
DOREMI = {e.name: e for e in [
    Entry("triviaqa", "triviaqa", 1, 0.0, QA),
    Entry("nq_open", "nq_open", 1, 0.0, QA),
    Entry("squad_qa", "squad_qa", 1, 0.0, QA),
]}

SUITES = {"core": CORE, "extended": EXTENDED, "doremi": list(DOREMI)}
ENTRIES = {**DCLM, **DOREMI}


SUITE, ENTRY, TASK, PATH, DOMAINS, DATASET = "suite", "entry", "task", "path", "domains", "dataset"


@dataclass(frozen=True)
class TaskRef:
    """One name of a `--tasks` value (`eval.tasks`) and what it names: a suite (core, extended,
    doremi), a DCLM or DoReMi entry, an installed task (or a file or folder in the working
    directory), a path to a user's task, `domains` (per-domain log-ppl, not a downstream task) or
    `dataset` (every task the dataset generated)."""

    kind: str
    name: str

    def __str__(self) -> str:
        return self.name


TasksSpec = str | Sequence[str | TaskRef]
"""A `--tasks` value: comma-separated names, or a list of names (a YAML list)."""


def parse_tasks(spec: TasksSpec) -> list[TaskRef]:
    """The names of a `--tasks` value, each once, in order, with their kinds (an empty list when
    it names nothing). Every reader of a tasks value goes through here."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    refs = []
    for part in parts:
        if isinstance(part, TaskRef):
            refs.append(part)
        elif not isinstance(part, str):
            raise UserError(f"tasks: {part!r} is not a task name; give names as strings.")
        elif part.strip():
            refs.append(TaskRef(_kind(part.strip()), part.strip()))
    return list(dict.fromkeys(refs))


def tasks_problem(spec: TasksSpec) -> str | None:
    """What is wrong with a tasks value as a config setting, in a few words (None: nothing); the
    config names the file and key."""
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list | tuple) or not all(isinstance(n, str | TaskRef) for n in names):
        return "give task names, comma-separated or as a list of strings"
    return None if parse_tasks(spec) else "names no task"


def _kind(name: str) -> str:
    if name in SUITES:
        return SUITE
    if name in (DOMAINS, DATASET):
        return name
    if name in ENTRIES:
        return ENTRY
    if "/" in name or os.sep in name or name.endswith(".jsonl"):
        return PATH
    return TASK


def spec_text(spec: TasksSpec) -> str:
    """A tasks value as the user would write it on the command line (for messages)."""
    return spec if isinstance(spec, str) else ",".join(map(str, spec))


def entries(spec: TasksSpec, shots: int | None = None) -> list[Entry]:
    """The entries a `--tasks` value names: a suite (core, extended, doremi), DCLM entry names,
    installed task names, or paths of a user's task files, comma-separated. `shots` overrides.
    `domains` is no downstream task: it names none."""
    out: list[Entry] = []
    for ref in parse_tasks(spec):
        if ref.kind == SUITE:
            out += [ENTRIES[n] for n in SUITES[ref.name]]
        elif ref.kind == ENTRY:
            out.append(ENTRIES[ref.name])
        elif ref.kind in (TASK, PATH):  # an installed task by its own name, or a user's task
            out.append(Entry(ref.name, ref.name, -1, 0.0, ""))
        elif ref.kind == DATASET:
            raise ValueError("--tasks dataset is expanded by locate(), which knows the dataset")
    if not out:
        raise UserError(f"--tasks {spec_text(spec)!r}: names no task; use core, extended, doremi "
                        "or task names.")
    if shots is not None:
        out = [Entry(e.name, e.task, shots, e.baseline, e.kind) for e in out]
    return list({e.name: e for e in out}.values())


@dataclass
class Aggregate:
    name: str
    """E.g. 'CORE (20/22)': the entries scored out of the suite's."""
    value: float | None
    present: int
    total: int
    missing: list[str]
    bpb: float | None = None
    """Mean gold bits per byte over the entries scored that have one (RegMix's
    `downstream:<suite>` target: smooth where accuracy is still at chance)."""

    def to_json(self) -> dict:
        return dict(vars(self))


def aggregate(suite: str, centred: dict[str, float], bpb: dict[str, float] | None = None) -> Aggregate:
    """A suite's mean centred accuracy over the entries scored (`centred`: entry -> value), and
    its mean gold bits per byte (`bpb`: entry -> value)."""
    names = SUITES[suite]
    scored = [centred[n] for n in names if n in centred]
    missing = [n for n in names if n not in centred]
    bits = [bpb[n] for n in names if n in (bpb or {})]
    label = {"core": "CORE", "extended": "EXTENDED", "doremi": "DoReMi QA"}[suite]
    return Aggregate(
        name=f"{label} ({len(scored)}/{len(names)})",
        value=sum(scored) / len(scored) if scored else None,
        present=len(scored),
        total=len(names),
        missing=missing,
        bpb=sum(bits) / len(bits) if bits else None,
    )


def locate(spec: TasksSpec, shots: int | None, roots: list[Path]) -> list[tuple[Entry, Path]]:
    """Each entry `spec` names with the folder or file of its task, looked up in order as a path
    (a user's task), in `roots` (a dataset's own tasks first), then in the installed cache. A
    task named but not installed is an error naming the command that installs it; a suite goes
    on with what is installed, says what is missing, and fails only when nothing is."""
    refs = _expand_dataset(parse_tasks(spec), roots)
    for ref in refs:
        if ref.kind == PATH and not Path(ref.name).exists():
            raise UserError(f"--tasks {ref.name}: no such task file or folder.")
    found = installed(cache_dir())
    for root in reversed(roots):  # the first root wins
        found.update(installed(root))
    out, missing = [], []
    for e in entries(refs, shots):
        if e.task is None:
            continue  # not obtainable here: listed as missing by its suite's aggregate
        if Path(e.task).exists():
            out.append((e, Path(e.task)))
        elif e.task in found:
            out.append((e, found[e.task]))
        else:
            missing.append(e.task)
    missing = sorted(set(missing))
    hint = f"install with: mixtune tasks download --tasks {','.join(missing)}"
    named = {r.name for r in refs if r.kind != SUITE}
    if missing and (named & set(missing) or not out):
        raise UserError(f"--tasks {spec_text(refs)}: not installed: {', '.join(missing)}; {hint}.")
    if missing:
        log.warning("tasks not installed, left out: %s (%s)", ", ".join(missing), hint)
    return out


def _expand_dataset(refs: list[TaskRef], roots: list[Path]) -> list[TaskRef]:
    """`dataset`: every task of the dataset's own tasks/ folder (generated with synthetic data)."""
    if not any(r.kind == DATASET for r in refs):
        return refs
    own = sorted(installed(roots[0])) if roots else []
    if not own:
        raise UserError(
            "--tasks dataset: this dataset has no tasks of its own (generated datasets do; a "
            "prepared corpus does not): name installed tasks instead (mixtune tasks list)."
        )
    out: list[TaskRef] = []
    for r in refs:
        out += [TaskRef(TASK, name) for name in own] if r.kind == DATASET else [r]
    return list(dict.fromkeys(out))
