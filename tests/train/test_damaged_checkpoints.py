"""Damaged checkpoints (issue 23): each kind of damage is named, file and problem, before anything
is loaded; the run then resumes from the checkpoint before it, or starts over when none is left,
but does not silently retrain a run whose training had finished. And a SIGKILLed torchrun worker
ends the job (no hang), whose rerun resumes."""

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from mixtune.errors import UserError
from mixtune.train import checkpoint
from mixtune.train.config import train_config
from mixtune.train.loop import run


class Foreign:
    """Any class: torch.load(weights_only=True) builds none, so a pickle holding one is refused."""


def cut(file, keep=0.5):
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def edit_state(file, **changes):
    state = json.loads(file.read_text())
    for key, value in changes.items():
        *parents, last = key.split(".")
        target = state
        for part in parents:
            target = target[part]
        target[last] = value
    file.write_text(json.dumps(state))


def add_foreign_object(file):
    saved = torch.load(file, weights_only=True)
    saved["extra"] = Foreign()
    torch.save(saved, file)


# (file damaged, how, what the message says is wrong)
DAMAGE = {
    "truncated weights": ("model.safetensors", cut, "truncated or not a safetensors file"),
    "empty weights": ("model.safetensors", lambda f: f.write_bytes(b""),
                      "truncated or not a safetensors file (Error while deserializing header"),
    "truncated optimizer": ("optimizer.pt", cut, "truncated, or not written by torch.save"),
    "truncated state": ("state.json", cut, "not valid JSON"),
    "consumed not counts": ("state.json", lambda f: edit_state(f, **{"sampler.consumed": "x"}),
                            "sampler.consumed is 'x', not a list of counts"),
    "step beyond steps": ("state.json", lambda f: edit_state(f, step=60),
                          "step 60 is beyond this run's 6 steps"),
    "refused pickle": ("optimizer.pt", add_foreign_object,
                       f"refused: it holds a Python object ({__name__}.Foreign) that "
                       "torch.load(weights_only=True) does not build"),
}


# -- checkpoint.verify on a small model -------------------------------------------------------

STATE = {"step": 2, "tokens": 64, "mixer": {},
         "sampler": {"step": 2, "consumed": [3, 1], "seed": 0, "batch_size": 2,
                     "weights": [0.5, 0.5], "domains": ["a", "b"]}}


def model_and_optimizer(width=8):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, width), torch.nn.Linear(width, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randn(3, 4)).sum().backward()
    opt.step()
    return model, opt


@pytest.mark.parametrize("damage", DAMAGE)
def test_verify_names_the_file_and_what_is_wrong(tmp_path, damage):
    model, opt = model_and_optimizer()
    path = checkpoint.save(tmp_path, 2, model, opt, STATE)
    assert checkpoint.verify(path, 6, model, opt) == STATE
    name, how, problem = DAMAGE[damage]
    how(path / name)
    before = [t.clone() for t in model.state_dict().values()]
    with pytest.raises(checkpoint.Damaged) as e:
        checkpoint.verify(path, 6, model, opt)
    assert str(e.value).startswith(f"{path / name}: {problem}")
    assert "\n" not in str(e.value)
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values(), strict=True))


def test_verify_refuses_files_of_another_model_and_inconsistent_state(tmp_path):
    model, opt = model_and_optimizer()
    path = checkpoint.save(tmp_path, 2, *model_and_optimizer(width=16), STATE)
    with pytest.raises(checkpoint.Damaged,
                       match=r"model.safetensors: 0.bias has shape \[16\], this model's \[8\]"):
        checkpoint.verify(path, 6, model, opt)
    path = checkpoint.save(tmp_path, 4, model, opt, STATE)  # state.json says step 2
    with pytest.raises(checkpoint.Damaged, match="state.json: step is 2, but the folder is step-4"):
        checkpoint.verify(path, 6, model, opt)
    (path / "rng.pt").unlink()
    with pytest.raises(checkpoint.Damaged, match="rng.pt: missing"):
        checkpoint.verify(path, 6, model, opt)


