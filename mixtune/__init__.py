"""mixtune: find the data mixture to pretrain a language model on.

The command line (`mixtune --help`) runs everything end to end. From Python, the pieces that fit
into a training setup of your own (see the README's "Use it from Python"):

    open_dataset(path)              a prepared dataset: domains, tokenizer, token counts
    DomainBatches(dataset, ...)     its domain-weighted batches as a resumable IterableDataset
    DoReMi(domains, ...)            DoReMi's weight update and loss for your own loop
    Aioli(domains, ...)             Aioli's online mixture for your own loop, with
    heldout_losses(model, ...)      the per-domain held-out losses it asks for
    token_losses(model, x)          per-token losses of a causal LM on [b, T+1] windows
    resolve_weights / read_weights / write_weights     mixtures: specs and weights files
    build_model / load_model / build_optimizer / lr_at / OptimConfig    the CLI's recipe
    mixtune.hf.DoReMiTrainer        a transformers Trainer that trains a DoReMi proxy
    mixtune.hf.AioliTrainer         one whose mixture Aioli chooses as it trains

Names are imported on first use, so `import mixtune` stays light (no torch) for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mixtune.provenance import package_version

__version__ = package_version()  # pyproject.toml's, once

_EXPORTS = {
    "open_dataset": "mixtune.data.store",
    "Dataset": "mixtune.data.store",
    "DomainBatches": "mixtune.data.loader",
    "DoReMi": "mixtune.mixing.doremi",
    "Aioli": "mixtune.mixing.aioli",
    "heldout_losses": "mixtune.train.heldout",
    "token_losses": "mixtune.model.loss",
    "resolve_weights": "mixtune.data.weights",
    "read_weights": "mixtune.data.weights",
    "write_weights": "mixtune.data.weights",
    "build_model": "mixtune.model.build",
    "load_model": "mixtune.model.build",
    "build_optimizer": "mixtune.train.optim",
    "lr_at": "mixtune.train.optim",
    "OptimConfig": "mixtune.train.config",
    "UserError": "mixtune.errors",
}

__all__ = [  # = _EXPORTS (tests/test_api.py checks), spelled out for tools that read it statically
    "Aioli", "Dataset", "DoReMi", "DomainBatches", "OptimConfig", "UserError", "__version__",
    "build_model", "build_optimizer", "heldout_losses", "load_model", "lr_at", "open_dataset",
    "read_weights", "resolve_weights", "token_losses", "write_weights",
]

if TYPE_CHECKING:
    from mixtune.data.loader import DomainBatches
    from mixtune.data.store import Dataset, open_dataset
    from mixtune.data.weights import read_weights, resolve_weights, write_weights
    from mixtune.errors import UserError
    from mixtune.mixing.aioli import Aioli
    from mixtune.mixing.doremi import DoReMi
    from mixtune.model.build import build_model, load_model
    from mixtune.model.loss import token_losses
    from mixtune.train.config import OptimConfig
    from mixtune.train.heldout import heldout_losses
    from mixtune.train.optim import build_optimizer, lr_at


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mixtune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
