"""The passes of `mixtune prepare` over the documents, shared by the one-process path
(`prepare.py`) and the N-task path (`tokenize_tasks.py`):

    scan          validate every record, count documents and exact duplicates, fix the
                  train/validation split (given by `train/` and `validation/` folders, else a hash
                  of the text)
    tokenizer     train a byte-level BPE on the training split (or load the user's)
    tokenize      encode in batches (the Rust tokenizer uses every core), one file per split and
                  domain
    finish        the manifest and the dataset record of the token files
"""

from __future__ import annotations

import hashlib
import logging
from array import array
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from mixtune.data import store
from mixtune.data.config import PrepareOptions
from mixtune.data.sources import Document, read_documents
from mixtune.data.tokenizer import (
    EOS,
    copy_tokenizer_files,
    load_tokenizer,
    save_tokenizer,
    train_bpe,
)
from mixtune.errors import UserError
from mixtune.io import write_json_atomic
from mixtune.progress import Progress
from mixtune.provenance import write_dataset_record
from mixtune.records import Manifest, TokenizerInfo

log = logging.getLogger(__name__)

# Tokenize this many documents per call: large enough to keep the Rust thread pool busy,
# small enough that a buffer of raw text stays a few MB.
BATCH_DOCS = 512


@dataclass
class Scan:
    """What pass 1 learned: per-domain counts and which unsplit documents go to validation."""

    domains: list[str] = field(default_factory=list)
    validation_threshold: dict[str, float] = field(
        default_factory=dict
    )  # domain -> raised threshold
    skipped: Counter = field(default_factory=Counter)  # (split, domain, reason) -> n
    # Exact duplicates (`Hashes`); None: not counted (a corpus past DUPLICATE_COUNT_MAX_DOCS).
    # split -> domain -> repeated documents (str keys: the executor writes the Scan as JSON)
    duplicates: dict[str, dict[str, int]] | None = None
    in_train: dict[str, int] | None = None  # domain -> validation documents also in train

    def to_json(self) -> dict:
        """The scan as JSON values, `skipped` as [split, domain, reason, n] rows: what a task of
        `prepare --tasks` is handed, for the executor writes its tasks' arguments as JSON (and
        JSON keys are strings, never the tuples of `skipped`)."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "skipped": [[*key, n] for key, n in self.skipped.items()]}

    @classmethod
    def from_json(cls, obj: dict) -> Scan:
        """The scan `to_json` gave."""
        skipped = Counter({tuple(row[:3]): row[3] for row in obj["skipped"]})
        return cls(**{**obj, "skipped": skipped})


def text_hash(text: str) -> int:
    """The text's 8-byte BLAKE2b as an integer: what `hash_unit` splits on and what exact
    duplicates are counted by."""
    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def hash_unit(text: str) -> float:
    """A deterministic number in [0, 1) from the text: the same document always lands in the same
    split, wherever it appears (so exact duplicates never straddle train and validation)."""
    return text_hash(text) / 2**64


# Counting exact duplicates keeps every document's 8-byte hash through the scan: 8 bytes a document
# (800 MB for 100 million), sorted in place at the end. Past this many documents the scan drops
# them and the manifest leaves the counts out (unknown) rather than take more memory.
DUPLICATE_COUNT_MAX_DOCS = 100_000_000


class Hashes:
    """Pass 1's text hashes by split and domain, for counting exact duplicates once the split is
    final. The scan runs in one process before any task, so the counts are exact whatever
    `--tasks` (a duplicate in another file or task is still a duplicate)."""

    def __init__(self) -> None:
        # (split, domain, hash-split?) -> hashes; the hash-split ones can still move (`to_validation`)
        self.by_key: dict[tuple[str, str, bool], array] = defaultdict(lambda: array("Q"))
        self.n = 0
        self.full = False

    def add(self, split: str, domain: str, h: int, hashed: bool) -> None:
        if self.full:
            return
        if self.n >= DUPLICATE_COUNT_MAX_DOCS:
            log.info("more than %d documents: exact duplicates are not counted (memory)",
                     DUPLICATE_COUNT_MAX_DOCS)
            self.full = True
            self.by_key.clear()
            return
        self.by_key[(split, domain, hashed)].append(h)
        self.n += 1

    def to_validation(self, domain: str, threshold: float) -> None:
        """Move the domain's hash-split training documents at or under its raised threshold to
        validation, as `split_of` does (see `scan`)."""
        if self.full:
            return
        train = self.by_key.pop(("train", domain, True), array("Q"))
        self.by_key[("train", domain, True)] = array("Q", (h for h in train
                                                            if h / 2**64 > threshold))
        self.by_key[("validation", domain, True)].extend(h for h in train
                                                         if h / 2**64 <= threshold)

    def count(self, domains: list[str]) -> tuple[dict | None, dict | None]:
        """{split: {domain: documents whose exact text came earlier in that split and domain}},
        {domain: validation documents whose exact text is in its training split}; (None, None)
        when not counted."""
        if self.full:
            return None, None
        duplicates: dict[str, dict[str, int]] = {"train": {}, "validation": {}}
        in_train = {}
        for d in domains:
            train, val = self._sorted("train", d), self._sorted("validation", d)
            duplicates["train"][d], duplicates["validation"][d] = _repeats(train), _repeats(val)
            at = np.minimum(np.searchsorted(train, val), max(train.size - 1, 0))
            in_train[d] = int(np.count_nonzero(train[at] == val)) if train.size else 0
        self.by_key.clear()
        return duplicates, in_train

    def _sorted(self, split: str, domain: str) -> np.ndarray:
        """The split and domain's hashes, sorted; in place where they are of one kind (no copy)."""
        parts = [np.frombuffer(self.by_key.pop((split, domain, hashed), array("Q")), np.uint64)
                 for hashed in (False, True)]
        a = parts[0] if not parts[1].size else parts[1] if not parts[0].size else np.concatenate(parts)
        a.sort()
        return a


