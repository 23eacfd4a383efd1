"""Per-document operations datatrove has no block for, with its contracts: a filter says keep, or
drop and why; a formatter returns the new text (empty text drops the document).

RefinedWeb's line-wise corrections follow Penedo et al. 2023 (arXiv 2306.01116, appendix G.2) as
DCLM's `refinedweb` configuration applies them: drop lines that are mostly upper case, only
numbers, counters ("12 likes"), or one word; cut "Read more"-style remnants; then drop the whole
document if more than 5% of its words were removed (it was mostly boilerplate).
"""

from __future__ import annotations

import importlib.util
import re
import struct
from pathlib import Path

import numpy as np
from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.filters.fasttext_filter import FastTextClassifierFilter
from datatrove.pipeline.formatters.base import BaseFormatter

from mixtune.errors import UserError


class LengthFilter(BaseFilter):
    """Keep documents whose length in characters and in words lies within the limits."""

    name = "length"

    def __init__(self, min_chars: int = 0, max_chars: int | None = None, min_words: int = 0,
                 max_words: int | None = None) -> None:
        super().__init__()
        self.min_chars, self.max_chars = min_chars, max_chars
        self.min_words, self.max_words = min_words, max_words

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        chars = len(doc.text)
        if chars < self.min_chars:
            return False, "too few characters"
        if self.max_chars is not None and chars > self.max_chars:
            return False, "too many characters"
        if self.min_words or self.max_words is not None:
            words = len(doc.text.split())
            if words < self.min_words:
                return False, "too few words"
            if self.max_words is not None and words > self.max_words:
                return False, "too many words"
        return True


class LineFilter(BaseFormatter):
    """Drop every line matching one of `patterns` (regular expressions, searched anywhere in the
    line) or with fewer than `min_words` words: boilerplate such as cookie notices or navigation."""

    name = "line filter"

    def __init__(self, patterns: list[str] | None = None, min_words: int = 0,
                 ignore_case: bool = True) -> None:
        super().__init__()
        self.patterns = [patterns] if isinstance(patterns, str) else list(patterns or [])
        flags = re.IGNORECASE if ignore_case else 0
        self._regex = re.compile("|".join(f"(?:{p})" for p in self.patterns), flags) \
            if self.patterns else None
        self.min_words = min_words

    def format(self, text: str) -> str:
        return "\n".join(line for line in text.split("\n") if self._keep(line))

    def _keep(self, line: str) -> bool:
        if self._regex is not None and self._regex.search(line):
            return False
        return len(line.split()) >= self.min_words or not line.strip()


_COUNTER = re.compile(r"^\W*\d[\d,.]*\s*(likes?|shares?|comments?|retweets?|reposts?|quotes?|"
                      r"bookmarks?|upvotes?|replies|reply|views?|followers?|following)\W*$",
                      re.IGNORECASE)
_NUMERIC = re.compile(r"^[\d\s\W]+$")
_REMNANTS = ("items in cart", "read more", "sign-in", "sign in", "log in", "login")


class RefinedWebLines(BaseFormatter):
    """RefinedWeb's line-wise corrections (see the module docstring); the document is dropped
    (its text emptied) when they remove more than `max_removed_ratio` of its words."""

    name = "refinedweb lines"

    def __init__(self, max_uppercase_ratio: float = 0.5, max_removed_ratio: float = 0.05) -> None:
        super().__init__()
        self.max_uppercase_ratio = max_uppercase_ratio
        self.max_removed_ratio = max_removed_ratio

    def format(self, text: str) -> str:
        kept = []
        for line in text.split("\n"):
            line = self._cut_remnants(line)
            if line is not None and self._keep(line):
                kept.append(line)
        words_before = len(text.split())
        out = "\n".join(kept)
        if words_before and 1 - len(out.split()) / words_before > self.max_removed_ratio:
            return ""
        return out

    def _keep(self, line: str) -> bool:
        stripped = line.strip()
        if not stripped:
            return True  # paragraph breaks stay
        letters = [c for c in stripped if c.isalpha()]
        if letters and sum(c.isupper() for c in letters) / len(letters) > self.max_uppercase_ratio:
            return False
        if _NUMERIC.match(stripped) or _COUNTER.match(stripped):
            return False
        return len(stripped.split()) > 1

    @staticmethod
    def _cut_remnants(line: str) -> str | None:
        """The line without a trailing remnant ("... Read more"); None if it is only one."""
        low = line.lower().strip()
        for remnant in _REMNANTS:
            if low == remnant:
                return None
            if low.endswith(remnant) and len(low) > len(remnant):
                line = line.rstrip()[: -len(remnant)].rstrip()
                low = line.lower().strip()
        return line


