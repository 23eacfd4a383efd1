"""The settings of the data layer, next to it: what `mixtune prepare` reads and writes, and the
generated domains of `data.synthetic`. Checked by `mixtune.schema`; importing this module imports
no torch and no datatrove.

    ReaderOptions     how records are read (text and domain fields, bad records), shared by
                      prepare and process
    PrepareOptions    mixtune prepare: its PrepareSettings   (data.prepare in a run YAML),
                      the sources and the output
    SyntheticConfig   generated domains with exactly known loss floors   (data.synthetic)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mixtune.errors import UserError
from mixtune.executors import ExecutorOptions
from mixtune.schema import at_least, in_range, setting

VOCAB_SIZE = 8192
"""The vocabulary a trained BPE has unless told otherwise (and `mixtune scales` counts with)."""


@dataclass(kw_only=True)
class ReaderOptions:
    """How the records of the sources are read, and whether a complete output is redone."""

    text_field: str = "text"
    """Dotted path of the text in each record."""
    domain_field: str | None = None
    """Dotted path of the domain in each record, e.g. meta.pile_set_name (none: from folders)."""
    skip_bad_records: bool = False
    """Skip and count malformed records instead of failing on the first one."""
    overwrite: bool = False
    """Redo a complete output."""


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


@dataclass
class SyntheticDomain:
    name: str
    """File name of the domain: letters, digits, '_', '-', '.'."""
    kind: Literal["noise", "repeat", "markov"]
    """noise (nothing to learn), repeat (a fixed cycle) or markov (a sparse Markov chain)."""
    params: dict[str, int | float] = setting(factory=dict)
    """repeat: period; markov: branching, concentration."""
    seed: int = setting(0, check=at_least(0))
    """Fixes the source's structure (cycle order, transition table)."""


@dataclass
class SyntheticConfig:
    domains: list[SyntheticDomain] | None = None
    """The domains (none: noise, repeat and three Markov chains of graded difficulty)."""
    train_tokens: int | dict[str, int] = 200_000
    """Training tokens per domain: one number, or {domain: tokens}."""
    validation_tokens: int | dict[str, int] = 20_000
    """Validation tokens per domain: one number, or {domain: tokens}."""
    doc_len: int = setting(256, check=at_least(1))
    """Symbols per document (each followed by EOS)."""
    seq_len: int = setting(128, check=at_least(1))
    """Tokens per training sequence."""
    vocab: int = setting(256, check=at_least(1))
    """Symbols per domain."""
    seed: int = setting(0, check=at_least(0))
    """Sampling seed."""
    disjoint: bool = False
    """Give every domain its own symbol ids, as real domains differ in vocabulary."""

    def validate(self, label) -> None:
        from mixtune.data.synthetic import SpecError, check_config

        try:  # the generator's own checks of a description, named here
            check_config(self.specs(), self.train_tokens, self.validation_tokens, self.doc_len, self.vocab)
        except SpecError as e:
            raise UserError(f"{label.section()}: {e}.") from None

    def specs(self):
        from mixtune.data.synthetic import DomainSpec, default_domains

        if self.domains is None:
            return default_domains()
        return [DomainSpec(d.name, d.kind, d.params, d.seed) for d in self.domains]
