"""`mixtune prepare --tasks N`: the tokenization as N tasks on datatrove's executors.

Passes 1 and 2 (the scan, the tokenizer trained on a sample) stay in this process: they are cheap
next to tokenizing everything. Pass 3 runs as N tasks, task r tokenizing every N-th input file
from r into its own token files, cut into segments at file boundaries. A last task merges the
segments of every split and domain in the order of the files, so the token files are byte for
byte those of a one-process `prepare` (tested), and publishes the dataset.

No shuffle pass is needed (DCLM's tokenize-shuffle writes shuffled shards): the sampler draws
sequences through a seeded permutation at read time.

Everything lives in OUT.work/ until the end; a rerun skips the tasks that finished.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
from datatrove.pipeline.base import PipelineStep

from mixtune.data import store
from mixtune.data.config import PrepareOptions
from mixtune.data.sources import read_documents
from mixtune.errors import UserError
from mixtune.io import publish, remove, start_work, work_dir, write_json_atomic, writing

log = logging.getLogger(__name__)

SEGMENTS = "segments.json"


class TokenizeShard(PipelineStep):
    """Task r of N: tokenize every N-th input file from r into WORK/tokens/<r>/<split>/<domain>.bin,
    with WORK/tokens/<r>/segments.json listing (split, domain, file index, documents, tokens) in
    the order written."""

    name = "tokenize"
    type = "🔢 - TOKENIZE"

    def __init__(self, opts: dict, thresholds: dict[str, float], work: str, eos_id: int,
                 dtype: str) -> None:
        super().__init__()
        self.opts, self.thresholds, self.work = opts, thresholds, work
        self.eos_id, self.dtype = eos_id, dtype

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        final = Path(self.work) / "tokens" / f"{rank:05d}"
        folder = final.with_name(final.name + ".tmp")
        remove(folder)  # a task that was stopped (killed) starts over
        with removed_on_failure(folder):
            segments = self._tokenize(folder, rank, world_size)
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / SEGMENTS, segments)
        remove(final)
        os.replace(folder, final)
        return
        yield

    def _tokenize(self, folder: Path, rank: int, world_size: int) -> list[list]:
        """Write this task's token files into `folder`; its segments."""
        from mixtune.data.tokenize import BATCH_DOCS, encode, split_of
        from mixtune.data.tokenizer import load_tokenizer

        opts = PrepareOptions(**self.opts)
        tok, _eos = load_tokenizer(str(Path(self.work) / "tokenizer"))
        writers: dict[tuple[str, str], store.TokenWriter] = {}
        buffers: dict[tuple[str, str], list[str]] = defaultdict(list)
        segments: list[list] = []  # [split, domain, unit, documents, tokens]
        current: dict[tuple[str, str], list] = {}  # each key's segment of the current file
        unit = [-1]

        def flush(key):
            if key not in writers:
                split, domain = key
                writers[key] = store.TokenWriter(folder / split / f"{domain}.bin",
                                                 np.dtype(self.dtype))
            ids = encode(tok, buffers[key], self.eos_id)
            writers[key].write(ids, documents=len(buffers[key]))
            if key not in current:
                current[key] = [*key, unit[0], 0, 0]
                segments.append(current[key])
            current[key][3] += len(buffers[key])
            current[key][4] += int(ids.size)
            buffers[key].clear()

        def next_unit(index: int) -> None:  # segments end at file boundaries
            for key in [k for k, v in buffers.items() if v]:
                flush(key)
            current.clear()
            unit[0] = index

        docs = read_documents(opts.sources, text_field=opts.text_field,
                              domain_field=opts.domain_field, skip_bad=opts.skip_bad_records,
                              shard=(rank, world_size), on_unit=next_unit)
        with closing_all(writers):
            for doc in docs:
                key = (split_of(doc, opts.validation_fraction, self.thresholds), doc.domain)
                buffers[key].append(doc.text)
                if len(buffers[key]) >= BATCH_DOCS:
                    flush(key)
            next_unit(-1)
        return segments


@contextmanager
def removed_on_failure(path: Path) -> Iterator[None]:
    """A failure inside the block (an error, Ctrl-C) removes `path`, the work it was writing, and
    is raised again: a failed task leaves no temp files in OUT.work."""
    try:
        yield
    except BaseException:
        remove(path)
        raise


@contextmanager
def closing_all(writers: dict[tuple[str, str], store.TokenWriter]) -> Iterator[None]:
    """Close every writer at the end of the block; after a failure, one that cannot flush on a
    full disk is given up quietly (the first error is the one raised)."""
    try:
        yield
    except BaseException:
        for w in writers.values():
            with suppress(UserError):
                w.close()
        raise
    for w in writers.values():
        w.close()


