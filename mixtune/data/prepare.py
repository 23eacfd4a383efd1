"""`mixtune prepare`: raw multi-domain sources -> a dataset directory (see `store.py`).

Three streaming passes over the sources (`tokenize.py`), so memory stays flat however large the
corpus:

1. scan: validate every record, count documents and exact duplicates (8 bytes of memory a
   document, see `tokenize.Hashes`), and fix the train/validation split (given by `train/` and
   `validation/` folders, else a hash of the text);
2. train the tokenizer on the training split (skipped with `--tokenizer`);
3. tokenize in batches (the Rust tokenizer uses every core) and append to one file per split
   and domain: here, or as N tasks on an executor (`tokenize_tasks.py`), byte for byte the same.

Everything is written into a staging folder beside `--out` and renamed into place at the end, so
`--out` is either absent or complete. One prepare at a time into an `--out` (lock.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from mixtune import lock, schema
from mixtune.data import store, tokenize
from mixtune.data.config import PrepareOptions
from mixtune.errors import UserError
from mixtune.io import staged_dir, verdict
from mixtune.records import Manifest

log = logging.getLogger(__name__)


def prepare(opts: PrepareOptions) -> Path:
    _check_options(opts)
    # Locked beside `out`, not in it: publishing replaces the folder (and what is in it).
    with lock.hold(opts.out, beside=True):
        return _prepare(opts)


def _prepare(opts: PrepareOptions) -> Path:
    out = Path(opts.out)
    # With --overwrite the old dataset is not read at all: a damaged one must be replaceable.
    done = (out / store.MANIFEST).is_file() and not opts.overwrite
    found = verdict(store.open_dataset(out).manifest.options or {} if done else None,
                    opts.recorded(), complete=done)
    if found.action == "refuse":
        raise UserError(
            f"{out} already holds a dataset prepared with other options ({found.changes}); pass "
            "--overwrite to replace it or choose another --out."
        )
    if found.action == "skip":
        log.info("%s is already complete (manifest.json present); --overwrite redoes it.", out)
        return out
    # `out` may be a plain file: test is_dir() before listing it (iterdir() on a file raised
    # NotADirectoryError, a traceback instead of this message).
    if (
        out.exists()
        and not (out / store.MANIFEST).is_file()
        and (not out.is_dir() or any(out.iterdir()))
        and not opts.overwrite
    ):
        raise UserError(
            f"{out} exists and is not a dataset; choose another --out or pass --overwrite."
        )

    scan = tokenize.scan(opts)
    if in_tasks(opts):
        from mixtune.data.tokenize_tasks import prepare_in_tasks

        return prepare_in_tasks(opts, scan)
    with staged_dir(out) as staged:
        tok, eos = tokenize.make_tokenizer(opts, scan, staged / "tokenizer")
        eos_id = tok.token_to_id(eos)
        vocab_size = tok.get_vocab_size(with_added_tokens=True)
        dtype = store.token_dtype(vocab_size)
        counts = tokenize.tokenize_all(opts, scan, tok, eos_id, dtype, staged)
        tokenize.finish(opts, scan, counts, staged, out, vocab_size, eos_id, dtype)
    return out


def in_tasks(opts: PrepareOptions) -> bool:
    """Whether the tokenization runs as tasks on an executor (else in this process)."""
    return opts.tasks > 1 or opts.executor != "local"


def _check_options(opts: PrepareOptions) -> None:
    if not opts.sources:
        raise UserError("prepare needs at least one SOURCE.")
    schema.check(opts, flags=True)  # options built in Python get the command line's checks
    if in_tasks(opts):
        from mixtune.executors import require_datatrove

        require_datatrove(f"prepare --tasks {opts.tasks} --executor {opts.executor}")


def summary_lines(manifest: Manifest, out: Path) -> list[str]:
    """What `mixtune prepare` prints: per domain, the documents, tokens and sequences of each
    split; the skipped records; the dataset's folder."""
    tr, va = manifest.splits["train"], manifest.splits["validation"]
    lines = [f"{'domain':<24} {'train docs':>10} {'train tokens':>13} {'sequences':>10} "
             f"{'val docs':>9} {'val tokens':>11}"]
    lines += [f"{d:<24} {tr[d].documents:>10} {tr[d].tokens:>13} {tr[d].sequences:>10} "
              f"{va[d].documents:>9} {va[d].tokens:>11}" for d in manifest.domains]
    if manifest.skipped_total:
        lines.append(f"skipped records: {manifest.skipped_total} (reasons in {out}/manifest.json)")
    return [*lines, *_duplicates_lines(manifest, out), f"dataset: {out}"]


def _duplicates_lines(manifest: Manifest, out: Path) -> list[str]:
    """A line on exact duplicate documents, where prepare counted some (`tokenize.Hashes`)."""
    tr, va = manifest.splits["train"], manifest.splits["validation"]
    counts = [[getattr(c[d], f, None) for d in manifest.domains] for c, f in
              ((tr, "duplicates"), (va, "duplicates"), (va, "in_train"))]
    if any(n is None for row in counts for n in row) or not any(map(any, counts)):
        return []
    n_tr, n_va, n_in = map(sum, counts)
    return [f"exact duplicates: {n_tr} training and {n_va} validation documents repeat an earlier "
            f"one's text; {n_in} validation documents are also in training (per domain in "
            f"{out}/manifest.json)"]
