"""The settings of the data layer, next to it: what `mixtune prepare` reads and writes. Checked by `mixtune.schema`; importing this module imports
no torch and no datatrove.

    ReaderOptions     how records are read (text and domain fields, bad records), shared by
                      prepare and process
    PrepareOptions    mixtune prepare: its PrepareSettings   (data.prepare in a run YAML),
                      the sources and the output
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mixtune.errors import UserError
from mixtune.executors import ExecutorOptions
from mixtune.schema import at_least, in_range, setting

VOCAB_SIZE = 8192
"""The vocabulary a trained BPE has unless told otherwise (and `mixtune scales` counts with)."""


@dataclass(kw_only=True)
class ReaderOptions:
    """How the records of the sources are read."""

    text_field: str = "text"
    """Dotted path of the text in each record."""
    domain_field: str | None = None
    """Dotted path of the domain in each record, e.g. meta.pile_set_name (none: from folders)."""
    skip_bad_records: bool = False
    """Skip and count malformed records instead of failing on the first one."""


@dataclass(kw_only=True)
class PrepareSettings(ExecutorOptions, ReaderOptions):
    """How `mixtune prepare` reads and tokenizes, whatever the sources: data.prepare in a run
    YAML (where the pipeline gives the sources and the output)."""

    validation_fraction: float = setting(0.05, check=in_range(0, 1, lo_open=True, hi_open=True))
    """Share of documents hashed into validation when a source has no validation/ folder."""
    tokenizer: str | None = None
    """HF tokenizer folder or tokenizer.json (none: train a byte-level BPE on the training split)."""
    vocab_size: int = VOCAB_SIZE
    """Vocabulary of the trained BPE."""
    tokenizer_train_bytes: int = setting(1 << 30, check=at_least(1))
    """Characters of training text the BPE is trained on (a sample of a big corpus is enough)."""
    seq_len: int = setting(512, check=at_least(1))
    """Tokens per training sequence."""

    def validate(self, label) -> None:
        super().validate(label)
        if self.tokenizer is None and self.vocab_size < 300:
            raise UserError(
                f"{label('vocab_size')} {self.vocab_size}: a byte-level BPE needs at least 300 "
                "(256 bytes + merges)."
            )



@dataclass
class PrepareOptions(PrepareSettings):
    """mixtune prepare SOURCE... --out DATASET."""

    sources: list[str]
    """Folders (SOURCE/<domain>/..., optionally with train/ and validation/) or files."""
    out: str
    """Dataset folder to write (atomically: it is absent or complete)."""
    overwrite: bool = False
    """Redo a complete output."""

    def recorded(self) -> dict:
        """The options that determine the output (a rerun with others is refused)."""
        return {
            "sources": [str(Path(s).resolve()) for s in self.sources],
            "text_field": self.text_field,
            "domain_field": self.domain_field,
            "validation_fraction": self.validation_fraction,
            "tokenizer": str(Path(self.tokenizer).resolve()) if self.tokenizer else None,
            "vocab_size": None if self.tokenizer else self.vocab_size,
            "seq_len": self.seq_len,
            "skip_bad_records": self.skip_bad_records,
        }