def _repeats(hashes: np.ndarray) -> int:
    """Of sorted hashes, how many repeat an earlier one."""
    return int(hashes.size - np.count_nonzero(hashes[1:] != hashes[:-1])) - (hashes.size > 0)


def scan(opts: PrepareOptions) -> Scan:
    scan = Scan()
    docs: Counter = Counter()  # (split, domain) -> documents
    best: dict[str, tuple[float, int]] = {}  # domain -> (smallest hash, copies), unsplit docs

    def on_skip(split, domain, reason):
        scan.skipped[(split, domain, reason)] += 1

    hashes = Hashes()
    progress = Progress("scanning", unit="doc")
    for doc in documents(opts, on_skip):
        progress.update()
        h = text_hash(doc.text)
        if doc.split is not None:
            docs[(doc.split, doc.domain)] += 1
            hashes.add(doc.split, doc.domain, h, hashed=False)
            continue
        u = h / 2**64  # hash_unit(doc.text)
        split = "validation" if u < opts.validation_fraction else "train"
        docs[(split, doc.domain)] += 1
        hashes.add(split, doc.domain, h, hashed=True)
        if doc.domain not in best or u < best[doc.domain][0]:
            best[doc.domain] = (u, 1)
        elif u == best[doc.domain][0]:
            best[doc.domain] = (u, best[doc.domain][1] + 1)  # an exact duplicate of the closest
    progress.close()

    # The hash split keeps at least one validation document per domain: if none fell below the
    # threshold, the domain's threshold rises to the document closest to it, so that it moves over
    # with all its exact duplicates (a duplicate in train would leak into validation).
    for domain, (u, copies) in best.items():
        if docs[("validation", domain)] == 0:
            scan.validation_threshold[domain] = u
            docs[("validation", domain)] += copies
            docs[("train", domain)] -= copies
            hashes.to_validation(domain, u)

    scan.domains = sorted({d for _, d in docs})
    _check_domains(opts, scan.domains, docs)
    scan.duplicates, scan.in_train = hashes.count(scan.domains)
    return scan


def _check_domains(opts: PrepareOptions, domains: list[str], docs: Counter) -> None:
    """Refuse a corpus with no documents or a domain without training documents; warn about
    one-domain corpora, domains without validation and folders that look like splits."""
    if not domains:
        raise UserError(f"{', '.join(opts.sources)}: no documents found.")
    if len(domains) == 1:
        log.warning(
            "one domain only (%s): there is no mixture to choose. Put each domain in a folder of "
            "its own (SOURCE/<domain>/...) or name the field that holds it with --domain-field.",
            domains[0],
        )
    no_val = [d for d in domains if docs[("validation", d)] == 0]
    if no_val:
        log.warning(
            "domain(s) %s have no validation documents: evaluation and the report leave them out; "
            "add them under validation/.",
            ", ".join(no_val),
        )
    split_like = [d for d in domains if d in ("train", "validation", "val", "test")]
    if split_like:
        # Split folders are recognised only as a pair (train/ and validation/ or val/).
        log.warning(
            "domain(s) named %s: if these are split folders, add the missing validation/ (or "
            "train/) folder; as it is they are read as domains.",
            ", ".join(split_like),
        )
    no_train = [d for d in domains if docs[("train", d)] == 0]
    if no_train:
        raise UserError(
            f"domain(s) {', '.join(no_train)} have no training documents (a domain needs at least "
            "2 documents for the hash split, or documents under train/)."
        )


def documents(opts: PrepareOptions, on_skip=None) -> Iterator[Document]:
    return read_documents(
        opts.sources,
        text_field=opts.text_field,
        domain_field=opts.domain_field,
        skip_bad=opts.skip_bad_records,
        on_skip=on_skip,
    )


def split_of(doc: Document, validation_fraction: float, thresholds: dict[str, float]) -> str:
    """The document's split: its folder's, else from the hash of its text (see `_scan`)."""
    if doc.split is not None:
        return doc.split
    u = hash_unit(doc.text)
    val = u < validation_fraction or u <= thresholds.get(doc.domain, -1.0)
    return "validation" if val else "train"


def with_split(opts: PrepareOptions, scan: Scan) -> Iterator[tuple[str, Document]]:
    """Documents paired with their split; sources without split folders are hash-split."""
    for doc in documents(opts):
        yield split_of(doc, opts.validation_fraction, scan.validation_threshold), doc


