"""A full disk while the tokenizer is saved (by the Rust writer, which raises a plain Exception
naming the OS error, or by Python) is a one-line error naming the tokenizer folder; prepare leaves
nothing at --out nor beside it. Any other failure of the writer keeps its traceback."""

import errno
import json
import os
from pathlib import Path

import pytest
from transformers import PreTrainedTokenizerFast

from mixtune.cli import main
from mixtune.data.tokenizer import copy_tokenizer_files, save_tokenizer, train_bpe
from mixtune.errors import UserError


@pytest.fixture
def corpus(tmp_path):
    for domain in ("web", "forum"):
        (tmp_path / "raw" / domain).mkdir(parents=True)
        texts = [f"{domain} document {i} " + "some words here " * 20 for i in range(60)]
        (tmp_path / "raw" / domain / "a.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in texts))
    return tmp_path / "raw"


def save_fails(monkeypatch, exc: BaseException) -> None:
    """save_pretrained writes part of tokenizer.json, then fails with `exc`."""

    def fail(self, folder, *args, **kw):
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "tokenizer.json").write_text('{"version": "1.0", "trunc')
        raise exc

    monkeypatch.setattr(PreTrainedTokenizerFast, "save_pretrained", fail)


def run_prepare(capsys, corpus, out) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["prepare", str(corpus), "--out", str(out), "--vocab-size", "300", "--seq-len", "16"])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("exc", [
    Exception("No space left on device (os error 28)"),  # tokenizers' Rust writer
    OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)),  # tokenizer_config.json, from Python
], ids=["rust", "python"])
def test_prepare_saving_the_tokenizer_on_a_full_disk(tmp_path, corpus, monkeypatch, capsys, exc):
    save_fails(monkeypatch, exc)
    out = tmp_path / "ds"
    rc, err = run_prepare(capsys, corpus, out)
    assert rc == 2, err
    assert "mixtune: error: no space left on the device writing " in err
    assert "/tokenizer; free some space or write the output elsewhere" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds.")] == []


def test_another_failure_of_the_rust_writer_keeps_its_traceback(tmp_path, corpus, monkeypatch):
    save_fails(monkeypatch, Exception("Permission denied (os error 13)"))
    out = tmp_path / "ds"
    with pytest.raises(Exception, match=r"os error 13"):
        main(["prepare", str(corpus), "--out", str(out), "--vocab-size", "300", "--seq-len", "16"])
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds.")] == []


def test_save_and_copy_name_the_folder_and_say_when_it_is_a_quota(tmp_path, monkeypatch):
    tok = train_bpe(["some text to train on", "and more of it"], 270)
    save_tokenizer(tok, tmp_path / "src")
    save_fails(monkeypatch, Exception("Disk quota exceeded (os error 122)"))
    with pytest.raises(UserError, match=r"^no space left on the device \(disk quota exceeded\) "
                                        f"writing {tmp_path / 'dst'};"):
        save_tokenizer(tok, tmp_path / "dst")

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("shutil.copy2", full)
    with pytest.raises(UserError, match=f"^no space left on the device writing {tmp_path / 'cp'};"):
        copy_tokenizer_files(tmp_path / "src", tmp_path / "cp")
