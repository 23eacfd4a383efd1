"""`prepare --tasks N` when something goes wrong: skipped records work as in one process (the
executor writes its tasks' arguments, the scan included, as JSON), and a failed task or merge
leaves no temp files in OUT.work; a rerun finishes the dataset."""

import errno
import json
import os

import pytest

pytest.importorskip("datatrove")

from mixtune.cli import main  # noqa: E402
from mixtune.data import store  # noqa: E402
from mixtune.data import tokenize as tokenize_mod  # noqa: E402
from mixtune.data.config import PrepareOptions  # noqa: E402
from mixtune.data.prepare import prepare  # noqa: E402
from mixtune.data.store import MANIFEST, SPLITS, open_dataset  # noqa: E402
from mixtune.data.tokenize import Scan  # noqa: E402
from mixtune.io import work_dir  # noqa: E402
from tests.process.planted import make_corpus  # noqa: E402

KW = {"vocab_size": 300, "seq_len": 16}


def files(ds):
    return {f"{s}/{d}": (ds / s / f"{d}.bin").read_bytes()
            for s in SPLITS for d in open_dataset(ds).domains}


def manifest(ds):
    m = json.loads((ds / MANIFEST).read_text())
    m.pop("options", None)
    return m


def temp_files(work):
    """What a failure may have left half written in OUT.work."""
    return sorted(str(p.relative_to(work)) for p in work.rglob("*")
                  if p.name.endswith(".tmp") or p.name == "dataset")


@pytest.fixture
def corpus(tmp_path):
    """A corpus in 8 files, one of them (web) holding bad records among good ones."""
    root = tmp_path / "raw"
    make_corpus(root, clean=36, files_per_domain=4)
    good = json.dumps({"text": "a good record beside bad ones, long enough to count " * 3})
    (root / "train" / "web" / "bad.jsonl").write_text(
        "\n".join([good, "{broken", json.dumps({"body": "no text"}), good, json.dumps({"text": " "})])
        + "\n")
    return root


