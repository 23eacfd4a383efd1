"""Read raw corpora into one stream of `Document(split, domain, text)`.

A SOURCE is a folder or a single file. Inside a folder the domain of each document comes either from
the folder layout (`SOURCE/<domain>/...`, the default) or from a field of each record
(`--domain-field meta.pile_set_name`). A folder with `train/` and `validation/` (or `val/`)
subfolders, or a Hugging Face `DatasetDict` with such splits, gives each document its split.

Everything is streamed: a JSON-lines file is read one line at a time (also when gzip or zstd
compressed), Parquet files and Hugging Face datasets one batch at a time, so corpora of hundreds of
gigabytes never have to fit in memory. The order is deterministic: sources in the order given, files
sorted by path.

Bad input raises `UserError` naming the file and line (or row), the field or value, and what to do.
Problems with single records (malformed JSON, a missing field, ...) can instead be skipped and
counted with `skip_bad=True`; problems with the layout (an unsupported file, an unsafe domain name,
an empty folder) always stop the run.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from mixtune.errors import UserError


@dataclass(frozen=True, slots=True)
class Document:
    """One document: its split ("train"/"validation", or None if the source has none), domain, text."""

    split: str | None
    domain: str
    text: str


SkipFn = Callable[[str | None, str | None, str], None]
"""Called as `on_skip(split, domain or None if unknown, reason)` for every skipped record."""

# Reasons passed to `on_skip`; callers count skipped records by these strings.
EMPTY_TEXT = "empty text"
MALFORMED_JSON = "malformed JSON"
INVALID_UTF8 = "invalid UTF-8"
NOT_AN_OBJECT = "not a JSON object"
MISSING_TEXT = "missing text field"
TEXT_NOT_STRING = "text not a string"
MISSING_DOMAIN = "missing domain field"

SUPPORTED_FORMATS = (
    "*.jsonl and *.json (JSON lines, optionally compressed as .gz, .zst or .zstd), *.parquet, "
    "*.txt (one document per file; only with domains from folders) and Hugging Face datasets "
    "saved with save_to_disk"
)

# What `mixtune process` writes beside the domain folders of a corpus: not documents.
CORPUS_FILES = frozenset({"dataset_record.json", "process_stats.json", "process_stats.png"})
VALIDATION_FOLDER_NAMES = ("validation", "val")  # both mean the "validation" split
MAX_DOMAIN_NAME_BYTES = 200  # domains become file names; leave room for suffixes under 255 bytes

_CHUNK_BYTES = 1 << 20  # read size for JSON-lines files (decompressed bytes for gzip)
# Compressed bytes fed to zstd at a time: its output cannot be capped, so memory per chunk is
# this times the compression ratio (~4x for text, ~100x for very repetitive data).
_ZSTD_INPUT_BYTES = 1 << 16
_BATCH_ROWS = 1024  # rows per Parquet / Hugging Face batch
_MISSING = object()  # a field that is not there (distinct from a JSON null)
_SURROGATE = re.compile("[\ud800-\udfff]")  # lone surrogates from JSON escapes like "\ud800"


def read_documents(
    sources: Sequence[str | os.PathLike],
    *,
    text_field: str = "text",
    domain_field: str | None = None,
    skip_bad: bool = False,
    on_skip: SkipFn | None = None,
    shard: tuple[int, int] = (0, 1),
    on_unit: Callable[[int], None] | None = None,
) -> Iterator[Document]:
    """Yield every document of `sources`, in order; see the module docstring for the layouts.

    `text_field` and `domain_field` are dotted paths into each record (`meta.pile_set_name`).
    Documents with empty text are always skipped and reported to `on_skip` as "empty text". Other
    bad records raise `UserError`, or with `skip_bad=True` are reported to `on_skip` and skipped.

    `shard=(rank, n)` reads only every n-th file (or Hugging Face dataset folder), starting at
    `rank`, so that n tasks read the sources once between them. A shard may hold nothing of a
    domain, so a sharded read does not check that every folder has documents. `on_unit(i)` is
    called before the documents of the i-th file of the whole read (counted over all shards), so
    that the shards' outputs can be put back in the order of one read.
    """
    if isinstance(sources, (str, os.PathLike)):
        raise TypeError("read_documents takes a sequence of sources, not a single path")
    _check_field_path(text_field, "--text-field")
    if domain_field is not None:
        _check_field_path(domain_field, "--domain-field")
    rank, n = shard
    if not 0 <= rank < n:
        raise ValueError(f"shard {shard}: want (rank, n) with 0 <= rank < n")
    reader = _Reader(text_field, domain_field, skip_bad, on_skip, shard, on_unit)
    for source in sources:
        yield from reader.read_source(Path(source))


def check_layout(
    sources: Sequence[str | os.PathLike], *, domain_field: str | None = None
) -> list[str] | None:
    """Check the layout of `sources` without reading any file: paths exist, domain folders are
    named well and hold a file each, nothing lies where a domain is expected, file types are
    known. What a sharded read cannot check (a shard may hold nothing of a domain) is checked
    here once, before the tasks start. Returns the domains the folders name, sorted (None with
    `domain_field`: the domains are then in the records, known only once they are read)."""
    if domain_field is not None:
        _check_field_path(domain_field, "--domain-field")
    reader = _Reader("text", domain_field, False, None, layout_only=True)
    domains = {doc.domain for source in sources for doc in reader.read_source(Path(source))}
    return None if domain_field is not None else sorted(domains)


def domain_name_problem(name: str) -> str | None:
    """Why `name` cannot be a domain name (domains become file names), or None if it can."""
    if name == "":
        return "it is empty"
    if name in (".", ".."):
        return f"it is {name!r}"
    for sep in ("/", "\\"):
        if sep in name:
            return f"it contains {sep!r}"
    for char in name:
        # Control characters, lone surrogates and line breaks garble file names and logs.
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            return f"it contains the control character U+{ord(char):04X}"
    if name != name.strip():
        return "it has leading or trailing whitespace"
    if len(name.encode("utf-8")) > MAX_DOMAIN_NAME_BYTES:
        return f"it is longer than {MAX_DOMAIN_NAME_BYTES} bytes"
    return None


class _BadRecord(Exception):
    """A problem with one record; skippable with `skip_bad`. Never leaves this module."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class _Place:
    """Where records come from, for messages: a file (or dataset folder) and its unit of position."""

    path: Path
    unit: str  # "line", "row" or "file"

    def at(self, position: int | None) -> str:
        if self.unit == "line":
            return f"{self.path}:{position}"
        if self.unit == "row":
            return f"{self.path}, row {position}"
        return str(self.path)


