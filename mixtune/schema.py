"""Typed settings: a dataclass is the one description of a group of options.

Every option is a dataclass field with a type, a default, an optional rule (`check`) and a
docstring under the field, as torchtitan writes its configs. From that one description this module

- parses a user's mapping (a YAML section, or CLI flags) into the dataclass, checking every key and
  value and naming the key and the allowed values when one is wrong (`parse`);
- checks an instance built in Python the same way (`check`);
- turns an instance back into the flat mapping a user would write (`to_flat`), which is also what
  identifies a run (`identity`);
- adds one argparse flag per option, with its docstring and default as help (`add_flags`,
  `from_flags`), and lists every key for the documentation (`leaves`).

Nesting comes in two kinds. A *section* (`section(Cls, prefix="eval")`) groups options in Python
(`cfg.eval.every`) while its keys stay flat outside (`eval_every`), so the CLI and YAML keep one short
name per option. A field typed as a dataclass without `section` is a nested mapping outside too
(`data: {synthetic: {...}}`). A section may have *variants* (`section(..., variants=REGISTRY)`): the
`method` key picks which dataclass it is (how the mixture is chosen), each with options of its own.

Nothing here imports torch: checking a config takes milliseconds, so a typo in a YAML file fails
before anything slow (torch's import alone takes seconds) has started.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from functools import cache
from typing import Any, Literal, Protocol, Union, get_args, get_origin

from mixtune.errors import UserError

Check = Callable[[Any], "str | None"]
"""A rule on one value: returns what is wrong with it ('must be at least 1'), or None."""

METHOD = "method"  # the key that picks a section's variant


class Variants(Protocol):
    """A registry of dataclasses a section can be, each with a ClassVar `method` naming it."""

    def get(self, name: str) -> type | None: ...

    def names(self) -> list[str]: ...


def setting(
    default: Any = MISSING,
    *,
    factory: Callable[[], Any] | Any = MISSING,
    check: Check | None = None,
    key: str | None = None,
    identity: bool = True,
    owned: Mapping[str, str] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> Any:
    """A field with a rule. `key` renames it outside (kept verbatim, no section prefix);
    `identity=False` for options that do not change what is computed (log cadence, device), so
    changing them never refuses a resume. For a nested dataclass: `owned` are keys the user may
    not set there ({key: who sets it}), `fixed` values the program supplies."""
    metadata = {"check": check, "key": key, "identity": identity, "owned": owned, "fixed": fixed}
    return field(default=default, default_factory=factory, metadata=metadata)


def section(cls: type, *, prefix: str = "", variants: Variants | None = None) -> Any:
    """A group of options kept flat outside: its keys are `prefix_key` (or `key` for prefix "")."""
    return field(default_factory=cls, metadata={"section": prefix, "variants": variants})


def named_sections(registry: Variants) -> Any:
    """Mappings beside this dataclass's own keys, each under a name the registry knows and parsed
    by the dataclass it gives for that name (`doremi: {eta: 0.03}`); {name: config} in Python.
    How a plug-in (a mixture method) brings its own options without a field of its own here."""
    return field(default_factory=dict, metadata={"named": registry})


# -- rules -------------------------------------------------------------------------------------


def at_least(n: float) -> Check:
    return lambda v: None if v >= n else f"must be at least {n}"


def positive(v) -> str | None:
    return None if v > 0 else "must be positive"


def in_range(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Check:
    text = f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"

    def rule(v) -> str | None:
        ok = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
        return None if ok else text

    return rule


def nonempty(v) -> str | None:
    return None if len(v) else "must not be empty"


# -- the description: leaves -------------------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """One option as the user sees it: its flat key, where it lives in Python, its rule and doc."""

    key: str
    path: tuple[str, ...]
    type: Any
    default: Any  # MISSING when the option is required
    doc: str
    check: Check | None
    identity: bool

    @property
    def required(self) -> bool:
        return self.default is MISSING


def leaves(cls: type, variants: Mapping[str, type] | None = None) -> list[Leaf]:
    """Every option of `cls`, sections flattened, in declaration order. `variants` picks the
    dataclass of a variant section by its field name (default: the section's default)."""
    return list(_cached_leaves(cls, tuple(sorted((variants or {}).items(), key=str))))


@cache
def _cached_leaves(cls: type, variants: tuple) -> tuple[Leaf, ...]:
    # Required options first (a command's --data and --out before its settings, whatever class
    # declared them), the rest in declaration order.
    return tuple(sorted(_leaves(cls, (), "", dict(variants)), key=lambda leaf: not leaf.required))


def _leaves(cls, path, prefix, chosen):
    docs, hints = field_docs(cls), _hints(cls)
    for f in fields(cls):
        if not f.init or "named" in f.metadata:
            continue
        if "section" in f.metadata:
            sub = _section_class(f, chosen.get(f.name))
            if f.metadata["variants"] is not None:
                yield _method_leaf(f, sub, path)
            yield from _leaves(sub, (*path, f.name), _join(prefix, f.metadata["section"]), {})
            continue
        default = f.default
        if f.default_factory is not MISSING:
            default = f.default_factory()
        md = f.metadata
        yield Leaf(
            key=md.get("key") or _join(prefix, f.name),
            path=(*path, f.name),
            type=hints[f.name],
            default=default,
            doc=docs.get(f.name, ""),
            check=md.get("check"),
            identity=md.get("identity", True),
        )


def _method_leaf(f, sub: type, path) -> Leaf:
    registry: Variants = f.metadata["variants"]

    def known(v) -> str | None:
        return None if registry.get(v) else f"must be one of {', '.join(registry.names())}"

    return Leaf(
        key=METHOD,
        path=(*path, f.name, METHOD),
        type=str,
        default=sub.method,
        doc=f"How the mixture is chosen: one of {', '.join(registry.names())}.",
        check=known,
        identity=True,
    )


def _section_class(f, chosen: type | None) -> type:
    return chosen or f.default_factory().__class__


def _join(prefix: str, name: str) -> str:
    return f"{prefix}_{name}" if prefix else name


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field (a string expression right after it), for `cls` and its
    bases; {} when the source cannot be read."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# -- parsing and checking ----------------------------------------------------------------------


class Labels:
    """How keys are named in messages: `--eval-every` for flags, `FILE: train.eval_every` for YAML."""

    def __init__(self, where: str = "", flags: bool = False, source: str = ""):
        self.where, self.flags, self.source = where, flags, source

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def __call__(self, key: str) -> str:
        if self.flags:
            return "--" + key.replace("_", "-")
        return f"{self.source}: {self.path(key)}" if self.source else self.path(key)

    def section(self) -> str:
        """The name of the mapping itself ('FILE: data')."""
        parts = [p for p in (self.source, self.where) if p]
        return ": ".join(parts) or "settings"

    def nested(self, key: str) -> Labels:
        return Labels(self.path(key), self.flags, self.source)


def parse(
    cls: type,
    raw: Any,
    source: str = "",
    *,
    flags: bool = False,
    owned: Mapping[str, str] | None = None,
    fixed: Mapping[str, Any] | None = None,
    labels: Labels | None = None,
):
    """Build `cls` from a flat mapping of user keys, refusing unknown keys and bad values.
    `source` names where the mapping comes from in messages (a file)."""
    label = labels or Labels(flags=flags, source=source)
    if not isinstance(raw, Mapping):
        raise UserError(f"{label.section()}: expected a mapping of settings, got {_kind(raw)}.")
    # Keys of `cls` that another part of the program sets: the caller's, and the class's own
    # (a ClassVar OWNED: {key: who sets it}). Refused by name, and left out of "known keys".
    owned = {**getattr(cls, "OWNED", {}), **(owned or {})}
    for key, who in owned.items():
        if key in raw:
            raise UserError(f"{label(key)}: not set here; {who}.")
    values = {**raw, **(fixed or {})}
    # Unknown keys first: a typo is the likeliest mistake, and it explains the others.
    chosen = {
        f.name: _pick_variant(f.metadata["variants"], values, _section_class(f, None), label)
        for f in fields(cls)
        if "section" in f.metadata and f.metadata["variants"] is not None
    }
    known = [leaf.key for leaf in leaves(cls, chosen)]
    named = [n for f in _named_fields(cls) for n in f.metadata["named"].names()]
    unknown = [k for k in values if k not in known and k not in named]
    if unknown:
        raise UserError(_unknown_message(unknown, label, [k for k in known if k not in owned]
                                         + named))
    obj = _build(cls, values, "", label, chosen)
    check(obj, labels=label)
    return obj


def _build(cls, values, prefix, label, chosen):
    kwargs = {}
    hints = _hints(cls)
    for f in fields(cls):
        if not f.init:
            continue
        md = f.metadata
        if "named" in md:
            registry = md["named"]
            kwargs[f.name] = {k: parse(registry.get(k), v, labels=label.nested(k))
                              for k, v in values.items() if k in registry.names()}
            continue
        if "section" in md:
            sub = chosen.get(f.name) or _section_class(f, None)
            kwargs[f.name] = _build(sub, values, _join(prefix, md["section"]), label, {})
            continue
        key = md.get("key") or _join(prefix, f.name)
        if key in values:
            kwargs[f.name] = convert(values[key], hints[f.name], label, key, md)
            _apply_rule(md.get("check"), kwargs[f.name], values[key], label(key))
        elif f.default is MISSING and f.default_factory is MISSING:
            raise UserError(f"{label(key)}: required, and not given.")
    return cls(**kwargs)


def _pick_variant(registry: Variants, values, default: type, label) -> type:
    if METHOD not in values:
        return default
    name = values[METHOD]
    picked = registry.get(name) if isinstance(name, str) else None
    if picked is None:
        raise UserError(
            f"{label(METHOD)} {name!r}: not a mixture method; use one of "
            f"{', '.join(registry.names())}{did_you_mean(name, registry.names())}."
        )
    return picked


def convert(value: Any, tp: Any, labels: Labels, key: str, md: Mapping | None = None) -> Any:
    """`value` as type `tp`, or a UserError naming the key, the value and what was expected."""
    origin, args = get_origin(tp), get_args(tp)
    bad = UserError(f"{labels(key)} {value!r}: not {describe_type(tp)}.")
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        # A mapping or list can only be one of the options: let that one name the problem inside.
        shaped = [a for a in options if _shape(a) == _shape(value)]
        if len(shaped) == 1 and _shape(value) != "scalar":
            return convert(value, shaped[0], labels, key, md)
        for arg in options:
            try:
                return convert(value, arg, labels, key, md)
            except UserError:
                continue
        raise bad
    if origin is Literal:
        if value in args and not isinstance(value, bool):
            return value
        raise UserError(
            f"{labels(key)} {value!r}: not allowed; use one of {', '.join(str(a) for a in args)}"
            f"{did_you_mean(value, [str(a) for a in args])}."
        )
    if origin is list:
        if not isinstance(value, list):
            raise bad
        return [convert(v, args[0], labels, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise bad
        return {k: convert(v, args[1], labels, f"{key}.{k}") for k, v in value.items()}
    if is_dataclass(tp):
        if isinstance(value, tp):  # already built (check() of an instance): check it in place
            check(value, labels=labels.nested(key))
            return value
        md = md or {}
        return parse(
            tp, value, owned=md.get("owned"), fixed=md.get("fixed"), labels=labels.nested(key)
        )
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise bad


def _shape(x) -> str:
    """'mapping', 'list' or 'scalar', for a value or for a type."""
    if isinstance(x, Mapping) or (isinstance(x, type) and is_dataclass(x)) or get_origin(x) is dict:
        return "mapping"
    if isinstance(x, list) or get_origin(x) is list:
        return "list"
    return "scalar"


def check(obj, source: str = "", *, flags: bool = False, labels: Labels | None = None) -> None:
    """Check every value of `obj` (types and rules), then each dataclass's `validate(labels)`."""
    label = labels or Labels(flags=flags, source=source)
    for leaf in leaves(type(obj), _variants_of(obj)):
        if leaf.key == METHOD:
            continue
        owner = _get(obj, leaf.path[:-1])
        value = getattr(owner, leaf.path[-1])
        if is_dataclass(value):  # a nested mapping: checked on its own, under its key
            check(value, labels=label.nested(leaf.key))
            continue
        value = convert(value, leaf.type, label, leaf.key)
        setattr(owner, leaf.path[-1], value)
        _apply_rule(leaf.check, value, value, label(leaf.key))
    for f in _named_fields(type(obj)):
        for name, value in getattr(obj, f.name).items():
            check(value, labels=label.nested(name))
    for part in _dataclasses(obj):
        validate = getattr(part, "validate", None)
        if validate is not None:
            validate(label)


def _apply_rule(rule: Check | None, value, given, name: str) -> None:
    """Raise what `rule` finds wrong with `value`, showing the value as the user gave it."""
    problem = rule(value) if (rule is not None and value is not None) else None
    if problem:
        raise UserError(f"{name} {given!r}: {problem}.")


def _get(obj, path):
    for name in path:
        obj = getattr(obj, name)
    return obj


def _dataclasses(obj):
    """`obj` and its sections (their values are all checked before any `validate` runs)."""
    yield obj
    for f in fields(obj):
        if "section" in f.metadata:
            yield from _dataclasses(getattr(obj, f.name))


def _named_fields(cls: type) -> list:
    return [f for f in fields(cls) if "named" in f.metadata]


def _variants_of(obj) -> dict[str, type]:
    return {
        f.name: type(getattr(obj, f.name))
        for f in fields(obj)
        if "section" in f.metadata and f.metadata["variants"] is not None
    }


def to_flat(obj) -> dict[str, Any]:
    """The options of `obj` as the flat mapping a user would write (YAML-safe values)."""
    out: dict[str, Any] = {}
    for leaf in leaves(type(obj), _variants_of(obj)):
        if leaf.key == METHOD:
            out[METHOD] = type(_get(obj, leaf.path[:-1])).method
        else:
            out[leaf.key] = _plain(_get(obj, leaf.path))
    for f in _named_fields(type(obj)):
        out.update({name: to_flat(value) for name, value in getattr(obj, f.name).items()})
    return out


def _plain(value):
    if is_dataclass(value):
        return to_flat(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def identity(obj) -> dict[str, Any]:
    """`to_flat(obj)` without the options that do not change what is computed."""
    flat = to_flat(obj)
    skip = {leaf.key for leaf in leaves(type(obj), _variants_of(obj)) if not leaf.identity}
    return {k: v for k, v in flat.items() if k not in skip}


def extend(cls: type, base, **values):
    """A checked `cls` (a subclass of `base`'s class, e.g. TrainConfig of TrainSettings) with
    `base`'s values and `values` (which may also replace some of base's): typed all the way, no
    round trip through flat keys."""
    own = {f.name: getattr(base, f.name) for f in fields(base) if f.init}
    obj = cls(**{**own, **values})
    check(obj)
    return obj


def replace(obj, **changes):
    """A checked copy of `obj` with some flat keys changed (`replace(cfg, steps=10, lr=0.1)`)."""
    return parse(type(obj), {**to_flat(obj), **changes})


# -- messages ----------------------------------------------------------------------------------


def describe_type(tp: Any, plural: bool = False) -> str:
    """'an integer', 'a list of strings', 'one of auto, fp32, bf16', 'a number or null', ..."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        text = " or ".join(describe_type(a, plural) for a in args if a is not type(None))
        return text + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if origin is list:
        return ("lists" if plural else "a list") + f" of {describe_type(args[0], True)}"
    if origin is dict:
        return ("mappings" if plural else "a mapping") + f" of names to {describe_type(args[1], True)}"
    nouns = {int: ("an integer", "integers"), float: ("a number", "numbers"),
             str: ("a string", "strings"), bool: ("true or false", "true or false")}
    if is_dataclass(tp):
        return "mappings" if plural else "a mapping"
    return nouns.get(tp, (getattr(tp, "__name__", str(tp)),) * 2)[plural]


def _kind(value) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def did_you_mean(value, choices) -> str:
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_message(unknown, labels: Labels, known) -> str:
    key = unknown[0]
    return (
        f"{labels.section()}: unknown key {key!r}{did_you_mean(key, known)}; "
        f"known keys: {', '.join(known)}."
    )


# -- command-line flags ------------------------------------------------------------------------


def add_flags(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    variants: Mapping[str, type] | None = None,
    skip: tuple[str, ...] = (),
    rename: Mapping[str, str] | None = None,
) -> None:
    """One flag per option of `cls` (`--eval-every`), help = docstring + default. Flags left
    out of a command line are absent from its namespace, so `from_flags` sees what was given."""
    rename = rename or {}
    for leaf in leaves(cls, variants):
        if leaf.key in skip or leaf.key == METHOD:
            continue
        flag = "--" + rename.get(leaf.key, leaf.key).replace("_", "-")
        kw: dict[str, Any] = {"dest": leaf.key, "default": argparse.SUPPRESS}
        kw["help"] = leaf.doc + ("" if leaf.required else f" (default: {_show(leaf.default)})")
        kw["help"] = kw["help"].replace("%", "%%")  # argparse formats help with %-style
        if leaf.required:
            kw["required"] = True
        origin, args = get_origin(leaf.type), get_args(leaf.type)
        if leaf.type is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            kw["choices"] = list(args)
        elif origin is list:
            kw["nargs"] = "+"
            kw["type"] = _flag_type(args[0])
        else:
            kw["type"] = _flag_type(leaf.type)
            if _metavar(leaf.type):
                kw["metavar"] = _metavar(leaf.type)
        parser.add_argument(flag, **kw)


def from_flags(cls: type, namespace: argparse.Namespace, **fixed):
    """Parse the flags `add_flags` added (and were given) plus values the command fixes."""
    given = {k: v for k, v in vars(namespace).items() if not k.startswith("_")}
    keys = {leaf.key for leaf in leaves(cls, _variant_hint(cls, fixed))} | {METHOD}
    return parse(cls, {**{k: v for k, v in given.items() if k in keys}, **fixed}, flags=True)


def _variant_hint(cls, fixed) -> dict[str, type]:
    if METHOD not in fixed:
        return {}
    return {
        f.name: f.metadata["variants"].get(fixed[METHOD])
        for f in fields(cls)
        if "section" in f.metadata and f.metadata["variants"] is not None
    }


def _flag_type(tp):
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType) and type(None) in args:
        inner = _flag_type(next(a for a in args if a is not type(None)))
        return lambda s: None if s.lower() in ("none", "null") else inner(s)
    return {int: int, float: float}.get(tp, str)


def _metavar(tp) -> str | None:
    """N for integers, X for numbers; None lets argparse name a string by its key (--out OUT)."""
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        tp = next(a for a in args if a is not type(None))
    return {int: "N", float: "X"}.get(tp)


def _show(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)