def test_skipped_records_with_tasks_give_the_one_process_dataset(tmp_path, corpus, capsys):
    one = prepare(PrepareOptions([str(corpus)], str(tmp_path / "one"), skip_bad_records=True,
                                 **KW))
    capsys.readouterr()
    rc = main(["prepare", str(corpus), "--out", str(tmp_path / "two"), "--skip-bad-records",
               "--tasks", "2", "--workers", "1", "--vocab-size", "300", "--seq-len", "16"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "skipped records: 3" in out
    two = tmp_path / "two"
    assert manifest(two) == manifest(one)
    assert manifest(two)["splits"]["train"]["web"]["skipped"] == {
        "malformed JSON": 1, "missing text field": 1, "empty text": 1}
    assert files(two) == files(one)
    assert not work_dir(two).exists()


def test_the_scan_travels_as_json():
    scan = Scan(domains=["web"], validation_threshold={"web": 0.25},
                duplicates={"train": {"web": 1}, "validation": {"web": 0}}, in_train={"web": 0})
    scan.skipped[("train", "web", "malformed JSON")] += 2
    scan.skipped[(None, None, "missing domain field")] += 1
    assert Scan.from_json(json.loads(json.dumps(scan.to_json()))) == scan


def fail_writing(monkeypatch, part: str, exc: BaseException) -> None:
    """The token writer of every file whose path holds `part` fails once it has written some."""
    write = store.TokenWriter.write

    def failing(self, ids, documents=1):
        write(self, ids, documents)
        if part in str(self.path):
            raise exc

    monkeypatch.setattr(store.TokenWriter, "write", failing)


def test_a_full_disk_in_a_task_says_so_and_leaves_no_temp_files(tmp_path, corpus, monkeypatch,
                                                                  capsys):
    out = tmp_path / "ds"
    real = open

    def task_1_onto_dev_full(path, mode="r", *args, **kw):  # every write there: ENOSPC
        return real("/dev/full" if "00001.tmp" in str(path) else path, mode, *args, **kw)

    with monkeypatch.context() as m:
        m.setattr(store, "open", task_1_onto_dev_full, raising=False)
        m.setattr(os, "fsync", lambda fd: None)  # /dev/full refuses fsync (EINVAL)
        capsys.readouterr()
        rc = main(["prepare", str(corpus), "--out", str(out), "--tasks", "2", "--workers", "1",
                   "--skip-bad-records", "--vocab-size", "300", "--seq-len", "16"])
        err = capsys.readouterr().err
    assert rc == 2, err
    bad = work_dir(out) / "tokens" / "00001.tmp"
    assert f"mixtune: error: no space left on the device writing {bad}/" in err
    assert "Traceback" not in err
    assert not out.exists()
    work = work_dir(out)
    assert temp_files(work) == []
    assert sorted(p.name for p in (work / "tokens").iterdir()) == ["00000"]  # kept: it finished
    again = prepare(PrepareOptions([str(corpus)], str(out), tasks=2, workers=1,
                                   skip_bad_records=True, **KW))
    whole = prepare(PrepareOptions([str(corpus)], str(tmp_path / "whole"), skip_bad_records=True,
                                   **KW))
    assert files(again) == files(whole) and manifest(again) == manifest(whole)


def test_a_task_stopped_mid_write_leaves_no_temp_files(tmp_path, corpus, monkeypatch):
    out = tmp_path / "ds"
    with monkeypatch.context() as m:
        fail_writing(m, "00000.tmp", KeyboardInterrupt())
        with pytest.raises(KeyboardInterrupt):
            prepare(PrepareOptions([str(corpus)], str(out), tasks=2, workers=1,
                                   skip_bad_records=True, **KW))
    assert temp_files(work_dir(out)) == []
    assert not out.exists()


def test_a_failed_merge_leaves_no_staged_dataset(tmp_path, corpus, monkeypatch):
    out = tmp_path / "ds"
    with monkeypatch.context() as m:
        m.setattr(tokenize_mod, "finish", full_disk)
        with pytest.raises(OSError, match="No space left"):
            prepare(PrepareOptions([str(corpus)], str(out), tasks=2, workers=1,
                                   skip_bad_records=True, **KW))
    assert temp_files(work_dir(out)) == []
    assert not out.exists()
    assert prepare(PrepareOptions([str(corpus)], str(out), tasks=2, workers=1,
                                  skip_bad_records=True, **KW)) == out


def full_disk(*args, **kw):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_while_saving_the_tokenizer_leaves_no_temp_tokenizer(tmp_path, corpus,
                                                                        monkeypatch, capsys):
    from transformers import PreTrainedTokenizerFast

    def rust_full_disk(self, folder, *args, **kw):
        (folder_path := tmp_path / folder).mkdir(parents=True, exist_ok=True)
        (folder_path / "tokenizer.json").write_text('{"version": "1.0", "trunc')
        raise Exception("No space left on device (os error 28)")  # as the Rust writer does

    out = tmp_path / "ds"
    with monkeypatch.context() as m:
        m.setattr(PreTrainedTokenizerFast, "save_pretrained", rust_full_disk)
        capsys.readouterr()
        rc = main(["prepare", str(corpus), "--out", str(out), "--tasks", "2", "--workers", "1",
                   "--skip-bad-records", "--vocab-size", "300", "--seq-len", "16"])
        err = capsys.readouterr().err
    assert rc == 2, err
    tokenizer_tmp = work_dir(out) / "tokenizer.tmp"
    assert f"mixtune: error: no space left on the device writing {tokenizer_tmp}; free" in err
    assert "Traceback" not in err
    assert temp_files(work_dir(out)) == []
    assert not (work_dir(out) / "tokenizer").exists()
    assert not out.exists()
