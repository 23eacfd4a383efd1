"""The datatrove blocks mixtune adds around the operations: reading sources, per-domain counting,
the files stages hand to each other, and the per-domain output.

Each block keeps datatrove's narrow contract, `run(data, rank, world_size)` yielding documents. A
document carries its domain and split in `metadata`, from the source to the output folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import zstandard
from datatrove.data import Document, DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.filters.base_filter import BaseFilter, get_filter_result
from datatrove.pipeline.formatters.base import BaseFormatter

from mixtune.data.sources import read_documents
from mixtune.errors import UserError
from mixtune.io import writing

DOMAIN, SPLIT = "domain", "split"
SKIPPED = "skipped"  # stats label of records skipped as empty or bad at reading

# Stats labels are "<measure>/<domain>"; domain names never hold "/" (they are file names).
DOCS_IN, CHARS_IN, DOCS_OUT, CHARS_OUT, DROPPED = "docs_in", "chars_in", "docs_out", "chars_out", \
    "dropped"


def shard_file(folder: str | os.PathLike, rank: int) -> Path:
    return Path(folder) / f"{rank:05d}.jsonl.zst"


def _count(step: PipelineStep, measure: str, doc: Document, chars: int | None = None) -> None:
    domain = doc.metadata[DOMAIN]
    step.stat_update(f"{measure}/{domain}")
    if measure in (DOCS_IN, DOCS_OUT):
        chars_label = CHARS_IN if measure == DOCS_IN else CHARS_OUT
        step.stat_update(f"{chars_label}/{domain}", value=len(doc.text) if chars is None else chars)


class SourceReader(PipelineStep):
    """Raw sources (any layout `mixtune prepare` reads) → documents; task `rank` of `world_size`
    reads every world_size-th file."""

    name = "read"
    type = "📖 - READER"

    def __init__(self, sources: list[str], text_field: str = "text",
                 domain_field: str | None = None, skip_bad: bool = False) -> None:
        super().__init__()
        self.sources = [str(s) for s in sources]
        self.text_field, self.domain_field, self.skip_bad = text_field, domain_field, skip_bad

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        def on_skip(split, domain, reason):
            self.stat_update(f"{SKIPPED}/{domain or '?'}/{reason}")

        docs = read_documents(self.sources, text_field=self.text_field,
                              domain_field=self.domain_field, skip_bad=self.skip_bad,
                              on_skip=on_skip, shard=(rank, world_size))
        for i, doc in enumerate(docs):
            out = Document(doc.text, f"{rank}/{i}", metadata={DOMAIN: doc.domain, SPLIT: doc.split})
            _count(self, DOCS_OUT, out)
            yield out


class JsonlZstWriter:
    """JSON lines, zstd-compressed, into PATH.tmp; `publish()` renames it to PATH once closed, so
    a file present is complete (a rerun task rewrites it). A full disk is a UserError naming
    PATH, and the temp file is removed."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, path.with_name(path.name + ".tmp")
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            self._raw = open(self.tmp, "wb")
        self._text = io.TextIOWrapper(zstandard.ZstdCompressor().stream_writer(self._raw),
                                      encoding="utf-8")

    def write(self, record: dict) -> None:
        self._guarded(self._text.write, json.dumps(record, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if not self._raw.closed:
            self._guarded(self._text.close)  # closes the compressor and the file beneath

    def publish(self) -> None:
        os.replace(self.tmp, self.path)

    def _guarded(self, call, *args) -> None:
        try:
            with writing(self.path):
                call(*args)
        except UserError:
            # Give up what the disk did not take (closing again would retry it) and the file.
            with contextlib.suppress(OSError):
                self._raw.close()
            self.tmp.unlink(missing_ok=True)
            raise


class ShardWriter(PipelineStep):
    """Documents → FOLDER/<rank>.jsonl.zst, the hand-over between stages. Written beside and
    renamed at the end, so a file present is complete (a rerun task rewrites it)."""

    name = "hand over"
    type = "💽 - WRITER"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        writer = JsonlZstWriter(shard_file(self.folder, rank))
        try:
            for doc in data or ():
                writer.write({"id": doc.id, "text": doc.text, **doc.metadata})
        finally:
            writer.close()
        writer.publish()
        return
        yield


class ShardReader(PipelineStep):
    """FOLDER/<rank>.jsonl.zst → documents, in the order they were written (the dedup filters
    find their documents by position, so every read of a shard must give the same order)."""

    name = "read shard"
    type = "📖 - READER"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1):
        yield from read_shard(shard_file(self.folder, rank))


def read_shard(path: Path) -> Iterator[Document]:
    if not path.is_file():  # the task read no file of the sources, or kept nothing
        return
    with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as z, \
            io.TextIOWrapper(z, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            yield Document(rec.pop("text"), rec.pop("id"), metadata=rec)


class DomainWriter(PipelineStep):
    """Documents → OUT/[<split>/]<domain>/<rank>.jsonl.zst with `{"text": ...}`, the layout
    `mixtune prepare` reads; completed files only (written beside, renamed at the end)."""

    name = "write"
    type = "💽 - WRITER"

    def __init__(self, folder: str) -> None:
        super().__init__()
        self.folder = str(folder)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        files: dict[tuple, JsonlZstWriter] = {}
        try:
            for doc in data or ():
                key = (doc.metadata.get(SPLIT), doc.metadata[DOMAIN])
                if key not in files:
                    split, domain = key
                    files[key] = JsonlZstWriter(
                        shard_file(Path(self.folder, *([split] if split else []), domain), rank))
                files[key].write({"text": doc.text})
                _count(self, DOCS_OUT, doc)
        finally:
            for writer in files.values():
                writer.close()
        for writer in files.values():
            writer.publish()
        return
        yield


class Counted(PipelineStep):
    """One operation of a pipeline, counting per domain the documents and characters in and out,
    and the documents dropped and why (a filter's reason, else the operation's name).

    Filters and formatters act document by document, so `domains` can limit them to some domains
    (the others pass untouched). Other blocks (dedup) see the whole stream."""

    type = "🔢 - STEP"

    def __init__(self, label: str, block: PipelineStep, domains: list[str] | None = None,
                 reason: str | None = None) -> None:
        self.name = label  # before super().__init__, which names the stats after it
        super().__init__()
        self.reason = reason or label  # why a document the block did not pass on was dropped
        self.block = block
        self.domains = set(domains) if domains else None

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        if isinstance(self.block, (BaseFilter, BaseFormatter)):
            if hasattr(self.block, "start"):  # per-task state (a seed)
                self.block.start(rank)
            yield from self._per_document(data)
            return
        seen = {}

        def tap(docs):
            for doc in docs:
                _count(self, DOCS_IN, doc)
                seen[doc.id] = doc.metadata[DOMAIN]
                yield doc

        for doc in self.block.run(tap(data), rank, world_size):
            seen.pop(doc.id, None)
            if doc.text.strip():
                _count(self, DOCS_OUT, doc)
                yield doc
            else:
                self.stat_update(f"{DROPPED}/{doc.metadata[DOMAIN]}/{self.reason}")
        for domain in seen.values():  # the ones the block dropped
            self.stat_update(f"{DROPPED}/{domain}/{self.reason}")

    def _per_document(self, data: DocumentsPipeline) -> Iterator[Document]:
        is_filter = isinstance(self.block, BaseFilter)
        for doc in data:
            if self.domains is not None and doc.metadata[DOMAIN] not in self.domains:
                yield doc
                continue
            _count(self, DOCS_IN, doc)
            if is_filter:
                keep, reason = get_filter_result(self.block.filter(doc))
            else:
                doc.text = self.block.format(doc.text)
                keep, reason = bool(doc.text.strip()), "empty after " + self.name
            if keep:
                _count(self, DOCS_OUT, doc)
                yield doc
            else:
                reason = _label(reason or self.name)
                self.stat_update(f"{DROPPED}/{doc.metadata[DOMAIN]}/{reason}")


def _label(reason: str) -> str:
    return re.sub(r"\s+", " ", str(reason)).replace("/", " ")
