"""The atomic-write helpers: an output is the old one, the new one, or absent; never torn."""

import json
import os
import stat

import pytest

from mixtune.io import (
    JsonlAppender,
    describe_changes,
    read_jsonl,
    staged_dir,
    truncate_jsonl,
    write_json_atomic,
    write_text_atomic,
)


def test_write_json_atomic_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "sub" / "x.json"
    write_json_atomic(path, {"a": 1})
    write_json_atomic(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_write_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "t.txt", "hi")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.txt").stat().st_mode) == 0o644  # mkstemp alone: 0o600


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"a": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"a": object()})  # not serialisable: fails before the rename
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_an_atomic_write_never_replaces_a_device_or_a_folder(tmp_path):
    """A rename over /dev/null (root may) would make it a file: any path that is not a regular
    file is refused, a FIFO standing in for the device here."""
    from mixtune.errors import UserError

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UserError, match="fifo: not a regular file"):
        write_json_atomic(fifo, {"a": 1})
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(UserError, match=": a folder"):
        write_json_atomic(tmp_path, {"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"]


def test_staged_dir_publishes_only_when_complete(tmp_path):
    final = tmp_path / "out"
    with staged_dir(final) as staged:
        (staged / "f").write_text("one")
        assert not final.exists()
    assert (final / "f").read_text() == "one"
    with pytest.raises(RuntimeError), staged_dir(final) as staged:
        (staged / "f").write_text("two")
        raise RuntimeError("crash")
    assert (final / "f").read_text() == "one"  # the old version survives a failed rebuild
    with staged_dir(final) as staged:
        (staged / "g").write_text("three")
    assert sorted(p.name for p in final.iterdir()) == ["g"]  # replaced whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or .old left


def test_jsonl_round_trip_skips_a_torn_last_line(tmp_path):
    path = tmp_path / "m.jsonl"
    log = JsonlAppender(path)
    for i in range(3):
        log.write({"step": i})
    log.close()
    with open(path, "a") as f:
        f.write('{"step": 3, "lo')  # a crash in the middle of a line
    assert [r["step"] for r in read_jsonl(path)] == [0, 1, 2]
    truncate_jsonl(path, lambda r: r["step"] <= 1)
    assert path.read_text() == '{"step": 0}\n{"step": 1}\n'
    assert read_jsonl(tmp_path / "absent.jsonl") == []


def test_describe_changes():
    assert describe_changes({"a": 1, "b": 2}, {"a": 1, "b": 2}) == ""
    assert describe_changes({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}) == "b: 2 -> 3; c: (unset) -> 4"


def test_verdict_is_the_one_rerun_rule():
    from mixtune.io import verdict

    same, other = {"lr": 1}, {"lr": 2}
    assert verdict(None, same, complete=False).action == "run"
    assert verdict(same, same, complete=True).action == "skip"
    refused = verdict(same, other, complete=True)
    assert (refused.action, refused.changes) == ("refuse", "lr: 1 -> 2")
    assert verdict(same, same, complete=False).action == "resume"
    assert verdict(same, other, complete=False).action == "restart"
    assert verdict(same, other, complete=False, keeps_work=True).action == "refuse"
