"""`mixtune tasks download` and `mixtune tasks list`: the task cache from the command line."""

from __future__ import annotations

from pathlib import Path

from mixtune.eval import suites
from mixtune.eval.download import download, names_for
from mixtune.eval.recipes import obtainable
from mixtune.eval.tasks import cache_dir, installed, load_task


def run_download(spec: suites.TasksSpec, root: Path | None, *, force: bool) -> list[Path]:
    """Install the tasks `spec` names (a suite, `all`, task or entry names) and say where."""
    folders = download(names_for(spec), root, force=force)
    print(f"{len(folders)} task(s) installed in {folders[0].parent if folders else root}")
    return folders


def listing(root: Path | None) -> str:
    """The installed tasks, those that could be, and how much of each suite is installed."""
    root = root or cache_dir()
    have = installed(root)
    lines = [f"installed in {root}:"]
    for name, path in have.items():
        spec = load_task(path).spec
        src = f"{spec.source.package} {spec.source.version}" if spec.source else "your own"
        lines.append(f"  {name:<36} {spec.format:<18} {spec.n:>6} items  {spec.shots:>2} shots  "
                     f"({src})")
    if not have:
        lines.append("  (none)")
    missing = [n for n in obtainable() if n not in have]
    if missing:
        lines.append("obtainable, not installed (mixtune tasks download --tasks NAME): "
                     f"{', '.join(missing)}")
    for suite, members in suites.SUITES.items():
        absent = [n for n in members if suites.ENTRIES[n].task not in have]
        lines.append(f"{suite}: {len(members) - len(absent)}/{len(members)} entries installed")
    return "\n".join(lines)
