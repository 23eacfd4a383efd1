"""A full disk is the user's to fix: every writer names the file it could not write, with no
traceback and no half-written output; and outputs follow the umask, model files included
(issue 23, items 6 and 9d)."""

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from mixtune.cli import main
from mixtune.data import store
from mixtune.errors import UserError
from mixtune.io import JsonlAppender, follow_umask, staged_dir, write_json_atomic


def full_disk(code: int = errno.ENOSPC):
    def fail(*_args):
        raise OSError(code, os.strerror(code))

    return fail


def test_an_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path,
                                                                            monkeypatch):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    monkeypatch.setattr(os, "fsync", full_disk())
    with pytest.raises(UserError, match=f"^no space left on the device writing {path};"):
        write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temp file left
    monkeypatch.setattr(os, "fsync", full_disk(errno.EDQUOT))
    with pytest.raises(UserError, match=r"\(disk quota exceeded\) writing"):
        write_json_atomic(path, {"a": 2})
    monkeypatch.setattr(os, "fsync", full_disk(errno.EIO))  # not the user's: stays an OSError
    with pytest.raises(OSError, match="Input/output error"):
        write_json_atomic(path, {"a": 2})


def onto_dev_full(monkeypatch, module, suffix: str) -> None:
    """`module`'s files ending in `suffix` go to /dev/full, whose every write fails with ENOSPC
    (a full disk, at the system call where a real one fails)."""
    real = open

    def fake_open(path, mode="r", *args, **kw):
        return real("/dev/full" if str(path).endswith(suffix) else path, mode, *args, **kw)

    monkeypatch.setattr(module, "open", fake_open, raising=False)


def test_a_token_file_on_a_full_disk_names_it(tmp_path, monkeypatch):
    onto_dev_full(monkeypatch, store, ".bin")
    path = tmp_path / "train" / "web.bin"
    writer = store.TokenWriter(path, np.dtype("<u2"))
    with pytest.raises(UserError, match=f"^no space left on the device writing {path};"):
        writer.write(np.arange(10_000), documents=1)  # more than the write buffer holds
        writer.close()
    with pytest.raises(UserError, match="no space left"):
        writer = store.TokenWriter(path, np.dtype("<u2"))
        writer.write(np.arange(10))
        writer.close()  # the bytes reach the disk here


def test_prepare_on_a_full_disk_says_so_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    for domain in ("web", "forum"):
        (tmp_path / "raw" / domain).mkdir(parents=True)
        texts = [f"{domain} document {i} " + "some words here " * 20 for i in range(60)]
        (tmp_path / "raw" / domain / "a.jsonl").write_text(
            "".join(json.dumps({"text": t}) + "\n" for t in texts))
    onto_dev_full(monkeypatch, store, ".bin")
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # /dev/full refuses fsync (EINVAL)
    out = tmp_path / "ds"
    capsys.readouterr()
    rc = main(["prepare", str(tmp_path / "raw"), "--out", str(out), "--vocab-size", "300",
               "--seq-len", "16"])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "mixtune: error: no space left on the device writing " in err
    assert ".bin; free some space or write the output elsewhere" in err
    assert "Traceback" not in err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ds.")] == []


def test_a_process_shard_on_a_full_disk_names_it_and_leaves_no_temp_file(tmp_path,
                                                                        monkeypatch):
    pytest.importorskip("datatrove")
    from mixtune.process import blocks

    onto_dev_full(monkeypatch, blocks, ".tmp")
    path = tmp_path / "web" / "00000.jsonl.zst"
    writer = blocks.JsonlZstWriter(path)
    writer.write({"text": "hello"})
    with pytest.raises(UserError, match=f"^no space left on the device writing {path};"):
        writer.close()
    writer.close()  # again, as a `finally` does: nothing more to say
    assert list(path.parent.iterdir()) == []


def test_a_metrics_line_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    import mixtune.io as io_module

    onto_dev_full(monkeypatch, io_module, ".jsonl")
    log = JsonlAppender(tmp_path / "metrics.jsonl")
    with pytest.raises(UserError, match="no space left on the device writing .*metrics.jsonl"):
        log.write({"step": 1})


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_published_folder_follows_the_umask_whatever_wrote_its_files(tmp_path, umask_022):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_model

    with staged_dir(tmp_path / "final") as staged:
        save_model(torch.nn.Linear(2, 2), str(staged / "model.safetensors"))  # made 0600
        (staged / "sub").mkdir(mode=0o700)
        (staged / "sub" / "run.sh").write_text("#!/bin/sh\n")
        (staged / "sub" / "run.sh").chmod(0o700)
    final = tmp_path / "final"
    assert mode(final) == 0o755 and mode(final / "sub") == 0o755
    assert mode(final / "model.safetensors") == 0o644
    assert mode(final / "sub" / "run.sh") == 0o755  # executables stay executable


def test_follow_umask_leaves_what_a_link_points_to(tmp_path, umask_022):
    outside = tmp_path / "secret"
    outside.write_text("x")
    outside.chmod(0o600)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "link").symlink_to(outside)
    follow_umask(tmp_path / "run")
    assert mode(outside) == 0o600
