"""mixtune: find the data mixture to pretrain a language model on."""

__version__ = "0.1.0"
