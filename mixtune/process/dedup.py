"""datatrove's multi-stage deduplications, as steps of a mixtune pipeline.

Each needs passes over the whole corpus before any document can be dropped, so a dedup step
becomes stages: signatures of every task's shard, a global search for duplicates, then a filter
that re-reads each shard in the same order and drops the documents found (datatrove matches
them by position in the shard).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.base import PipelineStep

_SPACE = re.compile(r"\s+")


def normalized_text(doc: Document) -> bytes:
    """The text exact dedup compares: Unicode NFKC, lower case, whitespace collapsed."""
    text = _SPACE.sub(" ", unicodedata.normalize("NFKC", doc.text).lower()).strip()
    return text.encode("utf-8", "surrogatepass")


@dataclass
class DedupStage:
    name: str
    pipeline: list[PipelineStep]
    tasks: int


class ExactDedup:
    """Drop all but the first of documents whose normalised text is the same."""

    def __init__(self) -> None:
        pass

    def _config(self):
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupConfig

        return ExactDedupConfig(content_getter=normalized_text)

    def stages(self, read: PipelineStep, work: Path, tasks: int) -> list[DedupStage]:
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupSignature, ExactFindDedups

        config = self._config()
        return [
            DedupStage("signatures", [read, ExactDedupSignature(str(work / "sigs"), config)],
                       tasks),
            DedupStage("find", [ExactFindDedups(str(work / "sigs"), str(work / "dups"), config)],
                       1),
        ]

    def filter(self, work: Path) -> PipelineStep:
        from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter

        return ExactDedupFilter(str(work / "dups"), self._config())


class MinhashDedup:
    """datatrove's MinHash LSH: documents whose 5-gram MinHash signatures collide in a bucket are
    clustered, and one per cluster is kept (14 buckets × 8 hashes: pairs above ~0.75 Jaccard
    similarity are found with high probability)."""

    def __init__(self, n_grams: int = 5, num_buckets: int = 14, hashes_per_bucket: int = 8,
                 seed: int = 1) -> None:
        if min(n_grams, num_buckets, hashes_per_bucket) < 1:
            raise ValueError("n_grams, num_buckets and hashes_per_bucket must be at least 1")
        self.n_grams, self.num_buckets = n_grams, num_buckets
        self.hashes_per_bucket, self.seed = hashes_per_bucket, seed

    def _config(self):
        from datatrove.pipeline.dedup.minhash import MinhashConfig
        from datatrove.utils.hashing import HashConfig

        # sha1, not datatrove's default xxhash: datatrove 0.10 hands xxhash (4.x) str shingles,
        # which it refuses.
        return MinhashConfig(n_grams=self.n_grams, num_buckets=self.num_buckets,
                             hashes_per_bucket=self.hashes_per_bucket, seed=self.seed,
                             hash_config=HashConfig(hash_fc="sha1"))

    def stages(self, read: PipelineStep, work: Path, tasks: int) -> list[DedupStage]:
        from datatrove.pipeline.dedup.minhash import (
            MinhashDedupBuckets,
            MinhashDedupCluster,
            MinhashDedupSignature,
        )

        config = self._config()
        return [
            DedupStage("signatures",
                       [read, MinhashDedupSignature(str(work / "sigs"), config=config)], tasks),
            DedupStage("buckets", [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"),
                                                       config=config)], self.num_buckets),
            DedupStage("clusters", [MinhashDedupCluster(str(work / "buckets"),
                                                        str(work / "remove"), config=config)], 1),
        ]

    def filter(self, work: Path) -> PipelineStep:
        from datatrove.pipeline.dedup.minhash import MinhashDedupFilter

        return MinhashDedupFilter(str(work / "remove"))
