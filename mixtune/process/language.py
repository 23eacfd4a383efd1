"""Language identification that works offline: lingua (its models ship inside the PyPI wheel),
where datatrove's `LanguageFilter` downloads a fastText model from the Hub at first use.

RefinedWeb and DCLM keep English pages whose top language score is at least 0.65; lingua's
confidence values play the same role (they sum to 1 over the languages it considers).
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter

from mixtune.errors import UserError

# Identify from the start of the page: enough for a confident decision, and a long page costs no
# more than a short one.
MAX_CHARS = 2000


def iso_codes() -> list[str]:
    """The ISO 639-1 codes lingua knows."""
    from lingua import Language

    return sorted(lang.iso_code_639_1.name.lower() for lang in Language.all())


class LanguageFilter(BaseFilter):
    """Keep documents whose most likely language is one of `languages` (ISO 639-1 codes) with a
    confidence of at least `threshold`; the language is stored in the metadata."""

    name = "language"

    def __init__(self, languages: list[str] | tuple[str, ...] = ("en",),
                 threshold: float = 0.65) -> None:
        super().__init__()
        self.languages = [languages] if isinstance(languages, str) else list(languages)
        known = iso_codes()
        unknown = [code for code in self.languages if code not in known]
        if unknown:
            raise UserError(f"languages: {', '.join(unknown)} unknown; use ISO 639-1 codes such "
                            f"as {', '.join(known[:12])}, ...")
        self.threshold = threshold
        self._detector = None

    @property
    def detector(self):
        if self._detector is None:  # built in the task (it does not pickle)
            from lingua import LanguageDetectorBuilder

            self._detector = LanguageDetectorBuilder.from_all_languages() \
                .with_low_accuracy_mode().build()
        return self._detector

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        values = self.detector.compute_language_confidence_values(doc.text[:MAX_CHARS])
        if not values:
            return False, "no language"
        top = values[0]
        code = top.language.iso_code_639_1.name.lower()
        doc.metadata["language"] = code
        if code not in self.languages:
            return False, f"language {code}"
        if top.value < self.threshold:
            return False, "language unsure"
        return True

    def __getstate__(self):
        return {**self.__dict__, "_detector": None}