class _Reader:
    """Turns sources into documents; holds the options and the state shared across sources."""

    def __init__(
        self,
        text_field: str,
        domain_field: str | None,
        skip_bad: bool,
        on_skip: SkipFn | None,
        shard: tuple[int, int] = (0, 1),
        on_unit: Callable[[int], None] | None = None,
        layout_only: bool = False,
    ) -> None:
        self.shard, self.on_unit = shard, on_unit
        self.layout_only = layout_only  # one empty document per file, none read
        self.units = 0  # files and dataset folders met so far, ours or not (for sharding)
        self.text_field = text_field
        self.domain_field = domain_field
        self.skip_bad = skip_bad
        self.on_skip = on_skip
        self.skipped = 0  # records skipped so far, to explain folders that end up empty
        self.safe_domains: set[str] = set()  # field values already checked by domain_name_problem

    # ----- layout: sources, splits, domain folders -------------------------------------------

    def read_source(self, source: Path) -> Iterator[Document]:
        if not source.exists():
            raise UserError(f"{source}: no such file or folder. Check the SOURCE path.")
        if source.is_file():
            if self.domain_field is None:
                raise UserError(
                    f"{source}: a single file has no domain folders. Put the files under "
                    "SOURCE/<domain>/ (one folder per domain) and pass the folder, or pass "
                    "--domain-field FIELD if each record names its domain."
                )
            yield from self._nonempty(self._read_unit(source, None, None), source)
        elif _is_dataset_dict(source):
            yield from self._read_dataset_dict(source)
        else:
            for split, folder in _split_folders(source):
                yield from self._nonempty(self._read_split_folder(folder, split), folder)

    def _read_split_folder(self, folder: Path, split: str | None) -> Iterator[Document]:
        """Read a SOURCE folder, or one of its split folders."""
        if self.domain_field is not None:
            for unit in _walk(folder):
                yield from self._read_unit(unit, split, None)
            return
        if _is_hf_dataset(folder):
            raise UserError(
                f"{folder}: this Hugging Face dataset has no domain folders. Save each domain as "
                "its own dataset under SOURCE/<domain>/, or pass --domain-field FIELD if each "
                "record names its domain."
            )
        for child in _children(folder):
            if not child.is_dir() and child.name in CORPUS_FILES:
                continue
            if not child.is_dir():
                raise UserError(
                    f"{child}: a file directly in {folder} has no domain. With domains from "
                    f"folders every file must lie under {folder}/<domain>/: move the files into "
                    "one folder per domain, or pass --domain-field FIELD if each record names "
                    "its domain."
                )
            yield from self._read_domain_folder(child, split)

    def _read_domain_folder(self, folder: Path, split: str | None) -> Iterator[Document]:
        domain = folder.name
        problem = domain_name_problem(domain)
        if problem is not None:
            raise UserError(
                f"{folder}: the folder name {domain!r} cannot be a domain name ({problem}); "
                "domain names become file names. Rename the folder."
            )
        skipped_before = self.skipped
        count = 0
        for unit in _walk(folder):
            for doc in self._read_unit(unit, split, domain):
                count += 1
                yield doc
        if count == 0 and self.shard[1] == 1:
            raise UserError(
                f"{folder}: domain folder {domain!r} has no documents"
                f"{self._skipped_note(skipped_before)} (looked for {SUPPORTED_FORMATS}). "
                "Add data to it or remove the folder."
            )

    def _read_dataset_dict(self, source: Path) -> Iterator[Document]:
        if self.domain_field is None:
            raise UserError(
                f"{source}: this Hugging Face DatasetDict has no domain folders. Pass "
                "--domain-field FIELD if each record names its domain, or save each domain as "
                "its own dataset under SOURCE/<domain>/."
            )
        # Load only the splits we read (as `DatasetDict.load_from_disk` does, one folder per
        # split), so that ignored splits cost nothing and cannot fail the run.
        for split, name in _pick_dataset_splits(source, _dataset_dict_splits(source)):
            folder = source / name
            if not self._mine():
                continue
            if self.layout_only:
                yield Document(split, "", "")
                continue
            rows = _hf_rows(_load_hf(folder), self._fields())
            docs = self._read_records(_Place(folder, "row"), rows, split, None)
            yield from self._nonempty(docs, folder)

    def _nonempty(self, docs: Iterable[Document], where: Path) -> Iterator[Document]:
        """Pass `docs` through; raise if there were none (a wrong path or a wrong layout)."""
        skipped_before = self.skipped
        count = 0
        for doc in docs:
            count += 1
            yield doc
        if count == 0 and self.shard[1] == 1:
            looked_for = SUPPORTED_FORMATS
            if self.domain_field is None:
                looked_for = f"domain folders {where}/<domain>/ holding {SUPPORTED_FORMATS}"
            raise UserError(
                f"{where}: no documents found{self._skipped_note(skipped_before)} "
                f"(looked for {looked_for})."
            )

    def _mine(self) -> bool:
        """Whether the next file or dataset folder belongs to this shard (counts it)."""
        rank, n = self.shard
        index = self.units
        self.units += 1
        if index % n != rank:
            return False
        if self.on_unit is not None:
            self.on_unit(index)
        return True

    def _skipped_note(self, skipped_before: int) -> str:
        skipped = self.skipped - skipped_before
        return f" ({skipped} records were skipped as empty or bad)" if skipped else ""

    # ----- files: one file or Hugging Face dataset folder --------------------------------------

    def _read_unit(self, unit: Path, split: str | None, domain: str | None) -> Iterator[Document]:
        """Read one file or Hugging Face dataset folder; `domain` None means from the field."""
        if not self._mine():
            return
        if self.layout_only:
            if not unit.is_dir() and _file_format(unit.name)[0] is None:
                raise UserError(
                    f"{unit}: unsupported file type. Supported are {SUPPORTED_FORMATS}; files "
                    "whose name starts with '.' are ignored. Remove or convert the file."
                )
            yield Document(split, domain or "", "")
            return
        if unit.is_dir():  # _walk only yields folders that are Hugging Face datasets
            rows = _hf_rows(_load_hf(unit), self._fields())
            yield from self._read_records(_Place(unit, "row"), rows, split, domain)
            return
        kind, compression = _file_format(unit.name)
        if kind == "jsonl":
            records = _jsonl_records(unit, compression)
            yield from self._read_records(_Place(unit, "line"), records, split, domain)
        elif kind == "parquet":
            rows = _parquet_rows(unit, self._fields())
            yield from self._read_records(_Place(unit, "row"), rows, split, domain)
        elif kind == "txt":
            yield from self._read_text_file(unit, split, domain)
        else:
            raise UserError(
                f"{unit}: unsupported file type. Supported are {SUPPORTED_FORMATS}; files whose "
                "name starts with '.' are ignored. Remove or convert the file."
            )

    def _read_text_file(
        self, path: Path, split: str | None, domain: str | None
    ) -> Iterator[Document]:
        if domain is None:
            raise UserError(
                f"{path}: a .txt file holds one document and no fields, so --domain-field cannot "
                "give its domain. Put .txt files under SOURCE/<domain>/ and leave out "
                "--domain-field, or convert them to JSON lines."
            )
        place = _Place(path, "file")
        try:
            text = _read_bytes(path).decode("utf-8-sig")  # one document: the whole file
        except UnicodeDecodeError as err:
            self._bad(place, None, _BadRecord(INVALID_UTF8, _utf8_detail(err)), split, domain)
            return
        doc = self._document(place, None, {"text": text}, "text", split, domain)
        if doc is not None:
            yield doc

    def _read_records(
        self,
        place: _Place,
        records: Iterable[tuple[int, Any]],
        split: str | None,
        domain: str | None,
    ) -> Iterator[Document]:
        """Turn (position, record) pairs into documents; a record may be a `_BadRecord`."""
        for position, record in records:
            doc = self._document(place, position, record, self.text_field, split, domain)
            if doc is not None:
                yield doc

    # ----- records ------------------------------------------------------------------------------

    def _document(
        self,
        place: _Place,
        position: int | None,
        record: Any,
        text_field: str,
        split: str | None,
        domain: str | None,
    ) -> Document | None:
        """The document in `record`, or None if it was skipped (reported to on_skip)."""
        try:
            if isinstance(record, _BadRecord):
                raise record
            if not isinstance(record, dict):
                raise _BadRecord(NOT_AN_OBJECT, f"got {_type_name(record)}")
            if domain is None:
                domain = self._domain_from_field(record, place, position)
            text = _text_from_field(record, text_field)
        except _BadRecord as bad:
            self._bad(place, position, bad, split, domain)
            return None
        if not text or text.isspace():
            self._skip(split, domain, EMPTY_TEXT)
            return None
        return Document(split, domain, text)

    def _domain_from_field(self, record: dict, place: _Place, position: int | None) -> str:
        assert self.domain_field is not None
        value = _lookup(record, self.domain_field)
        if value is _MISSING:
            raise _BadRecord(MISSING_DOMAIN, f"no field {self.domain_field!r}")
        if not isinstance(value, str):
            raise _BadRecord(
                MISSING_DOMAIN, f"field {self.domain_field!r} is {_type_name(value)}, not a string"
            )
        if not value.strip():
            raise _BadRecord(MISSING_DOMAIN, f"field {self.domain_field!r} is empty or blank")
        if value not in self.safe_domains:
            # An unsafe name is not skippable: it means the field is wrong for the whole corpus.
            problem = domain_name_problem(value)
            if problem is not None:
                raise UserError(
                    f"{place.at(position)}: the value {value!r} of --domain-field "
                    f"{self.domain_field!r} cannot be a domain name ({problem}); domain names "
                    "become file names. Fix the value or choose another --domain-field."
                )
            self.safe_domains.add(value)
        return value

    def _bad(
        self,
        place: _Place,
        position: int | None,
        bad: _BadRecord,
        split: str | None,
        domain: str | None,
    ) -> None:
        """Report a bad record: raise, or with skip_bad count it and carry on."""
        if not self.skip_bad:
            raise UserError(
                f"{place.at(position)}: {bad.reason} ({bad.detail}). Fix the {place.unit} or "
                "pass --skip-bad-records to skip and count such records."
            )
        self._skip(split, domain, bad.reason)

    def _skip(self, split: str | None, domain: str | None, reason: str) -> None:
        self.skipped += 1
        if self.on_skip is not None:
            self.on_skip(split, domain, reason)

    def _fields(self) -> list[str]:
        """The fields read from each record (Parquet and HF datasets read only their columns)."""
        return [self.text_field] + ([self.domain_field] if self.domain_field else [])


