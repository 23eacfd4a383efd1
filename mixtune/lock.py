"""One process at a time on an output: a second `mixtune run` (train, prepare, process) into an
output that another one is writing refuses at once, naming it, instead of redoing its stages and
replacing its models.

    with lock.hold(folder): ...              # FOLDER/.mixtune.lock
    with lock.hold(out, beside=True): ...    # PARENT/.OUT.mixtune.lock: for an output published
                                             # by renaming it into place (which replaces OUT)
    held = lock.Lock(folder).acquire() ... held.release()    # a holder that is not a block

The lock is an flock(2) on the lock file, which the kernel drops when its holder ends however it
ends (killed, out of memory): a dead holder never blocks anyone. The file says who holds it (pid,
host, start, command line) for the refusal's message; it is removed on release, so a file found
unlocked with a holder in it was left by one that died: it is taken over, with a notice.

Re-entrant within a process tree: a held lock is listed in MIXTUNE_LOCK_HELD, which this process
and its children inherit (`mixtune run` relaunched under torchrun: the parent holds the output,
its ranks work in it). Under torchrun only rank 0 locks; the other ranks follow its decisions.
Without fcntl (Windows) nothing is locked.

NFS: Linux maps flock onto NFS byte-range locks (NFSv4, or v3 with lockd), which hold across
hosts; a mount with `local_lock=flock` or `nolock` keeps them to one host, and some file systems
refuse them (Lustre without `-o flock`): then the output is used unlocked, with a warning.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import socket
import sys
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from mixtune.errors import UserError
from mixtune.io import writing

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

log = logging.getLogger(__name__)

LOCK_FILE = ".mixtune.lock"
HELD = "MIXTUNE_LOCK_HELD"
"""The lock files this process or an ancestor holds (os.pathsep between them)."""


def lock_file(folder: str | os.PathLike, beside: bool = False) -> Path:
    """FOLDER/.mixtune.lock, or with `beside` PARENT/.NAME.mixtune.lock (absolute paths)."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}{LOCK_FILE}" if beside else folder / LOCK_FILE


@contextmanager
def hold(folder: str | os.PathLike, *, beside: bool = False) -> Iterator[Lock]:
    """`folder` locked for the block (see `Lock`)."""
    held = Lock(folder, beside=beside).acquire()
    try:
        yield held
    finally:
        held.release()


class Lock:
    """An exclusive lock on `folder`: `acquire` takes it or raises a UserError naming the process
    that holds it. Released by `release`, or when this object is dropped or the process ends."""

    def __init__(self, folder: str | os.PathLike, *, beside: bool = False):
        self.folder, self.path = Path(folder), lock_file(folder, beside)
        self._finalizer = None  # a weakref.finalize that releases, while this object holds it

    def acquire(self) -> Lock:
        if self._finalizer is not None or str(self.path) in _held() or _follower():
            return self
        if fcntl is None:
            log.debug("no fcntl here: %s is used unlocked", self.folder)
            return self
        made = not self.path.parent.exists()  # then an output left empty goes with the lock
        f = _locked_file(self.path, self.folder)
        if f is not None:
            self._finalizer = weakref.finalize(self, _release, f, str(self.path), os.getpid(), made)
            os.environ[HELD] = os.pathsep.join([*_held(), str(self.path)])
        return self

    def release(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # a finalize runs once, also if this object is dropped later
            self._finalizer = None


def _locked_file(path: Path, folder: Path):
    """The lock file, open and locked, with this process's record in it; None where the file
    system refuses locks."""
    while True:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            f = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o666), "r+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"{folder}: in use by {_holder(f)}; wait for it to finish, or stop it."
            f.close()
            raise UserError(message) from None
        except OSError as e:
            f.close()
            log.warning("%s: this file system refuses locks (%s); a second run into it would "
                        "not be stopped.", folder, e.strerror)
            return None
        if _same_file(f, path):
            break
        # Its holder released it between our open and our flock, removing the file: lock the
        # one now at `path` (another process may have made it).
        f.close()
    _take_over(f, path, folder)
    return f


def _same_file(f, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(f.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _take_over(f, path: Path, folder: Path) -> None:
    """Write this process's record in the locked file, after a notice naming the holder that
    died holding it, if one did."""
    old = _record(f)
    if old:
        # A holder on another host may be alive, on a file system that keeps locks per host.
        level = logging.INFO if old.get("host") == socket.gethostname() else logging.WARNING
        log.log(level, "%s: taking over the lock left by %s, which is no longer running",
                folder, _describe(old))
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "since": datetime.now().astimezone().isoformat(" ", "seconds"),
              "command": _command()}
    with writing(path):
        f.seek(0)
        f.truncate()
        f.write(json.dumps(record) + "\n")
        f.flush()


def _holder(f) -> str:
    # The holder writes its record just after locking: give it a moment.
    for _ in range(20):
        record = _record(f)
        if record:
            return _describe(record)
        time.sleep(0.05)
    return "another process"


def _record(f) -> dict:
    f.seek(0)
    try:
        record = json.loads(f.read() or "{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}  # being written, or not ours: no details
    return record if isinstance(record, dict) else {}


def _describe(r: dict) -> str:
    return (f"pid {r.get('pid', '?')} on host {r.get('host', '?')} since {r.get('since', '?')} "
            f"({r.get('command', '?')})")


def _command() -> str:
    argv = sys.argv or ["python"]
    name = Path(argv[0]).name
    return shlex.join(["mixtune" if name == "__main__.py" else name, *argv[1:]])


def _release(f, path: str, owner: int, made: bool) -> None:
    # A forked child holds the same lock through its copy of the file: only its owner unlocks
    # (and removes the file, while still holding it, so that no one waits on a removed file).
    if os.getpid() == owner:
        Path(path).unlink(missing_ok=True)
        folder = Path(path).parent
        if made and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a run refused before it wrote anything leaves no empty output
        fcntl.flock(f, fcntl.LOCK_UN)
        os.environ[HELD] = os.pathsep.join(p for p in _held() if p != path)
    f.close()


def _held() -> list[str]:
    return [p for p in os.environ.get(HELD, "").split(os.pathsep) if p]


def _follower() -> bool:
    """A rank of a torchrun job other than 0 (rank 0 locks for all)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and os.environ.get("RANK", "0") != "0"
