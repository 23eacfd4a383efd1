"""Task formats: what an item of each format holds, how it is prompted, scored and measured.

The formats are llm-foundry's in-context-learning formats, which DCLM's CORE uses, plus
generative QA as in the DoReMi reference harness:

    multiple_choice    {"query": str, "choices": [str, ...], "gold": int}
    schema             {"context_options": [str, ...], "continuation": str, "gold": int}
    language_modeling  {"context": str, "continuation": str}
    generative_qa      {"context": str, "answers": [str, ...]}

A format is one `TaskFormat` subclass registered in `FORMATS` (its order is the order in which a
bare file's first item is matched against them): its fields and their checks, a shot with its
answer filled in, the `Prompt` of an item (what is scored), the metrics of an item from those
scores, the accuracy a suite centres, and how lm-evaluation-harness scores it, if it can. Nothing
else in the package asks which format a task has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from mixtune.errors import UserError
from mixtune.eval import metrics

if TYPE_CHECKING:
    from mixtune.eval.scoring import Scored

TEXT, TEXTS, INDEX = "text", "texts", "index"
"""Kinds of item fields: a string, a non-empty list of strings, the index of the gold option."""


@dataclass
class Prompt:
    """What to score for one item: each context with each continuation. Multiple choice: one
    context, a continuation per choice. Schema: a context per option, one continuation. Language
    modelling: one of each. Generative QA: a context and the accepted answers."""

    contexts: list[str]
    continuations: list[str]
    gold: int = 0
    answers: list[str] | None = None
    choice_texts: list[str] | None = None
    """The choices without delimiter, which lm-eval's acc_norm divides by (characters)."""


@dataclass(frozen=True)
class LmEval:
    """How lm-evaluation-harness scores a format: the parts of its task YAML that depend on it."""

    output_type: str
    metrics: tuple[str, ...]
    fields: dict[str, str]
    """doc_to_text, doc_to_choice, doc_to_target: the item fields they read."""


class TaskFormat(ABC):
    """One task format. Subclasses set the class attributes and the three item methods."""

    name: ClassVar[str]
    fields: ClassVar[dict[str, str]]
    """Each field of an item and its kind (TEXT, TEXTS or INDEX)."""
    options: ClassVar[str | None] = None
    """The TEXTS field an INDEX field points into."""
    metric_names: ClassVar[tuple[str, ...]]
    """The keys of `item_metrics`, in the order results list them."""
    primary: ClassVar[str]
    """The accuracy a suite centres and averages (DCLM's, llm-foundry's, for the format)."""
    max_new_tokens: ClassVar[int] = 0
    """Tokens of greedy continuation the model writes after each context (0: none needed)."""
    lm_eval: ClassVar[LmEval | None] = None
    """None: lm-evaluation-harness needs task-specific code for it; mixtune scores it alone."""

    def check(self, item: dict, where: str) -> None:
        """Refuse an item that does not fit the format, naming the key and what is expected."""
        for key in self.fields:
            if key not in item:
                raise UserError(f"{where}: a {self.name} item needs {key!r}.")
        for key, kind in self.fields.items():
            value = item[key]
            if kind == TEXT and not isinstance(value, str):
                raise UserError(f"{where}: {key!r} must be a string, not {type(value).__name__}.")
            if kind == TEXTS and not (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            ):
                raise UserError(f"{where}: {key!r} must be a non-empty list of strings.")
        for key, kind in self.fields.items():
            if kind == INDEX:
                _check_index(item[key], item[self.options], where)

    @abstractmethod
    def answered(self, item: dict, delimiter: str) -> str:
        """The item as a few-shot example: its context, the delimiter, its gold answer."""
        raise NotImplementedError

    @abstractmethod
    def prompt(self, item: dict, head: str, delimiter: str) -> Prompt:
        """What to score for the item, after `head` (prefix and few-shot examples)."""
        raise NotImplementedError

    @abstractmethod
    def item_metrics(self, prompt: Prompt, scores: list[list[Scored]],
                     generated: list[str]) -> dict:
        """The item's metrics (the keys of `metric_names`): `scores[i][j]` scores continuation j
        after context i; `generated[i]` is the greedy continuation of context i (if
        `max_new_tokens`)."""
        raise NotImplementedError


def _check_index(gold, options: list, where: str) -> None:
    if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(options):
        raise UserError(
            f"{where}: gold {gold!r} is not the index of one of its {len(options)} options."
        )


class ChoiceFormat(TaskFormat):
    """A format whose item is a choice between options, one of them gold."""

    metric_names = metrics.CHOICE_METRICS
    primary = "acc_per_token"