# ----- layout helpers ----------------------------------------------------------------------------


def _check_field_path(field: str, option: str) -> None:
    if not field or any(part == "" for part in field.split(".")):
        raise UserError(
            f"{option} {field!r} is not a field path; give a field name or a dotted path "
            "like meta.pile_set_name."
        )


def _children(folder: Path) -> list[Path]:
    """Entries of `folder` sorted by name, without hidden ones (.git, .DS_Store, ...)."""
    try:
        names = sorted(entry.name for entry in os.scandir(folder))
    except OSError as err:
        raise UserError(f"{folder}: cannot list the folder ({err.strerror or err}).") from err
    return [folder / name for name in names if not name.startswith(".")]


def _walk(folder: Path) -> Iterator[Path]:
    """Files and Hugging Face dataset folders below `folder`, sorted by path."""
    if _is_hf_dataset(folder):
        yield folder  # its .arrow and .json files are read through `datasets`, not one by one
        return
    if _is_dataset_dict(folder):
        raise UserError(
            f"{folder}: a Hugging Face DatasetDict cannot be read here. Pass it as a SOURCE of "
            "its own, or save each split as a Dataset (Dataset.save_to_disk)."
        )
    for child in _children(folder):
        if child.is_dir():
            yield from _walk(child)
        else:
            yield child


