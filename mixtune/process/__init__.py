"""Build the data: raw sources -> filters and dedup as datatrove pipelines -> a corpus `prepare`
reads (`mixtune process`). Needs the `process` extra (datatrove, lingua, spacy)."""

import importlib.util

from mixtune.errors import UserError


def require_datatrove(what: str) -> None:
    """A clear message, not an ImportError, when the `process` extra is not installed."""
    if importlib.util.find_spec("datatrove") is None:
        raise UserError(f"{what} needs datatrove: pip install 'mixtune[process]'.")
