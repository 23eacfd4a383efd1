"""The operations a processing pipeline is made of, by name, with their arguments.

A pipeline is a list of steps `{op: NAME, ARG: VALUE, ...}` (DCLM's YAML calls the key `func`;
both are accepted). Each operation is a datatrove block: datatrove's own where it has one, else
one of mixtune's with the same contract. Per-document operations (filters, line modifiers) also
take `domains: [...]` to apply to some domains only; dedup operations see every document.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from mixtune.errors import UserError


@dataclass(frozen=True)
class Op:
    name: str
    summary: str
    build: Callable[..., Any]
    """The block's class (its keyword arguments are the step's arguments)."""
    dedup: str | None = None
    """None for a per-document operation; else how it deduplicates: exact, minhash or bff."""
    hidden: tuple[str, ...] = ()
    """Constructor arguments a step may not set (writers, hub downloads)."""

    def arguments(self) -> dict[str, Any]:
        params = inspect.signature(self.build.__init__).parameters
        return {k: p.default for k, p in params.items()
                if k != "self" and k not in self.hidden
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _ops() -> dict[str, Op]:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
        RegexFilter,
    )

    from mixtune.process.bff import BFFDedup
    from mixtune.process.dedup import ExactDedup, MinhashDedup
    from mixtune.process.filters import (
        FastTextQualityFilter,
        LengthFilter,
        LineFilter,
        RefinedWebLines,
        SampleFilter,
    )
    from mixtune.process.language import LanguageFilter

    writer = ("exclusion_writer",)
    ops = [
        Op("gopher_quality", "Gopher quality rules: word counts, word length, symbol and "
           "non-alphabetic ratios, bullets, ellipses, stop words", GopherQualityFilter, hidden=writer),
        Op("gopher_repetition", "Gopher repetition rules: duplicate lines, paragraphs and n-grams",
           GopherRepetitionFilter, hidden=writer),
        Op("c4_quality", "C4 rules: lines ending in punctuation, short lines, curly braces, "
           "lorem ipsum, javascript and policy lines", C4QualityFilter, hidden=writer),
        Op("fineweb_quality", "FineWeb line rules: punctuation, short lines, duplicated lines, "
           "newlines", FineWebQualityFilter, hidden=writer),
        Op("length", "length limits in characters and words", LengthFilter),
        Op("regex_filter", "drop documents matching a regular expression", RegexFilter,
           hidden=writer),
        Op("line_filter", "drop lines matching patterns, or with too few words (boilerplate)",
           LineFilter),
        Op("refinedweb_lines", "RefinedWeb line corrections (upper case, numbers, counters, "
           "one-word lines, 'read more'); drop pages losing > 5% of words", RefinedWebLines),
        Op("language", "language identification (lingua, offline) and filter", LanguageFilter),
        Op("fasttext_quality", "DCLM's quality classifier: keep pages whose fastText score of a "
           "label reaches a threshold (a model file you give)", FastTextQualityFilter),
        Op("sample", "keep each document with probability rate (seeded per task)",
           SampleFilter),
        Op("exact_dedup", "exact dedup of normalised text (lower case, whitespace collapsed)",
           ExactDedup, dedup="exact"),
        Op("minhash_dedup", "fuzzy dedup: datatrove's multi-stage MinHash LSH", MinhashDedup,
           dedup="minhash"),
        Op("bff_dedup", "DCLM-Baseline's paragraph+document Bloom-filter dedup (old-both)",
           BFFDedup, dedup="bff"),
    ]
    return {op.name: op for op in ops}


_OPS: dict[str, Op] | None = None


def operations() -> dict[str, Op]:
    global _OPS
    if _OPS is None:
        _OPS = _ops()
    return _OPS


def register(op: Op) -> Op:
    """Add an operation (a block of one's own, in a file of its own): pipelines name it from then
    on, `--list-operations` describes it, and its arguments are checked like the built-ins'. Local
    tasks are forked, so they know it; register it where Slurm or Ray tasks import too."""
    known = operations()
    if op.name in known and known[op.name] != op:
        raise ValueError(f"processing operation {op.name!r} is already registered")
    known[op.name] = op
    return op


STEP_KEYS = ("op", "func", "domains")


@dataclass
class Step:
    """One checked step of a pipeline."""

    op: str
    args: dict[str, Any]
    domains: list[str] | None = None

    @property
    def dedup(self) -> str | None:
        return operations()[self.op].dedup

    def block(self):
        return operations()[self.op].build(**self.args)

    def to_dict(self) -> dict:
        return {"op": self.op, **self.args, **({"domains": self.domains} if self.domains else {})}


def parse_step(raw: Any, where: str) -> Step:
    """A step from its YAML form; a UserError naming `where`, the operation or the argument."""
    ops = operations()
    if not isinstance(raw, dict):
        raise UserError(f"{where}: a step is a mapping like {{op: gopher_quality, ...}}, got "
                        f"{raw!r}.")
    raw = dict(raw)
    name = raw.pop("op", None) or raw.pop("func", None)
    if name is None:
        raise UserError(f"{where}: the step names no operation; add `op: NAME` (one of "
                        f"{', '.join(ops)}).")
    if name not in ops:
        raise UserError(f"{where}: unknown operation {name!r}; the operations are "
                        f"{', '.join(ops)} (`mixtune process --list` describes them).")
    op = ops[name]
    domains = raw.pop("domains", None)
    if domains is not None:
        if op.dedup is not None:
            raise UserError(f"{where}: {name} sees every document; `domains:` only limits "
                            "per-document operations.")
        if isinstance(domains, str):
            domains = [domains]
        if not (isinstance(domains, list) and all(isinstance(d, str) for d in domains)):
            raise UserError(f"{where}: domains: want a list of domain names, got {domains!r}.")
    allowed = op.arguments()
    for key, value in raw.items():
        if key not in allowed:
            raise UserError(f"{where}: {name} has no argument {key!r}; its arguments are "
                            f"{', '.join(allowed) or 'none'}.")
        _check_value(where, name, key, value, allowed[key])
    step = Step(name, raw, domains)
    if name == "fasttext_quality":
        _check_fasttext_model(where, raw.get("model"))
    try:
        step.block()  # the block checks its own values (language codes, ranges, ...)
    except (TypeError, ValueError, re.error, UserError) as err:
        raise UserError(f"{where}: {name}: {err}") from None
    for key, (lo, hi) in _RANGES.get(name, {}).items():
        value = step.args.get(key, allowed.get(key))
        if isinstance(value, (int, float)) and not lo <= value <= hi:
            raise UserError(f"{where}: {name} {key}: {value} is outside [{lo}, {hi}].")
    return step


def _check_fasttext_model(where: str, model: Any) -> None:
    """The model file is read in the tasks: a wrong one is named now, before any work."""
    from mixtune.process.filters import fasttext_model_problem

    if model is None:
        raise UserError(f"{where}: fasttext_quality needs `model: PATH`, a fastText "
                        "classifier file (DCLM's is openlm-research's "
                        "fasttext_oh_eli5.bin; download it once and give its path).")
    problem = fasttext_model_problem(str(model))
    if problem is not None:
        raise UserError(f"{where}: fasttext_quality model {model}: {problem}.")


_RANGES = {"sample": {"rate": (0.0, 1.0)}, "language": {"threshold": (0.0, 1.0)},
           "fasttext_quality": {"threshold": (0.0, 1.0)}, "length": {"min_chars": (0, 1e18),
                                                                    "min_words": (0, 1e18)}}
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,),
          "list": (list, tuple), "tuple": (list, tuple)}


def _check_value(where: str, op: str, key: str, value: Any, default: Any) -> None:
    if value is None:
        return
    if default is inspect.Parameter.empty or default is None:
        return _check_annotated(where, op, key, value)
    want = type(default)
    ok = isinstance(value, want) or (want is float and isinstance(value, int)) or \
        (want in (tuple, list) and isinstance(value, (tuple, list)))
    if isinstance(value, bool) and want is not bool:
        ok = False
    if not ok:
        raise UserError(f"{where}: {op} {key}: want {want.__name__} (default {default!r}), got "
                        f"{value!r}.")


def _check_annotated(where: str, op: str, key: str, value: Any) -> None:
    """A value checked against the parameter's annotation ("int | None", "list[str] | None")."""
    block = operations()[op].build
    annotation = inspect.signature(block.__init__).parameters[key].annotation
    names = [t.strip().split("[")[0] for t in str(annotation).split("|")]
    allowed = tuple(t for n in names for t in _TYPES.get(n, ()))
    if not allowed or any(n not in _TYPES and n != "None" for n in names):
        return  # an annotation we do not read: the block checks the value itself
    if isinstance(value, bool) and bool not in allowed or not isinstance(value, allowed):
        raise UserError(f"{where}: {op} {key}: want {str(annotation)}, got {value!r}.")


def domains_problem(steps: list[dict], domains: Collection[str]) -> str | None:
    """What is wrong with the `domains:` of `steps` (as `Step.to_dict` gives them) for a corpus
    of `domains`, or None: a domain the corpus lacks would make its step filter nothing of it,
    silently (a misspelt name)."""
    for i, step in enumerate(steps):
        unknown = [d for d in step.get("domains") or () if d not in domains]
        if unknown:
            return (f"step {i + 1} ({step['op']}): domains: {', '.join(unknown)}: not "
                    f"{'a domain' if len(unknown) == 1 else 'domains'} of the corpus, whose "
                    f"domains are {', '.join(sorted(domains))}; correct the name or remove it.")
    return None


def describe() -> list[tuple[str, str, str]]:
    """(name, summary, arguments with defaults) of every operation, for --list and the README."""
    rows = []
    for op in operations().values():
        args = ", ".join(f"{k}={'?' if v is inspect.Parameter.empty else repr(v)}"
                         for k, v in op.arguments().items())
        rows.append((op.name, op.summary, args))
    return rows
