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

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mixtune.errors import UserError
from mixtune.io import read_json, writing
from mixtune.records import FORMAT_VERSION, DomainCounts, Manifest

SPLITS = ("train", "validation")
MANIFEST = "manifest.json"


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
    """Appends token arrays to one flat file; counts documents and tokens as it goes. A full disk
    is a UserError naming the file (the staging folder it lies in is then removed)."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype = path, dtype
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(path, "wb")
        self.documents = 0
        self.tokens = 0

    def write(self, ids: np.ndarray, documents: int = 1) -> None:
        ids = np.asarray(ids)
        if ids.size and int(ids.max()) > np.iinfo(self.dtype).max:
            raise ValueError(f"token id {int(ids.max())} does not fit {self.dtype}")
        self._write(ids.astype(self.dtype, copy=False).tobytes())
        self.documents += documents
        self.tokens += int(ids.size)

    def write_raw(self, src, tokens: int, documents: int) -> None:
        """Copy `tokens` tokens of this file's dtype from the binary file `src` (at its position),
        a megabyte at a time."""
        left = tokens * self.dtype.itemsize
        while left:
            chunk = src.read(min(left, 1 << 20))
            if not chunk:
                raise ValueError(f"{src.name}: ends {left} bytes early")
            self._write(chunk)
            left -= len(chunk)
        self.documents += documents
        self.tokens += tokens

    def _write(self, data: bytes) -> None:
        try:
            with writing(self.path):
                self._f.write(data)
        except UserError:
            self._drop()
            raise

    def close(self) -> None:
        if self._f.closed:  # given up on a full disk already; a `finally` closes it again
            return
        try:
            with writing(self.path):
                self._f.flush()
                os.fsync(self._f.fileno())  # on disk before the manifest vouching for it
                self._f.close()
        except UserError:
            self._drop()
            raise

    def _drop(self) -> None:
        """Close the file, giving up the bytes the disk did not take: otherwise closing it later
        (or the garbage collector) tries to write them again and fails once more."""
        with contextlib.suppress(OSError):
            self._f.close()  # closes the file even when its last flush fails


@dataclass
class Dataset:
    """A prepared dataset, opened read-only. Token files are memory-mapped lazily."""

    path: Path
    manifest: Manifest

    @property
    def domains(self) -> list[str]:
        return list(self.manifest.domains)

    @property
    def seq_len(self) -> int:
        return self.manifest.seq_len

    @property
    def vocab_size(self) -> int:
        return self.manifest.tokenizer.vocab_size

    @property
    def eos_id(self) -> int:
        return self.manifest.tokenizer.eos_id

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    @property
    def tokenizer_hash(self) -> str:
        return self.manifest.tokenizer.sha256

    def tokens(self, split: str, domain: str) -> np.ndarray:
        path = self.path / split / f"{domain}.bin"
        dtype = np.dtype(self.manifest.dtype)
        if path.stat().st_size == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r")

    def counts(self, split: str, field: str = "tokens") -> dict[str, int]:
        """Per domain, a count of `split` (tokens, documents, sequences; duplicates or in_train:
        0 where not counted)."""
        return {d: int(getattr(self.manifest.splits[split][d], field) or 0) for d in self.domains}


def open_dataset(path: str | os.PathLike) -> Dataset:
    path = Path(path)
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise UserError(
            f"{path}: not a prepared dataset (no {MANIFEST}). Run `mixtune prepare SOURCE --out {path}` first."
        )
    obj = read_json(manifest_path, "re-run `mixtune prepare --overwrite`.")
    if not isinstance(obj, dict) or obj.get("format_version") != FORMAT_VERSION:
        version = obj.get("format_version") if isinstance(obj, dict) else None
        raise UserError(
            f"{manifest_path}: format_version {version!r}, this mixtune reads "
            f"{FORMAT_VERSION}; re-run `mixtune prepare --overwrite`."
        )
    try:
        manifest = Manifest.from_json(obj)
    except (KeyError, TypeError) as e:  # reading a file, not computing: name what is missing
        raise UserError(
            f"{manifest_path}: damaged ({type(e).__name__}: {e}); re-run `mixtune prepare --overwrite`."
        ) from None
    return Dataset(path, manifest)


def domain_counts(
    documents: int, tokens: int, seq_len: int, skipped: dict[str, int] | None = None,
    duplicates: int | None = None, in_train: int | None = None,
) -> DomainCounts:
    return DomainCounts(documents, tokens, num_sequences(tokens, seq_len), dict(skipped or {}),
                        duplicates, in_train)