def make_tokenizer(opts: PrepareOptions, scan: Scan, out_dir: Path):
    if opts.tokenizer:
        tok, eos = load_tokenizer(opts.tokenizer)
        src = Path(opts.tokenizer)
        if src.is_dir():
            copy_tokenizer_files(src, out_dir)
        else:
            save_tokenizer(tok, out_dir, eos)
        return tok, eos

    budget = opts.tokenizer_train_bytes

    def train_texts() -> Iterator[str]:
        used = 0
        for split, doc in with_split(opts, scan):
            if split == "train":
                used += len(doc.text)
                yield doc.text
                if used >= budget:  # a sample of a big corpus trains a tokenizer just as well
                    return

    log.info(
        "training a byte-level BPE tokenizer (vocab %d) on the training split", opts.vocab_size
    )
    tok = train_bpe(train_texts(), opts.vocab_size)
    save_tokenizer(tok, out_dir)
    return tok, EOS


def encode(tok, texts: list[str], eos_id: int) -> np.ndarray:
    """The token ids of `texts`, each followed by EOS, as one array (the batch uses every core)."""
    encoded = tok.encode_batch(texts, add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) + 1 for e in encoded), dtype=np.int64, count=len(encoded))
    ids = np.empty(int(lengths.sum()), dtype=np.int64)
    ends = np.cumsum(lengths)
    for e, end, n in zip(encoded, ends, lengths, strict=True):
        ids[end - n : end - 1] = e.ids
    ids[ends - 1] = eos_id  # EOS after every document
    return ids


def tokenize_all(opts, scan, tok, eos_id, dtype, staged) -> dict:
    writers = {
        (split, d): store.TokenWriter(staged / split / f"{d}.bin", dtype)
        for split in store.SPLITS
        for d in scan.domains
    }
    buffers: dict[tuple[str, str], list[str]] = defaultdict(list)

    def flush(key):
        writers[key].write(encode(tok, buffers[key], eos_id), documents=len(buffers[key]))
        buffers[key].clear()

    progress = Progress("tokenizing", unit="doc")
    try:
        for split, doc in with_split(opts, scan):
            key = (split, doc.domain)
            buffers[key].append(doc.text)
            progress.update()
            if len(buffers[key]) >= BATCH_DOCS:
                flush(key)
        for key in [k for k, v in buffers.items() if v]:
            flush(key)
    finally:
        progress.close()
        for w in writers.values():
            w.close()
    return {key: (w.documents, w.tokens) for key, w in writers.items()}


def finish(opts, scan, counts, staged: Path, out: Path, vocab_size, eos_id, dtype) -> None:
    """Write the manifest and the dataset record of the token files in `staged`."""
    manifest = _manifest(opts, scan, counts, staged, vocab_size, eos_id, dtype)
    write_json_atomic(staged / store.MANIFEST, manifest.to_json())
    write_dataset_record(staged, out, manifest, [str(Path(x).resolve()) for x in opts.sources])


def _manifest(opts, scan, counts, staged, vocab_size, eos_id, dtype) -> Manifest:
    short = [d for d in scan.domains if counts[("train", d)][1] < opts.seq_len + 1]
    if short:
        raise UserError(
            f"domain(s) {', '.join(short)} have fewer than seq_len + 1 = {opts.seq_len + 1} training "
            "tokens, too few for one training sequence; add data or lower --seq-len."
        )
    splits = {}
    for split in store.SPLITS:
        splits[split] = {}
        for d in scan.domains:
            skipped = {r: n for (s, dom, r), n in scan.skipped.items() if s == split and dom == d}
            n_docs, n_tok = counts[(split, d)]
            splits[split][d] = store.domain_counts(
                n_docs, n_tok, opts.seq_len, skipped,
                duplicates=None if scan.duplicates is None else scan.duplicates[split][d],
                in_train=None if scan.in_train is None or split == "train" else scan.in_train[d],
            )
    # Skipped records without a split (hash split) or a domain, or of a domain that never had a
    # good record (with --domain-field), have no entry above; list them here so that every
    # skipped record is reported somewhere (the last kind used to be counted in skipped_total only).
    unassigned = [
        {"split": s, "domain": d, "reason": r, "count": n}
        for (s, d, r), n in sorted(scan.skipped.items(), key=str)
        if s is None or d is None or d not in scan.domains
    ]
    return Manifest(
        domains=scan.domains,
        seq_len=opts.seq_len,
        dtype=dtype.str,
        tokenizer=TokenizerInfo(
            sha256=store.tokenizer_hash(staged / "tokenizer"),
            vocab_size=vocab_size,
            eos_id=eos_id,
            source=opts.tokenizer
            or f"byte-level BPE trained on the training split (vocab {opts.vocab_size})",
        ),
        splits=splits,
        skipped_outside_domains=unassigned,
        skipped_total=sum(scan.skipped.values()),
        sources=[str(Path(s).resolve()) for s in opts.sources],
        options=opts.recorded(),
    )
