"""A full disk while a checkpoint is written is the user's to fix: a UserError naming the
checkpoint, and no temp folder left. torch.save and safetensors report it without an errno
(torch: a RuntimeError of its zip writer; safetensors: an error naming "os error 28"), so a write
failure without one counts as a full disk only when the file system has (almost) no space left;
any other error keeps its traceback."""

import errno
import os
import shutil
import traceback
from collections import namedtuple

import pytest
import torch
from safetensors import SafetensorError

from mixtune.errors import UserError
from mixtune.train import checkpoint

STATE = {"step": 4}
TORCH_FULL = ("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing "
              "file data/0: file write failed")
Usage = namedtuple("Usage", "total used free")


def model_and_optimizer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return model, opt


@pytest.fixture
def saved(tmp_path):
    """A run folder holding step-2; the model and optimizer to save step 4 of."""
    model, opt = model_and_optimizer()
    checkpoint.save(tmp_path, 2, model, opt, {"step": 2})
    return tmp_path, model, opt


def free_space(monkeypatch, free: int) -> None:
    """The file system reports `free` bytes left to the user."""
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(1 << 40, (1 << 40) - free, free))


def torch_save_fails(monkeypatch, message: str = TORCH_FULL, exc=RuntimeError) -> None:
    """torch.save writes part of the file, then fails as its zip writer does on a full disk."""

    def fail(obj, f, *args, **kw):
        with open(f, "wb") as out:
            out.write(b"PK\x03\x04 partial")
        raise exc(message)

    monkeypatch.setattr(torch, "save", fail)


