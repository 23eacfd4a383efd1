"""Mixture methods (the interfaces are in `base.py`). Importing this package registers the
built-in ones: `static` and `doremi` (online), iterated DoReMi and RegMix (offline)."""

# In this order: names are listed (help, errors, docs) in registration order, the default first.
from mixtune.mixing import static  # noqa: I001, F401  (registers it)
from mixtune.mixing import doremi, iterated_doremi, swarm  # noqa: F401  (register them)
from mixtune.mixing import aioli  # noqa: F401  (registers it, after doremi)
from mixtune.mixing.base import METHOD_OPTIONS, METHODS, MIXERS

__all__ = ["METHODS", "METHOD_OPTIONS", "MIXERS"]
