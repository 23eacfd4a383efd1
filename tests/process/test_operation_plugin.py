"""A new processing operation, added from this file alone: a datatrove filter and one
`register` line, and pipeline YAML files can name it, with its arguments checked."""

import pytest

pytest.importorskip("datatrove")

from datatrove.pipeline.filters.base_filter import BaseFilter  # noqa: E402

from mixtune.errors import UserError  # noqa: E402
from mixtune.process.config import ProcessOptions  # noqa: E402
from mixtune.process.ops import Op, describe, register  # noqa: E402
from mixtune.process.run import process  # noqa: E402
from tests.process.planted import make_corpus, read_output  # noqa: E402


class DropWord(BaseFilter):
    """Drop the documents that contain a word."""

    name = "drop word"

    def __init__(self, word: str = "river") -> None:
        super().__init__()
        self.word = word

    def filter(self, doc):
        return (False, f"contains {self.word}") if self.word in doc.text.split() else True


register(Op("test_drop_word", "drop documents containing a word", DropWord))


def test_a_registered_operation_runs_in_a_pipeline(tmp_path):
    import yaml

    corpus = make_corpus(tmp_path / "raw", clean=12)
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(yaml.safe_dump([{"op": "test_drop_word", "word": "river"}]))
    out = process(ProcessOptions([str(tmp_path / "raw")], str(tmp_path / "out"),
                                 pipeline=str(pipeline), tasks=2, workers=1))
    kept = [text for _d, _s, text in read_output(out)]
    assert kept and all("river" not in t.split() for t in kept)
    assert len(kept) == sum("river" not in t.split() for _d, _s, t in corpus.docs)
    assert any(name == "test_drop_word" for name, _summary, _args in describe())

    pipeline.write_text(yaml.safe_dump([{"op": "test_drop_word", "wrd": "river"}]))
    with pytest.raises(UserError, match="wrd"):
        process(ProcessOptions([str(tmp_path / "raw")], str(tmp_path / "out2"),
                               pipeline=str(pipeline)))