def _is_hf_dataset(folder: Path) -> bool:
    return (folder / "dataset_info.json").is_file() and (folder / "state.json").is_file()


def _is_dataset_dict(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file()


def _split_folders(source: Path) -> list[tuple[str | None, Path]]:
    """[("train", SOURCE/train), ("validation", SOURCE/validation)], or [(None, SOURCE)].

    With splits, other entries of SOURCE (a test/ folder, a README) are ignored, as other splits
    of a DatasetDict are.
    """
    validation = [name for name in VALIDATION_FOLDER_NAMES if (source / name).is_dir()]
    if not (source / "train").is_dir() or not validation:
        return [(None, source)]
    if len(validation) > 1:
        raise UserError(
            f"{source}: has both validation/ and val/ folders; keep one of them as the "
            "validation split."
        )
    return [("train", source / "train"), ("validation", source / validation[0])]


def _pick_dataset_splits(source: Path, names: list[str]) -> list[tuple[str | None, str]]:
    """Which splits of a DatasetDict to read, as (split given to documents, split name)."""
    validation = [name for name in VALIDATION_FOLDER_NAMES if name in names]
    if len(validation) > 1:
        raise UserError(
            f"{source}: the DatasetDict has both a 'validation' and a 'val' split; keep one."
        )
    if "train" in names and validation:
        return [("train", "train"), ("validation", validation[0])]
    if "train" in names:
        return [(None, "train")]
    if len(names) == 1:
        return [(None, names[0])]
    if not names:
        raise UserError(f"{source}: the DatasetDict has no splits. Save it again with data.")
    raise UserError(
        f"{source}: the DatasetDict has splits {', '.join(map(repr, names))} but none is "
        "'train'. Name the training split 'train' (and the validation split 'validation'), "
        "or save the split to use as its own Dataset."
    )


def _file_format(name: str) -> tuple[str | None, str | None]:
    """(kind, compression) from a file name: kind is "jsonl", "parquet", "txt" or None."""
    lower = name.lower()
    compression = None
    for suffix, method in ((".gz", "gzip"), (".zst", "zstd"), (".zstd", "zstd")):
        if lower.endswith(suffix):
            compression, lower = method, lower[: -len(suffix)]
            break
    if lower.endswith((".jsonl", ".json")):
        return "jsonl", compression
    if compression is None and lower.endswith(".parquet"):
        return "parquet", None
    if compression is None and lower.endswith(".txt"):
        return "txt", None
    return None, None


# ----- JSON lines ----------------------------------------------------------------------------------


def _jsonl_records(path: Path, compression: str | None) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON or _BadRecord) for each non-blank line; decoded line by line so
    that bad bytes are reported on their own line."""
    # Pretty-printed JSON fails on its first line; say how .json files are read.
    json_hint = "; .json files are read as JSON lines, one object per line"
    if ".json" not in (suffix.lower() for suffix in path.suffixes):
        json_hint = ""
    for lineno, raw in enumerate(_split_lines(_decompressed_chunks(path, compression)), 1):
        try:
            # A byte-order mark is legal at the start of a file but not inside JSON.
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as err:
            yield lineno, _BadRecord(INVALID_UTF8, _utf8_detail(err))
            continue
        if not line or line.isspace():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            yield lineno, _BadRecord(MALFORMED_JSON, f"{err.msg}: column {err.colno}{json_hint}")
        except RecursionError:
            yield lineno, _BadRecord(MALFORMED_JSON, "nested too deeply")


def _decompressed_chunks(path: Path, compression: str | None) -> Iterator[bytes]:
    """The file's bytes, decompressed, in chunks; truncated or corrupt files raise UserError."""
    with _open(path) as raw:
        try:
            if compression == "gzip":
                with gzip.GzipFile(fileobj=raw) as stream:
                    yield from iter(lambda: stream.read(_CHUNK_BYTES), b"")
            elif compression == "zstd":
                yield from _zstd_chunks(raw)
            else:
                yield from iter(lambda: raw.read(_CHUNK_BYTES), b"")
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as err:
            raise UserError(
                f"{path}: cannot read the {compression or 'file'} data ({err}). The file may be "
                "truncated or corrupt; download or compress it again."
            ) from err