def test_verify_checks_the_shards_of_a_sharded_checkpoint(tmp_path):
    model, opt = model_and_optimizer()
    with pytest.warns(UserWarning, match="single process"):  # DCP without a process group
        path = checkpoint.save_sharded(tmp_path, 2, model, opt, STATE, keep=2, is_main=True)
    assert checkpoint.verify(path, 6, None, None, sharded=True) == STATE
    shard = path / "__0_0.distcp"
    cut(shard)
    with pytest.raises(checkpoint.Damaged, match=r"__0_0.distcp: truncated: \d+ bytes, .metadata "
                                                 r"lists data up to byte \d+"):
        checkpoint.verify(path, 6, None, None, sharded=True)
    shard.unlink()
    with pytest.raises(checkpoint.Damaged, match=r"__0_0.distcp: missing \(listed in .metadata\)"):
        checkpoint.verify(path, 6, None, None, sharded=True)
    cut(path / ".metadata")
    with pytest.raises(checkpoint.Damaged, match=r"\.metadata: unreadable"):
        checkpoint.verify(path, 6, None, None, sharded=True)
    (path / ".metadata").unlink()
    shard.write_bytes(b"")  # shards without their index: still a sharded checkpoint, damaged
    with pytest.raises(checkpoint.Damaged, match=r"\.metadata: missing"):
        checkpoint.verify(path, 6, None, None, sharded=True)


# -- a run resumes from the checkpoint before the damaged one ----------------------------------

SETTINGS = dict(scale="tiny", steps=6, batch_size=8, checkpoint_every=2,
                eval_max_tokens_per_domain=256, seed=3)


def cfg(data, out):
    return train_config(data=str(data), out=str(out), **SETTINGS)


def rows(run_dir):
    return [r for r in map(json.loads, open(run_dir / "metrics.jsonl")) if r["kind"] == "train"]


@pytest.fixture(scope="module")
def finished(synthetic_dataset, tmp_path_factory):
    """A run of 6 steps; checkpoints step-4 and step-6 kept."""
    out = run(cfg(synthetic_dataset, tmp_path_factory.mktemp("finished") / "run"))
    assert checkpoint.list_steps(out) == [4, 6]
    return out


def crashed(finished, tmp_path):
    """The finished run as a crash before its final/ left it: it resumes from its checkpoints."""
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    shutil.rmtree(out / "final")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_checkpoint_is_named_and_the_one_before_resumed(synthetic_dataset, finished,
                                                                  tmp_path, caplog, damage):
    caplog.set_level(logging.INFO, logger="mixtune.train.loop")
    out = crashed(finished, tmp_path)
    name, how, problem = DAMAGE[damage]
    how(out / "checkpoints" / "step-6" / name)
    run(cfg(synthetic_dataset, out))
    assert (f"checkpoint step-6 is damaged, not resumed (kept as damaged-step-6/): "
            f"{out / 'checkpoints' / 'step-6' / name}: {problem}") in caplog.text
    assert f"resuming {out} from step-4" in caplog.text
    # Steps 5 and 6 trained again, exactly as the first time.
    assert [r["step"] for r in rows(out)] == list(range(1, 7))
    assert [r["loss"] for r in rows(out)] == [r["loss"] for r in rows(finished)]
    assert (out / "final").is_dir() and checkpoint.list_steps(out) == [4, 6]
    assert (out / "checkpoints" / "damaged-step-6" / name).is_file()  # kept for a look


@pytest.mark.slow
def test_with_no_usable_checkpoint_left_the_run_starts_over(synthetic_dataset, finished, tmp_path,
                                                            caplog):
    """A crash after step 4 whose checkpoint is damaged: 4 steps lost, redone from step 0."""
    out = crashed(finished, tmp_path)
    shutil.rmtree(out / "checkpoints" / "step-6")
    cut(out / "checkpoints" / "step-4" / "optimizer.pt")
    run(cfg(synthetic_dataset, out))
    assert "step-4/optimizer.pt: truncated" in caplog.text
    assert f"{out}: no usable checkpoint left; starting over from step 0." in caplog.text
    assert [r["loss"] for r in rows(out)] == [r["loss"] for r in rows(finished)]
    assert checkpoint.list_steps(out) == [4, 6]


