"""`prepare --tasks N`: the same dataset, byte for byte, as one process."""

import json

import pytest

pytest.importorskip("datatrove")

from mixtune.data.config import PrepareOptions  # noqa: E402
from mixtune.data.prepare import prepare  # noqa: E402
from mixtune.data.store import MANIFEST, SPLITS, open_dataset  # noqa: E402
from mixtune.data.tokenize_tasks import TokenizeShard  # noqa: E402
from mixtune.io import work_dir  # noqa: E402
from tests.process.planted import make_corpus  # noqa: E402


def files(ds):
    return {f"{s}/{d}": (ds / s / f"{d}.bin").read_bytes()
            for s in SPLITS for d in open_dataset(ds).domains}


def manifest(ds):
    m = json.loads((ds / MANIFEST).read_text())
    m.pop("options", None)
    return m


@pytest.mark.parametrize("layout", ["folders", "pile"])
def test_any_number_of_tasks_gives_the_same_dataset(tmp_path, layout):
    pile = layout == "pile"
    make_corpus(tmp_path / "raw", clean=36, splits=not pile, pile=pile, files_per_domain=4)
    source = tmp_path / "raw" / "pile.jsonl.zst" if pile else tmp_path / "raw"
    kw = {"vocab_size": 300, "seq_len": 16,
          "domain_field": "meta.pile_set_name" if pile else None}
    one = prepare(PrepareOptions([str(source)], str(tmp_path / "one"), **kw))
    three = prepare(PrepareOptions([str(source)], str(tmp_path / "three"), tasks=3, workers=2,
                                   **kw))
    assert files(one) == files(three)
    assert manifest(one) == manifest(three)
    assert not work_dir(three).exists()
    assert (three / "dataset_record.json").is_file()


KW = {"vocab_size": 300, "seq_len": 16}


def stopped_at_rank_2(tmp_path, monkeypatch, out):
    """A 3-task prepare of a fresh corpus, Ctrl-C'd in task 2; the one-process dataset."""
    make_corpus(tmp_path / "raw", clean=36, files_per_domain=4)
    whole = prepare(PrepareOptions([str(tmp_path / "raw")], str(tmp_path / "whole"), **KW))
    run = TokenizeShard.run

    def stop(self, data=None, rank=0, world_size=1):
        if rank == 2:
            raise KeyboardInterrupt
        return run(self, data, rank, world_size)

    with monkeypatch.context() as m:
        m.setattr(TokenizeShard, "run", stop)
        with pytest.raises(KeyboardInterrupt):
            prepare(PrepareOptions([str(tmp_path / "raw")], str(out), tasks=3, workers=1, **KW))
    assert not out.exists()
    return whole


def test_a_stopped_tokenization_resumes(tmp_path, monkeypatch):
    whole = stopped_at_rank_2(tmp_path, monkeypatch, tmp_path / "again")
    done = sorted(p.name for p in (work_dir(tmp_path / "again") / "tokens").iterdir())
    assert done == ["00000", "00001"]
    again = prepare(PrepareOptions([str(tmp_path / "raw")], str(tmp_path / "again"), tasks=3,
                                   workers=1, **KW))
    assert files(again) == files(whole)


def test_another_number_of_tasks_starts_the_work_over(tmp_path, monkeypatch):
    """Shards of 3 tasks are not shards of 2: a rerun with --tasks 2 must not merge them."""
    whole = stopped_at_rank_2(tmp_path, monkeypatch, tmp_path / "again")
    again = prepare(PrepareOptions([str(tmp_path / "raw")], str(tmp_path / "again"), tasks=2,
                                   workers=1, **KW))
    assert files(again) == files(whole)