class MultipleChoice(ChoiceFormat):
    name = "multiple_choice"
    fields = {"query": TEXT, "choices": TEXTS, "gold": INDEX}
    options = "choices"
    lm_eval = LmEval("multiple_choice", ("acc", "acc_norm"),
                     {"doc_to_text": "query", "doc_to_choice": "choices", "doc_to_target": "gold"})

    def answered(self, item: dict, delimiter: str) -> str:
        return item["query"] + delimiter + item["choices"][item["gold"]]

    def prompt(self, item: dict, head: str, delimiter: str) -> Prompt:
        return Prompt([head + item["query"]], [delimiter + c for c in item["choices"]],
                      item["gold"], choice_texts=list(item["choices"]))

    def item_metrics(self, prompt: Prompt, scores: list[list[Scored]],
                     generated: list[str]) -> dict:
        lengths = [len(c) for c in prompt.choice_texts]
        return metrics.choices(scores[0], prompt.gold, lengths, prompt.continuations)


class Schema(ChoiceFormat):
    name = "schema"
    fields = {"context_options": TEXTS, "continuation": TEXT, "gold": INDEX}
    options = "context_options"

    def answered(self, item: dict, delimiter: str) -> str:
        return item["context_options"][item["gold"]] + delimiter + item["continuation"]

    def prompt(self, item: dict, head: str, delimiter: str) -> Prompt:
        return Prompt([head + o for o in item["context_options"]],
                      [delimiter + item["continuation"]], item["gold"])

    def item_metrics(self, prompt: Prompt, scores: list[list[Scored]],
                     generated: list[str]) -> dict:
        # One group per option, all with the same continuation: its length is every choice's.
        option_scores = [s[0] for s in scores]
        lengths = [len(prompt.continuations[0])] * len(prompt.contexts)
        return metrics.choices(option_scores, prompt.gold, lengths, prompt.continuations)


class LanguageModeling(TaskFormat):
    name = "language_modeling"
    fields = {"context": TEXT, "continuation": TEXT}
    metric_names = ("acc", "bpb")
    primary = "acc"
    lm_eval = LmEval("loglikelihood", ("acc",),
                     {"doc_to_text": "context", "doc_to_target": "continuation"})

    def answered(self, item: dict, delimiter: str) -> str:
        return item["context"] + delimiter + item["continuation"]

    def prompt(self, item: dict, head: str, delimiter: str) -> Prompt:
        return Prompt([head + item["context"]], [delimiter + item["continuation"]])

    def item_metrics(self, prompt: Prompt, scores: list[list[Scored]],
                     generated: list[str]) -> dict:
        return metrics.language_modeling(scores[0][0], prompt.continuations[0])


class GenerativeQA(TaskFormat):
    name = "generative_qa"
    fields = {"context": TEXT, "answers": TEXTS}
    metric_names = ("acc", "bpb")
    primary = "acc"
    max_new_tokens = 20  # the DoReMi reference harness's answer length

    def answered(self, item: dict, delimiter: str) -> str:
        return item["context"] + delimiter + item["answers"][0]

    def prompt(self, item: dict, head: str, delimiter: str) -> Prompt:
        # The first answer is scored as a continuation too: its bits per byte.
        return Prompt([head + item["context"]], [delimiter + item["answers"][0]],
                      answers=list(item["answers"]))

    def item_metrics(self, prompt: Prompt, scores: list[list[Scored]],
                     generated: list[str]) -> dict:
        return metrics.question_answering(generated[0], prompt.answers, scores[0][0],
                                          prompt.continuations[0])


FORMATS: dict[str, TaskFormat] = {}


def register(fmt: TaskFormat) -> TaskFormat:
    """Make `fmt` a format tasks may have (task.json's `format`, a bare file's keys)."""
    if fmt.name in FORMATS:
        raise ValueError(f"task format {fmt.name!r} is registered twice")
    FORMATS[fmt.name] = fmt
    return fmt


register(MultipleChoice())
register(Schema())
register(LanguageModeling())
register(GenerativeQA())


def infer_format(item: dict, where: str) -> TaskFormat:
    """The first format whose fields the item has (a bare file's format, from its first item)."""
    for fmt in FORMATS.values():
        if all(k in item for k in fmt.fields):
            return fmt
    expected = "; ".join(f"{f.name}: {', '.join(f.fields)}" for f in FORMATS.values())
    raise UserError(f"{where}: keys {sorted(item)} match no task format ({expected}).")
