"""The dataset directory: one flat token file per split and domain, plus `manifest.json`.

Layout (DESIGN.md):

    DATASET/
      tokenizer/                 a Hugging Face tokenizer folder
      manifest.json              domains, per split and domain counts, tokenizer hash, seq_len
      train/<domain>.bin         little-endian uint16 (vocab <= 65536) or uint32 tokens,
      validation/<domain>.bin    documents joined by EOS

A training sequence is the window `tokens[i*seq_len : i*seq_len + seq_len + 1]` ("packed"): the
`+1` token is the last target and the first input of the next window, so a file of `n` tokens holds
`(n - 1) // seq_len` sequences.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixtune.errors import UserError

SPLITS = ("train", "validation")
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits (halves disk and page-cache use), else uint32."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def num_sequences(num_tokens: int, seq_len: int) -> int:
    return max(0, (num_tokens - 1) // seq_len)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tokenizer_hash(tokenizer_dir: Path) -> str:
    """Hash of `tokenizer.json`: two datasets or models agree on token ids iff it matches."""
    return file_sha256(Path(tokenizer_dir) / "tokenizer.json")


class TokenWriter:
    """Appends token arrays to one flat file; counts documents and tokens as it goes."""

    def __init__(self, path: Path, dtype: np.dtype):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.dtype = path, dtype
        self._f = open(path, "wb")
        self.documents = 0
        self.tokens = 0

    def write(self, ids: np.ndarray, documents: int = 1) -> None:
        ids = np.asarray(ids)
        if ids.size and int(ids.max()) > np.iinfo(self.dtype).max:
            raise ValueError(f"token id {int(ids.max())} does not fit {self.dtype}")
        self._f.write(ids.astype(self.dtype, copy=False).tobytes())
        self.documents += documents
        self.tokens += int(ids.size)

    def close(self) -> None:
        self._f.flush()
        os.fsync(self._f.fileno())  # on disk before the manifest that vouches for it is published
        self._f.close()


@dataclass
class Dataset:
    """A prepared dataset, opened read-only. Token files are memory-mapped lazily."""

    path: Path
    manifest: dict

    @property
    def domains(self) -> list[str]:
        return list(self.manifest["domains"])

    @property
    def seq_len(self) -> int:
        return int(self.manifest["seq_len"])

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def eos_id(self) -> int:
        return int(self.manifest["tokenizer"]["eos_id"])

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def tokenizer_hash(self) -> str:
        return self.manifest["tokenizer"]["sha256"]

    def tokens(self, split: str, domain: str) -> np.ndarray:
        path = self.path / split / f"{domain}.bin"
        dtype = np.dtype(self.manifest["dtype"])
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r")

    def counts(self, split: str, field: str = "tokens") -> dict[str, int]:
        return {d: int(self.manifest["splits"][split][d][field]) for d in self.domains}


def open_dataset(path: str | os.PathLike) -> Dataset:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise UserError(
            f"{path}: not a prepared dataset (no {MANIFEST}). Run `mixtune prepare SOURCE --out {path}` first."
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(
            f"{manifest_path}: not valid JSON ({e}); re-run `mixtune prepare --overwrite`."
        ) from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise UserError(
            f"{manifest_path}: format_version {manifest.get('format_version')!r}, this mixtune reads "
            f"{FORMAT_VERSION}; re-run `mixtune prepare --overwrite`."
        )
    return Dataset(path, manifest)


def write_json_atomic(path: Path, obj, indent: int | None = 1) -> None:
    """Write JSON to a temp file beside `path`, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs are shared like any other file
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=indent, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Build a folder in a staging place beside `final`; publish it there only if the block
    finishes, else remove it: `final` is either absent, the old version, or complete."""
    staged = staging_dir(final)
    try:
        yield staged
        publish_dir(staged, final)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def staging_dir(final: Path) -> Path:
    """A fresh temp folder beside `final`, on the same file system so the final rename is atomic."""
    final.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    staged.chmod(0o777 & ~_umask())  # mkdtemp makes 0700; the published folder must be readable
    return staged


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_dir(staged: Path, final: Path) -> None:
    """Move a finished staging folder to its final path (replacing an old one if present)."""
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        _remove(old)
        os.replace(final, old)
        os.replace(staged, final)
        _remove(old)
    else:
        os.replace(staged, final)


def _remove(path: Path) -> None:
    """Remove a folder tree or a plain file, if present. (rmtree alone silently left a plain file
    or symlink replaced with --overwrite behind as `.NAME.old`.)"""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


def domain_entry(
    documents: int, tokens: int, seq_len: int, skipped: dict[str, int] | None = None
) -> dict:
    return {
        "documents": documents,
        "tokens": tokens,
        "sequences": num_sequences(tokens, seq_len),
        "skipped": dict(sorted((skipped or {}).items())),
    }