def merge(work: Path, tasks: int, domains: list[str], dtype: np.dtype, dest: Path) -> dict:
    """DEST/<split>/<domain>.bin from every task's segments, in file order; the counts
    {(split, domain): (documents, tokens)}."""
    pieces = defaultdict(list)  # (split, domain) -> [(unit, task, offset, documents, tokens)]
    for rank in range(tasks):
        offsets: dict[tuple, int] = defaultdict(int)
        folder = work / "tokens" / f"{rank:05d}"
        for split, domain, unit, docs, tokens in json.loads((folder / SEGMENTS).read_text()):
            key = (split, domain)
            pieces[key].append((unit, rank, offsets[key], docs, tokens))
            offsets[key] += tokens
    counts = {}
    size = dtype.itemsize
    for split in store.SPLITS:
        for domain in domains:
            writer = store.TokenWriter(dest / split / f"{domain}.bin", dtype)
            for _unit, rank, offset, n_docs, n_tokens in sorted(pieces[(split, domain)]):
                src = work / "tokens" / f"{rank:05d}" / split / f"{domain}.bin"
                with open(src, "rb") as f:
                    f.seek(offset * size)
                    writer.write_raw(f, n_tokens, n_docs)
            writer.close()
            counts[(split, domain)] = (writer.documents, writer.tokens)
    return counts


class MergeAndPublish(PipelineStep):
    """The last task: merge the token shards, write the manifest and the record, publish."""

    name = "merge"
    type = "📦 - PUBLISH"

    def __init__(self, opts: dict, scan: dict, work: str, tasks: int, vocab_size: int,
                 eos_id: int, dtype: str) -> None:
        super().__init__()
        # The scan as `Scan.to_json`: the executor writes these arguments as JSON.
        self.opts, self.scan, self.work, self.tasks = opts, scan, work, tasks
        self.vocab_size, self.eos_id, self.dtype = vocab_size, eos_id, dtype

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        from mixtune.data.tokenize import Scan, finish

        opts = PrepareOptions(**self.opts)
        work, out = Path(self.work), Path(opts.out)
        scan = Scan.from_json(self.scan)
        staged = work / "dataset"
        remove(staged)
        with removed_on_failure(staged):
            _copy_folder(work / "tokenizer", staged / "tokenizer")
            dtype = np.dtype(self.dtype)
            counts = merge(work, self.tasks, scan.domains, dtype, staged)
            finish(opts, scan, counts, staged, out, self.vocab_size, self.eos_id, dtype)
            publish(staged, out)
        return
        yield


def _copy_folder(src: Path, dst: Path) -> None:
    """Copy the files of the flat folder `src` (the tokenizer's) to a new folder `dst`: copytree
    would report a full disk as a shutil.Error without its errno."""
    with writing(dst):
        dst.mkdir(parents=True)
        for f in sorted(src.iterdir()):
            shutil.copy2(f, dst / f.name)


def prepare_in_tasks(opts: PrepareOptions, scan) -> Path | None:
    """Tokenize as opts.tasks tasks on opts.executor; the dataset, or None if submitted."""
    from dataclasses import asdict

    from mixtune.data.tokenize import make_tokenizer
    from mixtune.executors import Stage, execute

    out = Path(opts.out)
    work = work_dir(out)
    # The dataset does not depend on the number of tasks, but the shards do: a rerun with another
    # number starts the work over.
    start_work(work, {**opts.recorded(), "tasks": opts.tasks})
    if not (work / "tokenizer").is_dir():
        tmp = work / "tokenizer.tmp"
        remove(tmp)
        with removed_on_failure(tmp):
            make_tokenizer(opts, scan, tmp)
        os.replace(tmp, work / "tokenizer")
    from mixtune.data.tokenizer import load_tokenizer

    tok, eos = load_tokenizer(str(work / "tokenizer"))
    eos_id = tok.token_to_id(eos)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    dtype = store.token_dtype(vocab_size).str
    fields = asdict(opts)
    stages = [
        Stage("tokenize", [TokenizeShard(fields, dict(scan.validation_threshold), str(work),
                                         eos_id, dtype)], opts.tasks),
        Stage("merge", [MergeAndPublish(fields, scan.to_json(), str(work), opts.tasks, vocab_size,
                                        eos_id, dtype)], 1),
    ]
    if execute(stages, opts, work / "logs"):
        return None
    shutil.rmtree(work, ignore_errors=True)
    return out
