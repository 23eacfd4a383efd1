"""The reference of every `mixtune run` YAML key, generated from the typed configs.

`mixtune config` prints it; docs/run-config.md is this text (a test keeps the two equal), so the
documentation cannot drift from what the loader accepts.
"""

from __future__ import annotations

import types
import typing
from dataclasses import is_dataclass

import yaml

from mixtune import schema
from mixtune.data.config import PrepareSettings
from mixtune.eval.config import TaskSelection
from mixtune.mixing import METHOD_OPTIONS
from mixtune.pipeline.config import (
    PIPELINE_OWNED,
    DataConfig,
    RunConfig,
    StageSpec,
)
from mixtune.process.config import ProcessSettings
from mixtune.synthetic import SyntheticConfig, SyntheticDomain
from mixtune.train.config import TrainSettings

INTRO = """# `mixtune run` configuration keys

Generated from the typed configs (`mixtune config` prints this page). Every key is checked when
the file is loaded, before any stage runs: an unknown key or a bad value fails at once, naming the
key and the allowed values. Relative paths are relative to the YAML file.
"""

SECTIONS = [
    ("top level", RunConfig, ()),
    ("data", DataConfig, ()),
    ("data.synthetic", SyntheticConfig, ()),
    ("data.synthetic.domains[]", SyntheticDomain, ()),
    ("data.prepare", PrepareSettings, ()),
    ("data.process", ProcessSettings, ()),
    ("proxy, main", StageSpec, ()),
    ("eval", TaskSelection, ()),
]


def method_sections() -> list[tuple[str, type, tuple[str, ...]]]:
    """A section per built-in mixture method (a plug-in's options are documented with it), and
    one per mapping form of its keys (doremi.rounds)."""
    out = []
    for name in METHOD_OPTIONS.names():
        cls = METHOD_OPTIONS.get(name)
        if not cls.__module__.startswith("mixtune."):
            continue
        out.append((f"{name} (the options of mixtures: {name})", cls, ("reference",)))
        for leaf in schema.leaves(cls):
            nested = [a for a in typing.get_args(leaf.type) if is_dataclass(a)]
            if nested and typing.get_origin(leaf.type) in (typing.Union, types.UnionType):
                out.append((f"{name}.{leaf.key} (the mapping form)", nested[0], ()))
    return out


def run_config_reference() -> str:
    parts = [INTRO]
    for title, cls, skip in [*SECTIONS, *method_sections(),
                             ("train", TrainSettings, tuple(PIPELINE_OWNED))]:
        parts.append(f"\n## {title}\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n")
        for leaf in schema.leaves(cls):
            if leaf.key in skip or leaf.key == schema.METHOD:
                continue
            parts.append(f"| `{leaf.key}` | {_type(leaf.type)} | {_default(leaf)} | "
                         f"{leaf.doc.replace('|', '/')} |\n")
        if cls is RunConfig:
            parts.append("| `<method>` | mapping | (see below) | The options of a mixture method "
                         "named in `mixtures:`, in a section under its name (`doremi:`). |\n")
    parts.append(
        "\nSet per stage by the pipeline, so not in `train:`: "
        + ", ".join(f"`{k}`" for k in PIPELINE_OWNED)
        + " (use `proxy:`, `main:`, `mixtures:`, `reference_weights:` and each method's section).\n"
    )
    return "".join(parts)


def _type(tp) -> str:
    text = schema.describe_type(tp)
    for article in ("an ", "a "):
        if text.startswith(article):
            return text[len(article):]
    return text


def _default(leaf: schema.Leaf) -> str:
    if leaf.required:
        return "required"
    if is_dataclass(leaf.default):
        return "(see below)"
    return f"`{yaml.safe_dump(leaf.default, default_flow_style=True).strip().removesuffix('...').strip()}`"
