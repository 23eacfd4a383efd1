"""Outputs that are complete or absent, never half-written, and the files they are read back from.

- `write_bytes_atomic` / `write_text_atomic` / `write_json_atomic`: a temp file beside the target,
  fsync'd, then renamed over it, so a reader (or a rerun after a crash) sees the old file or the
  new one, never a torn one.
- `staged_dir`: build a whole folder beside its final place and rename it in when it is complete.
- `read_jsonl` / `JsonlAppender` / `truncate_jsonl`: append-only logs (metrics, weight histories)
  whose last line a crash may have cut short; readers skip such a line.
- `read_json`: a JSON file, or a message naming it when it is damaged.
- `verdict`: the one rule for running again into an output that may hold earlier work (skip what
  is complete, refuse to overwrite it with other settings, resume or restart what is not), used
  by prepare, process, a training run folder and the pipeline's stages; `describe_changes` names
  what differs, for its messages.

Files and folders follow the umask like any other output (mkstemp/mkdtemp would make them
owner-only, and so do some writers: safetensors), so results written on a shared cluster stay
readable by the team: `follow_umask`, which `staged_dir` applies before publishing.

A full disk (or quota) met while writing is the user's to fix, not a bug: `writing(path)` turns
that OSError into a UserError naming the file ("no space left on the device writing PATH"), in
every writer here and in the token and shard writers; `no_space_message` says it for an error
caught higher up (the CLI, for writers that are not ours).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from mixtune.errors import UserError

log = logging.getLogger(__name__)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
"""The errnos of a full file system or an exhausted quota."""


def no_space_message(path: str | os.PathLike | None, err: OSError | None = None) -> str:
    """What a full disk while writing `path` (None: not known) is called, and what to do."""
    quota = " (disk quota exceeded)" if err is not None and err.errno == errno.EDQUOT else ""
    where = f" writing {path}" if path is not None else ""
    return (f"no space left on the device{quota}{where}; free some space or write the output "
            "elsewhere, then run again.")


_RUST_OS_ERROR = re.compile(r"\(os error (\d+)\)")
"""How a Rust writer (tokenizers, safetensors) names an OS error in the message of the plain
exception it raises: "No space left on device (os error 28)"."""


def os_error_code(err: BaseException) -> int | None:
    """The OS error `err` reports: an OSError's errno, or the one a Rust writer names in its
    message; None when it names none (Ctrl-C, a UserError, an error of another kind)."""
    if isinstance(err, OSError):
        return err.errno
    if not isinstance(err, Exception) or isinstance(err, UserError):
        return None
    found = _RUST_OS_ERROR.search(str(err))
    return int(found.group(1)) if found else None


def no_space_errno(err: BaseException) -> int | None:
    """ENOSPC or EDQUOT when `err` says the disk or quota is full; else None."""
    code = os_error_code(err)
    return code if code in NO_SPACE else None


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Inside the block, a full disk or quota (ENOSPC, EDQUOT) is a UserError naming `path`;
    any other OSError stays what it is. The caller removes what it had half written."""
    try:
        yield
    except OSError as err:
        if err.errno not in NO_SPACE:
            raise
        raise UserError(no_space_message(path, err)) from None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync, then rename it over `path`; never over a
    folder or a device (renamed over /dev/null, the file would replace it)."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise UserError(f"{path}: {'a folder' if path.is_dir() else 'not a regular file'}; "
                        "give the path of a file to write.")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o666 & ~_umask())
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_figure(fig, path: Path, dpi: int = 110) -> None:
    """A matplotlib Figure as a PNG, atomically (drawn in memory, then written)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    write_bytes_atomic(path, buf.getvalue())


def write_json_atomic(path: Path, obj: Any, indent: int | None = 1) -> None:
    write_text_atomic(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Build a folder in a staging place beside `final`; publish it there only if the block
    finishes, else remove it: `final` is either absent, the old version, or complete."""
    final = Path(final)
    with writing(final):
        final.parent.mkdir(parents=True, exist_ok=True)
        # Same file system as `final`, so that the publishing rename is atomic.
        staged = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield staged
        follow_umask(staged)
        publish(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def publish(staged: Path, final: Path) -> None:
    """Move a finished staging folder to its final path (replacing an old one if present)."""
    if final.exists() or final.is_symlink():
        old = final.with_name(f".{final.name}.old")
        remove(old)
        os.replace(final, old)
        os.replace(staged, final)
        remove(old)
    else:
        os.replace(staged, final)


def work_dir(out: Path) -> Path:
    """Where the tasks building `out` keep their work until it is published: OUT.work."""
    return out.with_name(out.name + ".work")


def start_work(work: Path, options: dict) -> None:
    """Continue the work folder of an interrupted run with the same options (`options.json` in
    it), else start it afresh."""
    saved = work / "options.json"
    old = read_json(saved, f"delete {work} to start over.") if saved.is_file() else None
    found = verdict(old, options, complete=False)
    if found.action == "resume":
        log.info("continuing the interrupted run in %s", work)
        return
    if found.action == "restart":
        log.info("%s holds work with other options (%s); starting over", work, found.changes)
    remove(work)
    work.mkdir(parents=True)
    write_json_atomic(saved, options)


def remove(path: Path) -> None:
    """Remove a folder tree or a plain file (or symlink), if present."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file's or a folder's entry to disk (a folder: so a rename in it survives a crash)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def follow_umask(folder: Path) -> None:
    """Give `folder` and everything in it the modes the umask gives new files and folders
    (executables stay executable): writers that make their files owner-only (safetensors,
    mkstemp) do not decide who may read a run's results."""
    mask = _umask()
    folder = Path(folder)
    folder.chmod(0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue  # chmod would change what it points to, outside the folder
            executable = os.stat(path).st_mode & 0o111  # folders are: they are searched
            os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_json(path: Path, fix: str):
    """The JSON in `path`; a damaged file is a UserError naming it and what to do (`fix`)."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e}); {fix}") from None


# -- JSON lines --------------------------------------------------------------------------------


def read_jsonl(path: Path) -> list[dict]:
    """The JSON objects of a JSON-lines file ([] if absent); a line cut short by a crash, one that
    is not UTF-8 or not an object, is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # JSONDecodeError: cut short; UnicodeDecodeError: not UTF-8
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def truncate_jsonl(path: Path, keep) -> None:
    """Rewrite a JSON-lines file (atomically) with only the rows for which `keep(row)` is true."""
    path = Path(path)
    if path.is_file():
        rows = [r for r in read_jsonl(path) if keep(r)]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in rows))


