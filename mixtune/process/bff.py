"""DCLM-Baseline's deduplication: a Bloom filter of n-grams over paragraphs and documents (BFF,
`--remove-type old-both`, DCLM's `dedup/bff`), as one datatrove block.

Documents are read in order. A document is cut into paragraphs at each newline; a paragraph's
n-grams are its runs of 13 word tokens (a paragraph of fewer tokens has none and is always kept).
A paragraph is dropped when more than `threshold` (0.8) of its n-grams are already in the filter;
the n-grams of the paragraphs kept are then added. The whole document is dropped when more than
`threshold` of all its n-grams were in the filter. Tokens are runs of letters and digits and
single punctuation marks (DCLM's Unicode word boundaries, without whitespace).

As in DCLM, each task deduplicates its own shard with its own filter (DCLM shards the pool and
runs BFF per shard): with `--tasks 1` the filter spans the whole corpus. The filter is sized for
`expected_ngrams` at a false-positive rate `fp_rate` per n-gram (DCLM: 0.01): about 1.2 bytes per
expected n-gram.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from pathlib import Path

import numpy as np
import regex
import xxhash
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep

# Word tokens as Unicode word boundaries give them (UAX #29, as DCLM's Rust BFF splits), closely:
# runs of letters, marks and digits, joined across an apostrophe or a point ("don't", "3.14");
# one token per Han, Hiragana or Katakana character; each other non-space character alone.
_TOKEN = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}]"
    r"|[\p{L}\p{M}\p{N}_--\p{Han}\p{Hiragana}\p{Katakana}]+"
    r"(?:['’.][\p{L}\p{M}\p{N}_--\p{Han}\p{Hiragana}\p{Katakana}]+)*"
    r"|[^\p{L}\p{M}\p{N}_\s]",
    regex.V1,
)
_MASK64 = np.uint64(2**64 - 1)
_PRIME = np.uint64(0x100000001B3)  # mixes token hashes into an n-gram hash (FNV's prime)


def bloom_bits(expected: int, fp_rate: float) -> int:
    """Bits of a Bloom filter holding `expected` keys at false-positive rate `fp_rate` (the
    optimal m = -n ln p / ln² 2: 9.6 bits, 1.2 bytes, per key at 1%)."""
    return max(64, math.ceil(-expected * math.log(fp_rate) / math.log(2) ** 2))


def memory_bytes() -> int | None:
    """The memory a process here may use: the machine's, or its container's (cgroup v2) limit
    when lower; None where the system does not say."""
    try:
        sizes = [os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")]
    except (ValueError, OSError, AttributeError):  # no such sysconf name on this system
        sizes = []
    limit = Path("/sys/fs/cgroup/memory.max")
    text = limit.read_text().strip() if limit.is_file() else "max"
    if text.isdigit():
        sizes.append(int(text))
    return min(sizes, default=None)


def _size(n: float) -> str:
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n, i = n / 1024, i + 1
    return f"{n:.3g} {units[i]}"


class BloomFilter:
    """A Bloom filter of 64-bit keys, `k` bit positions per key by double hashing."""

    def __init__(self, expected: int, fp_rate: float) -> None:
        bits = bloom_bits(expected, fp_rate)
        self.size = bits
        self.k = max(1, round(bits / expected * math.log(2)))
        self.bits = np.zeros((bits + 7) // 8, dtype=np.uint8)

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        h1 = keys
        h2 = _splitmix(keys) | np.uint64(1)
        i = np.arange(self.k, dtype=np.uint64)
        with np.errstate(over="ignore"):
            return (h1[:, None] + i[None, :] * h2[:, None]) % np.uint64(self.size)

    def contains(self, keys: np.ndarray) -> np.ndarray:
        pos = self._positions(keys)
        hit = (self.bits[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1
        return hit.all(axis=1)

    def add(self, keys: np.ndarray) -> None:
        pos = self._positions(keys).ravel()
        np.bitwise_or.at(self.bits, pos >> np.uint64(3),
                         (np.uint8(1) << (pos & np.uint64(7)).astype(np.uint8)))


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def ngram_keys(paragraph: str, n: int) -> np.ndarray:
    """One 64-bit key per n-gram of word tokens (none for a paragraph of fewer than n tokens)."""
    tokens = _TOKEN.findall(paragraph)
    if len(tokens) < n:
        return np.empty(0, dtype=np.uint64)
    h = np.fromiter((xxhash.xxh3_64_intdigest(t.encode("utf-8", "surrogatepass")) for t in tokens), dtype=np.uint64,
                    count=len(tokens))
    windows = len(tokens) - n + 1
    key = np.zeros(windows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):  # key = sum_j h[i+j] * P^(n-1-j), mod 2^64: order matters
            key = key * _PRIME + h[j: j + windows]
    return _splitmix(key)


class BFFDedup(PipelineStep):
    """Paragraph and document dedup with a Bloom filter of n-grams; see the module docstring."""

    name = "bff dedup"
    type = "🫂 - DEDUPS"

    def __init__(self, ngram: int = 13, threshold: float = 0.8,
                 expected_ngrams: int = 100_000_000, fp_rate: float = 0.01) -> None:
        super().__init__()
        if ngram < 1 or expected_ngrams < 1:
            raise ValueError("ngram and expected_ngrams must be at least 1")
        if not (0 < fp_rate < 1 and 0 <= threshold <= 1):
            raise ValueError("fp_rate must lie in (0, 1) and threshold in [0, 1]")
        need, have = bloom_bits(expected_ngrams, fp_rate) / 8, memory_bytes()
        if have is not None and need > have:
            # Refused here, when the pipeline is read: in a task, the allocation fails (or the
            # machine swaps) after the earlier stages have run.
            raise ValueError(
                f"expected_ngrams {expected_ngrams} at fp_rate {fp_rate} needs a Bloom filter of "
                f"{_size(need)} in each task, more than this machine's {_size(have)} of memory; "
                "give the n-grams one task's shard holds (about 1.2 bytes each at fp_rate 0.01), "
                "or raise fp_rate")
        self.ngram, self.threshold = ngram, threshold
        self.expected_ngrams, self.fp_rate = expected_ngrams, fp_rate

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1):
        bloom = BloomFilter(self.expected_ngrams, self.fp_rate)
        for doc in data:
            text = self.dedup(doc.text, bloom)
            if text is None:
                self.stat_update("dropped_document")
                continue
            doc.text = text
            yield doc

    def dedup(self, text: str, bloom: BloomFilter) -> str | None:
        """The text without its duplicate paragraphs, or None when the document is a duplicate."""
        starts = [0] + [m.start() for m in re.finditer("\n", text)] + [len(text)]
        kept, total, seen = [], 0, 0
        for a, b in itertools.pairwise(starts):
            paragraph = text[a:b]  # from one newline to the next, as DCLM cuts them
            keys = ngram_keys(paragraph, self.ngram)
            contained = int(bloom.contains(keys).sum()) if len(keys) else 0
            total += len(keys)
            seen += contained
            if len(keys) and contained / len(keys) > self.threshold:
                self.stat_update("dropped_paragraph")
                continue
            if len(keys):
                bloom.add(keys)
            kept.append(paragraph)
        if total and seen / total > self.threshold:
            return None
        return "".join(kept)