def _zstd_chunks(raw: BinaryIO) -> Iterator[bytes]:
    """Decompress all zstd frames of `raw`. Unlike `stream_reader`, this notices a truncated
    last frame instead of silently returning a partial last line."""
    decompressor = zstandard.ZstdDecompressor()
    frame = decompressor.decompressobj()
    in_frame = False
    while chunk := raw.read(_ZSTD_INPUT_BYTES):
        while chunk:
            in_frame = True
            data = frame.decompress(chunk)
            if data:
                yield data
            chunk = b""
            if frame.eof:  # a file may hold several frames (e.g. written by pzstd)
                chunk, frame, in_frame = frame.unused_data, decompressor.decompressobj(), False
    if in_frame:
        raise EOFError("the last zstd frame is incomplete")


def _split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (without b"\\n") from a stream of chunks; a line may span many chunks."""
    partial: list[bytes] = []  # pieces of the current line; joined once, so long lines stay linear
    for chunk in chunks:
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            partial.append(chunk)
            continue
        partial.append(lines[0])
        lines[0] = b"".join(partial)
        partial = [lines.pop()]
        yield from lines
    last = b"".join(partial)
    if last:
        yield last


def _utf8_detail(err: UnicodeDecodeError) -> str:
    return f"byte 0x{err.object[err.start]:02x} at byte {err.start + 1} of the line"


# ----- Parquet and Hugging Face datasets ---------------------------------------------------------


def _parquet_rows(path: Path, fields: list[str]) -> Iterator[tuple[int, Any]]:
    """(row number, row as a dict), one batch in memory at a time."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = parquet.schema_arrow.names
        batches = parquet.iter_batches(batch_size=_BATCH_ROWS, columns=_columns_for(fields, names))
        yield from _numbered_rows(batch.to_pylist() for batch in batches)
    except (pyarrow.ArrowException, OSError, ValueError) as err:
        raise UserError(
            f"{path}: cannot read the Parquet file ({err}). The file may be truncated or "
            "corrupt; write it again."
        ) from err


