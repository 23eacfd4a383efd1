import pytest

from mixtune.data.synthetic import write_dataset


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    """A small generated dataset (5 domains, vocab 257) shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("data") / "syn"
    return write_dataset(
        out, train_tokens=20_000, validation_tokens=2_000, doc_len=64, seq_len=32, seed=0
    )