class SampleFilter(BaseFilter):
    """Keep each document with probability `rate`. Seeded per task (seed, rank), where datatrove's
    SamplerFilter draws the same numbers in every task: the same run keeps the same documents,
    and the shards are not sampled alike."""

    name = "sample"

    def __init__(self, rate: float = 0.5, seed: int = 0) -> None:
        super().__init__()
        self.rate, self.seed = rate, seed
        self._rng = np.random.default_rng([seed, 0])

    def start(self, rank: int) -> None:
        """Called by the task before its first document."""
        self._rng = np.random.default_rng([self.seed, rank])

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return bool(self._rng.uniform() < self.rate) or (False, "not sampled")


class FastTextQualityFilter(FastTextClassifierFilter):
    """DCLM's quality filter: keep documents whose fastText probability of `label` is at least
    `threshold` (DCLM-Baseline: the OH-2.5 + ELI5 classifier, label "hq", threshold 0.018112,
    its top 10%). The model is a local file, read where it lies (never downloaded)."""

    name = "fastText quality"

    def __init__(self, model: str, label: str = "hq", threshold: float = 0.018112) -> None:
        super().__init__(model, keep_labels=[(label, threshold)], save_labels_in_metadata=False,
                         newline_replacement=" ")
        self.label, self.threshold = label, threshold

    @property
    def model(self):
        if self._model is None:
            import fasttext

            try:
                self._model = fasttext.load_model(self.model_url)
            except ValueError as err:  # fastText's "has wrong file format!": a file, not a bug
                raise UserError(f"{self.model_url}: fastText cannot load it ({err}); give the "
                                "path of a fastText classifier .bin.") from None
            labels = [x.removeprefix("__label__") for x in self._model.labels]
            if self.label not in labels:
                raise UserError(f"{self.model_url}: the fastText model has no label "
                                f"{self.label!r} (it has {', '.join(labels)}); set label: to one "
                                "of them.")
        return self._model

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return super().filter(doc) or (False, f"{self.label} below {self.threshold:g}")


# A fastText model file starts with its magic number and format version (fastText's
# src/fasttext.cc: 793712314, version <= 12), then its Args: dim, ws, epoch, minCount, neg,
# wordNgrams, loss, model (3: supervised, a classifier), ... as little-endian int32.
_FASTTEXT_MAGIC, _FASTTEXT_VERSION, _SUPERVISED = 793712314, 12, 3


def fasttext_model_problem(path: str) -> str | None:
    """What keeps `path` from being the classifier of the quality filter, read from its header
    before any work (loading the model itself may take gigabytes), or None."""
    if importlib.util.find_spec("fasttext") is None:
        return "needs the fasttext package: pip install 'mixtune[fasttext]'"
    if not Path(path).is_file():
        return "no such file. Give the path of a fastText .bin model"
    with open(path, "rb") as f:
        head = f.read(40)
    if len(head) < 40 or struct.unpack_from("<i", head)[0] != _FASTTEXT_MAGIC:
        return "not a fastText model (its first bytes are not fastText's magic number)"
    version = struct.unpack_from("<i", head, 4)[0]
    if version > _FASTTEXT_VERSION:
        return f"fastText model format {version}, newer than this fasttext package reads"
    if struct.unpack_from("<i", head, 36)[0] != _SUPERVISED:
        return "a fastText word-vector model, not a classifier (train it with train_supervised)"
    return None