@pytest.mark.slow
def test_a_finished_training_is_not_redone_without_asking(synthetic_dataset, finished, tmp_path,
                                                          capsys):
    """Only the last step's checkpoint, damaged: starting over would redo the whole run, so the
    run stops with a one-line message and leaves it in place until the user decides."""
    from mixtune.cli import main

    out = crashed(finished, tmp_path)
    shutil.rmtree(out / "checkpoints" / "step-4")
    edit_state(out / "checkpoints" / "step-6" / "state.json", **{"sampler.consumed": "x"})
    metrics = (out / "metrics.jsonl").read_text()
    args = ["train", "--data", str(synthetic_dataset), "--out", str(out)]
    args += [a for k, v in SETTINGS.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert (f"mixtune: error: {out}: the last step's checkpoint is damaged ("
            f"{out / 'checkpoints' / 'step-6' / 'state.json'}: sampler.consumed is 'x'") in err
    assert "starting over would redo all 6 steps" in err
    assert checkpoint.list_steps(out) == [6] and (out / "metrics.jsonl").read_text() == metrics
    with pytest.raises(UserError, match="move step-6 out of"):
        run(cfg(synthetic_dataset, out))


# -- two processes -----------------------------------------------------------------------------

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}  # loopback only


def torchrun(data, out, *args, steps=6):
    settings = {**SETTINGS, "steps": steps}
    flags = [a for k, v in settings.items() for a in (f"--{k.replace('_', '-')}", str(v))]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
            "-m", "mixtune", "train", "--data", str(data), "--out", str(out), *flags, *args]


@pytest.mark.slow
def test_fsdp_resumes_the_checkpoint_before_one_missing_a_shard(synthetic_dataset, tmp_path):
    """Rank 0 checks and chooses; both ranks load the same checkpoint."""
    ran = subprocess.run(torchrun(synthetic_dataset, tmp_path / "a", "--parallelism", "fsdp"),
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-4000:]
    out = tmp_path / "b"
    shutil.copytree(tmp_path / "a", out)
    shutil.rmtree(out / "final")
    (out / "checkpoints" / "step-6" / "__1_0.distcp").unlink()
    ran = subprocess.run(torchrun(synthetic_dataset, out, "--parallelism", "fsdp"),
                         env=ENV, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert f"{out / 'checkpoints' / 'step-6' / '__1_0.distcp'}: missing (listed in .metadata)" \
        in ran.stderr
    assert f"resuming {out} from step-4" in ran.stderr
    assert [r["loss"] for r in rows(out)] == [r["loss"] for r in rows(tmp_path / "a")]


def worker(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of torchrun's worker of `rank` (a child of the launcher, RANK in its environment)."""
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except (OSError, ValueError, IndexError):  # not ours, or gone meanwhile
            continue
        if parent == launcher.pid and f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no worker of rank {rank}")


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds workers through /proc")
def test_a_killed_worker_ends_the_job_and_a_rerun_resumes(synthetic_dataset, tmp_path):
    """SIGKILL of rank 0 (the one writing checkpoints) mid-run: rank 1's next collective fails
    (the connection closes), torchrun stops the job naming the killed rank; nothing hangs."""
    out, steps = tmp_path / "run", 300
    launcher = subprocess.Popen(torchrun(synthetic_dataset, out, steps=steps), env=ENV,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "checkpoints" / "step-20").is_dir():
            assert launcher.poll() is None and time.monotonic() < deadline, "no step 20"
            time.sleep(0.05)
        os.kill(worker(launcher, 0), signal.SIGKILL)
        _, err = launcher.communicate(timeout=120)  # a hang fails here
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert "Signal 9 (SIGKILL)" in err
    assert "another process of this torchrun job stopped" in err  # the survivor says what happened
    assert not (out / "final").exists()
    ran = subprocess.run(torchrun(synthetic_dataset, out, steps=steps), env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-4000:]
    assert f"resuming {out} from step-" in ran.stderr
    assert [r["step"] for r in rows(out)] == list(range(1, steps + 1))