class JsonlAppender:
    """Appends one JSON object per line and flushes it, so a crash loses at most the last line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with writing(self.path):
            self._f = open(path, "a")

    def write(self, row: Mapping) -> None:
        with writing(self.path):
            self._f.write(json.dumps(row) + "\n")
            self._f.flush()

    def close(self) -> None:
        with writing(self.path):  # what a full disk did not take is flushed once more here
            self._f.close()


# -- identities of outputs ---------------------------------------------------------------------


def load_yaml(path: Path) -> dict:
    """A YAML file's mapping of settings ({} when empty), or a message naming the file."""
    try:
        obj = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: not found.") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({e}).") from None
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a mapping of settings at the top level.")
    return obj


def describe_changes(old: Mapping, new: Mapping) -> str:
    """'key: old -> new; ...' for every key whose value differs ('' when none does)."""

    def show(d: Mapping, k) -> str:
        return repr(d[k]) if k in d else "(unset)"

    keys = sorted(set(old) | set(new), key=str)
    return "; ".join(
        f"{k}: {show(old, k)} -> {show(new, k)}"
        for k in keys
        if k not in old or k not in new or old[k] != new[k]
    )


@dataclass(frozen=True)
class Verdict:
    """What to do with an output that may hold earlier work (see `verdict`)."""

    action: Literal["run", "skip", "resume", "restart", "refuse"]
    changes: str = ""
    """What differs between the recorded settings and the requested ones ('' when nothing)."""


def verdict(recorded: Mapping | None, wanted: Mapping, *, complete: bool,
            keeps_work: bool = False) -> Verdict:
    """The one rule for running again into an output recorded with `recorded` settings (None:
    nothing recorded there) when `wanted` are asked for:

        nothing recorded                 run
        complete, same settings          skip      finished work is never redone by accident
        complete, other settings         refuse    (the caller names the way out: --force,
                                                   --overwrite, another output)
        incomplete, same settings        resume
        incomplete, other settings       restart   a failed start must not lock the output to
                                                   the settings it failed with; refuse instead
                                                   when `keeps_work` (partial work worth keeping,
                                                   such as a training run's checkpoints)
    """
    if recorded is None:
        return Verdict("run")
    changes = describe_changes(recorded, wanted)
    if complete:
        return Verdict("refuse" if changes else "skip", changes)
    if not changes:
        return Verdict("resume")
    return Verdict("refuse" if keeps_work else "restart", changes)