def _hf_rows(dataset: Any, fields: list[str]) -> Iterator[tuple[int, Any]]:
    """(row number, row as a dict) of a `datasets.Dataset`, one batch in memory at a time."""
    columns = _columns_for(fields, dataset.column_names)
    if columns is not None:
        dataset = dataset.select_columns(columns)

    # Arrow batches convert straight to row dicts (nested structs become dicts, like JSON).
    batches = dataset.with_format("arrow").iter(batch_size=_BATCH_ROWS)
    yield from _numbered_rows(batch.to_pylist() for batch in batches)


def _columns_for(fields: list[str], available: list[str]) -> list[str] | None:
    """The columns holding `fields` (a dotted field lives in its top-level column), so that
    other columns are never read; None (read all) if a field has no column, so that the error
    message can list the fields the records really have."""
    columns = []
    for field in fields:
        top = field if field in available else field.split(".", 1)[0]
        if top not in available:
            return None
        columns.append(top)
    return list(dict.fromkeys(columns))


def _numbered_rows(batches: Iterable[list[dict]]) -> Iterator[tuple[int, Any]]:
    row = 0
    for batch in batches:
        for record in batch:
            row += 1
            yield row, record


def _dataset_dict_splits(folder: Path) -> list[str]:
    """The split names listed in a DatasetDict's dataset_dict.json."""
    path = folder / "dataset_dict.json"
    try:
        splits = json.loads(_read_bytes(path))["splits"]
    except (ValueError, TypeError, KeyError) as err:  # JSON, UTF-8 and shape errors
        raise UserError(
            f"{path}: not a valid DatasetDict index ({type(err).__name__}: {err}). "
            "Save the DatasetDict again with save_to_disk."
        ) from err
    if not isinstance(splits, list) or not all(isinstance(name, str) for name in splits):
        raise UserError(
            f"{path}: 'splits' should be a list of split names. "
            "Save the DatasetDict again with save_to_disk."
        )
    return splits


