"""The reference of every `mixtune run` YAML key, generated from the typed configs.

`mixtune config` prints it; docs/run-config.md is this text (a test keeps the two equal), so the
documentation cannot drift from what the loader accepts.
"""

from __future__ import annotations

from dataclasses import is_dataclass

import yaml

from mixtune import schema
from mixtune.config import (
    PIPELINE_OWNED,
    DataConfig,
    PrepareOptions,
    Rounds,
    RunConfig,
    StageSpec,
    SyntheticConfig,
    SyntheticDomain,
    TrainConfig,
)
from mixtune.mixing.doremi import DoReMiConfig

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
    ("data.prepare", PrepareOptions, ("sources", "out", "overwrite")),
    ("proxy, main", StageSpec, ()),
    ("rounds (the mapping form; or a number of rounds)", Rounds, ()),
    ("doremi", DoReMiConfig, ("reference",)),
    ("train", TrainConfig, tuple(PIPELINE_OWNED)),
]


def run_config_reference() -> str:
    parts = [INTRO]
    for title, cls, skip in SECTIONS:
        parts.append(f"\n## {title}\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n")
        for leaf in schema.leaves(cls):
            if leaf.key in skip or leaf.key == schema.METHOD:
                continue
            parts.append(f"| `{leaf.key}` | {_type(leaf.type)} | {_default(leaf)} | "
                         f"{leaf.doc.replace('|', '/')} |\n")
    parts.append(
        "\nSet per stage by the pipeline, so not in `train:`: "
        + ", ".join(f"`{k}`" for k in PIPELINE_OWNED)
        + " (use `proxy:`, `main:`, `mixtures:`, `reference_weights:` and `doremi:`).\n"
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