def leftovers(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def test_torch_save_on_a_full_disk_names_the_checkpoint_and_leaves_no_temp_folder(saved,
                                                                               monkeypatch):
    run_dir, model, opt = saved
    torch_save_fails(monkeypatch)
    free_space(monkeypatch, 0)
    want = f"^no space left on the device writing {run_dir / 'checkpoints' / 'step-4'}; free some"
    with pytest.raises(UserError, match=want) as info:
        checkpoint.save(run_dir, 4, model, opt, STATE)
    assert "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no traceback chain
    assert leftovers(run_dir) == ["step-2"]  # the earlier checkpoint stays, no .step-4.tmp
    assert checkpoint.latest(run_dir).name == "step-2"


@pytest.mark.parametrize("message", [TORCH_FULL, "[enforce fail at inline_container.cc:672] . "
                                                 "unexpected pos 832 vs 726"])
def test_the_same_error_with_space_left_keeps_its_traceback(saved, monkeypatch, message):
    run_dir, model, opt = saved
    torch_save_fails(monkeypatch, message)
    free_space(monkeypatch, 50 << 30)
    with pytest.raises(RuntimeError, match="inline_container"):
        checkpoint.save(run_dir, 4, model, opt, STATE)
    assert leftovers(run_dir) == ["step-2"]  # a failed checkpoint leaves no temp folder either


def test_another_error_on_a_full_disk_is_not_called_a_full_disk(saved, monkeypatch):
    """Only a failed write is: a bug that happens to meet a full disk keeps its traceback."""
    run_dir, model, opt = saved
    torch_save_fails(monkeypatch, "expected a Tensor, got NoneType")
    free_space(monkeypatch, 0)
    with pytest.raises(RuntimeError, match="expected a Tensor"):
        checkpoint.save(run_dir, 4, model, opt, STATE)
    torch_save_fails(monkeypatch, "can't pickle local object", exc=AttributeError)
    with pytest.raises(AttributeError):
        checkpoint.save(run_dir, 4, model, opt, STATE)
    assert leftovers(run_dir) == ["step-2"]


@pytest.mark.parametrize(("code", "said"), [(28, "no space left on the device writing"),
                                            (122, r"\(disk quota exceeded\) writing")])
def test_safetensors_naming_the_os_error_is_a_full_disk_whatever_space_is_left(saved, monkeypatch,
                                                                               code, said):
    """safetensors removes its partial file, so the space is back: its message says it all."""
    run_dir, model, opt = saved

    def fail(model, filename, *args, **kw):
        raise SafetensorError(f"Error while serializing: I/O error: {os.strerror(code)} "
                              f"(os error {code})")

    monkeypatch.setattr(checkpoint, "save_model", fail)
    free_space(monkeypatch, 50 << 30)
    with pytest.raises(UserError, match=f"{said} .*step-4;"):
        checkpoint.save(run_dir, 4, model, opt, STATE)
    assert leftovers(run_dir) == ["step-2"]


def test_safetensors_failing_otherwise_keeps_its_traceback(saved, monkeypatch):
    run_dir, model, opt = saved

    def fail(model, filename, *args, **kw):
        raise SafetensorError("Error while serializing: I/O error: Permission denied (os error 13)")

    monkeypatch.setattr(checkpoint, "save_model", fail)
    free_space(monkeypatch, 0)
    with pytest.raises(SafetensorError, match="os error 13"):
        checkpoint.save(run_dir, 4, model, opt, STATE)
    assert leftovers(run_dir) == ["step-2"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_an_os_error_while_syncing_the_files(saved, monkeypatch, code):
    run_dir, model, opt = saved

    def fail(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    if code == errno.EIO:  # not the user's to fix: stays what it is
        with pytest.raises(OSError, match="Input/output error"):
            checkpoint.save(run_dir, 4, model, opt, STATE)
    else:
        with pytest.raises(UserError, match="^no space left on the device.* writing .*step-4;"):
            checkpoint.save(run_dir, 4, model, opt, STATE)
    assert leftovers(run_dir) == ["step-2"]


def test_ctrl_c_while_saving_leaves_no_temp_folder(saved, monkeypatch):
    run_dir, model, opt = saved
    torch_save_fails(monkeypatch, exc=KeyboardInterrupt)
    free_space(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(run_dir, 4, model, opt, STATE)
    assert leftovers(run_dir) == ["step-2"]


def test_a_sharded_checkpoint_on_a_full_disk(tmp_path, monkeypatch):
    """DCP reports every rank's error in a CheckpointException (not an Exception at all)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    model, opt = model_and_optimizer()

    def fail_with(err):
        def save(state_dict, storage_writer=None, **kw):
            (storage_writer.path / "__0_0.distcp").write_bytes(b"partial")
            stack = traceback.StackSummary.from_list([])
            raise CheckpointException("CheckpointException ranks:dict_keys([0])", {0: (err, stack)})
        return save

    monkeypatch.setattr(dcp, "save", fail_with(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(UserError, match="^no space left on the device writing .*step-2;"):
        checkpoint.save_sharded(tmp_path, 2, model, opt, STATE, keep=2, is_main=True)
    assert leftovers(tmp_path) == []
    free_space(monkeypatch, 0)
    monkeypatch.setattr(dcp, "save", fail_with(RuntimeError(TORCH_FULL)))
    with pytest.raises(UserError, match="^no space left on the device writing .*step-2;"):
        checkpoint.save_sharded(tmp_path, 2, model, opt, STATE, keep=2, is_main=True)
    assert leftovers(tmp_path) == []
    free_space(monkeypatch, 50 << 30)
    with pytest.raises(CheckpointException):
        checkpoint.save_sharded(tmp_path, 2, model, opt, STATE, keep=2, is_main=True)
    assert leftovers(tmp_path) == []


def test_a_sharded_checkpoint_failing_on_another_rank_is_left_to_rank_0_to_remove(tmp_path,
                                                                                  monkeypatch):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.api import CheckpointException

    model, opt = model_and_optimizer()
    (tmp_path / "checkpoints" / ".step-2.tmp").mkdir(parents=True)  # made by rank 0

    def save(state_dict, storage_writer=None, **kw):
        err = OSError(errno.ENOSPC, "No space left on device")
        raise CheckpointException("", {1: (err, traceback.StackSummary.from_list([]))})

    monkeypatch.setattr(dcp, "save", save)
    with pytest.raises(UserError, match="no space left"):
        checkpoint.save_sharded(tmp_path, 2, model, opt, STATE, keep=2, is_main=False)
    assert leftovers(tmp_path) == [".step-2.tmp"]