def _load_hf(folder: Path) -> Any:
    """`datasets.Dataset.load_from_disk`, imported lazily: the import takes a second and most
    runs need none."""
    import datasets

    try:
        return datasets.Dataset.load_from_disk(str(folder))
    except Exception as err:  # any failure here means a damaged folder, not a bug of ours
        raise UserError(
            f"{folder}: cannot load the Hugging Face dataset ({type(err).__name__}: {err}). "
            "Save it again with save_to_disk."
        ) from err


# ----- fields --------------------------------------------------------------------------------------


def _lookup(record: dict, path: str) -> Any:
    """The value at dotted `path` in `record`, or _MISSING. A key that itself contains the dots
    (a flattened column "meta.pile_set_name") wins over the nested path."""
    if path in record:
        return record[path]
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _text_from_field(record: dict, field: str) -> str:
    text = _lookup(record, field)
    if text is _MISSING:
        raise _BadRecord(
            MISSING_TEXT,
            f"no field {field!r}; the record has {_describe_fields(record)}; pass --text-field "
            "if the text is in another field",
        )
    if not isinstance(text, str):
        raise _BadRecord(TEXT_NOT_STRING, f"field {field!r} is {_type_name(text)}")
    match = _SURROGATE.search(text)
    if match:  # JSON escapes can encode these; they cannot be written out as UTF-8 later
        char = ord(match.group())
        raise _BadRecord(INVALID_UTF8, f"field {field!r} holds the lone surrogate U+{char:04X}")
    return text


def _describe_fields(record: dict) -> str:
    if not record:
        return "no fields"
    names = [repr(name) for name in list(record)[:8]]
    more = ", ..." if len(record) > 8 else ""
    return f"fields {', '.join(names)}{more}"


def _type_name(value: Any) -> str:
    """A value's type in JSON words, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"of type {type(value).__name__}"


# ----- files -------------------------------------------------------------------------------------


def _open(path: Path) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as err:
        raise UserError(f"{path}: cannot open the file ({err.strerror or err}).") from err


def _read_bytes(path: Path) -> bytes:
    with _open(path) as handle:
        try:
            return handle.read()
        except OSError as err:
            raise UserError(f"{path}: cannot read the file ({err.strerror or err}).") from err
