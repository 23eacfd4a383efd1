"""Mixture methods (the interfaces are in `base.py`). Importing this package registers the
built-in ones: `static` and `doremi` (online), iterated DoReMi (offline)."""

from mixtune.mixing import doremi, iterated_doremi, static  # noqa: F401  (registers them)
from mixtune.mixing.base import METHODS, MIXERS

__all__ = ["METHODS", "MIXERS"]
