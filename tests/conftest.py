import pytest

from mixtune.synthetic import write_dataset


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """A small generated dataset (5 domains, vocab 257) shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("data") / "syn"
    return write_dataset(
        out, train_tokens=20_000, validation_tokens=2_000, doc_len=64, seq_len=32, seed=0
    )


PROXY = dict(steps=8, batch_size=8, grad_accum=2, seed=0)
"""The DoReMi proxy that the Python API, the Trainer and the examples are compared with."""


@pytest.fixture(scope="session")
def cli_proxy(synthetic_dataset, tmp_path_factory):
    """(reference run, `mixtune doremi` proxy run) on the synthetic dataset, PROXY's settings."""
    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    root = tmp_path_factory.mktemp("cli_proxy")
    common = dict(data=str(synthetic_dataset), scale="tiny", eval_max_tokens_per_domain=256)
    ref = run(train_config(**common, out=str(root / "ref"), steps=6, batch_size=8, seed=0))
    proxy = run(train_config(**common, **PROXY, out=str(root / "proxy"), method="doremi",
                             reference=str(ref)))
    return ref, proxy
