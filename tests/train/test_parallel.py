"""DDP or FSDP: the choice (`parallel.choose`), and FSDP2 training on 2 CPU processes (gloo)
against DDP: same losses, an HF final/, sharded checkpoints that resume exactly."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from mixtune.distributed import Dist
from mixtune.errors import UserError
from mixtune.train import checkpoint, parallel
from mixtune.train.config import train_config

pytestmark = pytest.mark.slow  # FSDP and DDP under torchrun: seconds each

CPU = torch.device("cpu")
GB = 10**9


def dist(world_size: int, rank: int = 0) -> Dist:
    return Dist(rank, world_size, rank, CPU)


# -- the choice --------------------------------------------------------------------------------


def test_one_process_trains_the_plain_model(caplog):
    for setting in ("auto", "ddp", "fsdp"):
        assert parallel.choose(setting, 10**12, dist(1), memory=GB) == "none"
    assert "one process has nothing to shard over" in caplog.text


def test_a_named_mode_is_taken_as_it_is():
    assert parallel.choose("ddp", 10**12, dist(2), memory=GB) == "ddp"
    assert parallel.choose("fsdp", 10, dist(2), memory=GB) == "fsdp"


def test_auto_shards_when_the_training_state_would_fill_half_a_device(monkeypatch):
    monkeypatch.setattr(parallel, "device_memory", lambda device: 80 * GB)
    # 16 bytes per parameter against 40 GB: 2.5 billion parameters is the boundary.
    assert parallel.choose("auto", 2_500_000_000, dist(2)) == "ddp"
    assert parallel.choose("auto", 2_500_000_001, dist(2)) == "fsdp"
    assert parallel.choose("auto", 7_000_000_000, dist(8, rank=3)) == "fsdp"
    assert parallel.choose("auto", 124_000_000, dist(8)) == "ddp"


def test_cpu_memory_is_shared_by_the_local_processes(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    whole = parallel.device_memory(CPU)
    assert whole > 0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert parallel.device_memory(CPU) == whole // 4


def test_the_setting_is_checked_and_does_not_change_the_run_identity(synthetic_dataset, tmp_path):
    base = dict(data=str(synthetic_dataset), out=str(tmp_path), steps=2)
    assert train_config(**base).parallelism == "auto"
    assert train_config(**base, parallelism="fsdp").identity() == train_config(**base).identity()
    with pytest.raises(UserError, match="parallelism"):
        train_config(**base, parallelism="zero3")


def test_a_checkpoint_of_the_other_kind_is_refused(tmp_path):
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters())
    full = checkpoint.save(tmp_path, 1, model, opt, {"step": 1})
    assert checkpoint.kind(full) == "full"
    with pytest.raises(UserError, match="full checkpoint .* --parallelism ddp"):
        checkpoint.load_sharded(full, model, opt)
    (full / ".metadata").write_bytes(b"")  # what marks a DCP checkpoint
    assert checkpoint.kind(full) == "sharded"
    with pytest.raises(UserError, match="sharded checkpoint .* --parallelism fsdp"):
        checkpoint.load(full, model, opt)


# -- 2 CPU processes: FSDP against DDP ----------------------------------------------------------

SETTINGS = dict(scale="tiny", steps=6, batch_size=8, grad_accum=2, checkpoint_every=3, eval_every=3,
                eval_max_tokens_per_domain=256, seed=3)
ARGS = [a for k, v in SETTINGS.items() for a in (f"--{k.replace('_', '-')}", str(v))]
# 15 items of each of the dataset's tasks: the ranks score 8 and 7 (different numbers of forward
# passes, which FSDP's collectives would not allow without `parallel.gathered`).
TASKS = ["--eval-tasks", "dataset", "--eval-limit", "15"]
# FSDP computes the gradient norm from per-shard norms, a summation order other than DDP's: the
# clipping factor, hence every update, differs in the last float32 bits (observed: ~1e-8
# relative after 6 steps). Anything wrong (a missed gradient reduction, a wrong averaging factor,
# a shard not stepped) changes the losses by 1e-3 or more.
RTOL = 1e-5


def torchrun(command: str, *args: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}  # loopback only
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "mixtune", command, *args],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]


def rows(run_dir, kind="train"):
    return [r for r in map(json.loads, open(run_dir / "metrics.jsonl")) if r["kind"] == kind]


@pytest.fixture(scope="module")
def runs(synthetic_dataset, tmp_path_factory):
    """(ddp run, fsdp run): the same 6 steps with 2 micro-batches per rank."""
    root = tmp_path_factory.mktemp("parallel")
    for mode in ("ddp", "fsdp"):
        torchrun("train", "--data", str(synthetic_dataset), "--out", str(root / mode), *ARGS,
                 *TASKS, "--parallelism", mode)
    return root / "ddp", root / "fsdp"


@pytest.mark.slow
def test_fsdp_trains_as_ddp_does(runs):
    ddp, fsdp = runs
    for key in ("loss", "mean_loss", "grad_norm"):
        a, b = [r[key] for r in rows(ddp)], [r[key] for r in rows(fsdp)]
        assert len(a) == 6 and b == pytest.approx(a, rel=RTOL), key
    evals = [json.loads((r / "eval.json").read_text()) for r in runs]
    assert evals[1]["log_ppl"] == pytest.approx(evals[0]["log_ppl"], rel=RTOL)
    a, b = evals[0]["downstream"]["tasks"], evals[1]["downstream"]["tasks"]
    assert set(a) == set(b) and all(t["n"] == 15 for t in a.values())
    for name in a:
        assert b[name]["bpb"] == pytest.approx(a[name]["bpb"], rel=RTOL)
    assert [r["step"] for r in rows(fsdp, "eval")] == [3, 6]


@pytest.mark.slow
def test_fsdp_writes_sharded_checkpoints_and_a_plain_final_folder(runs):
    from transformers import AutoModelForCausalLM

    ddp, fsdp = runs
    assert checkpoint.list_steps(fsdp) == [3, 6]
    step = fsdp / "checkpoints" / "step-6"
    assert checkpoint.kind(step) == "sharded"
    assert {"__0_0.distcp", "__1_0.distcp", "state.json", "rng.pt"} <= {p.name for p in step.iterdir()}
    assert not list((fsdp / "checkpoints").glob(".step-*"))
    assert checkpoint.kind(ddp / "checkpoints" / "step-6") == "full"

    config = json.loads((fsdp / "final" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    a = AutoModelForCausalLM.from_pretrained(ddp / "final")
    b = AutoModelForCausalLM.from_pretrained(fsdp / "final")
    assert b.lm_head.weight is b.model.embed_tokens.weight or torch.equal(
        b.lm_head.weight, b.model.embed_tokens.weight)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(x, y, rtol=0, atol=1e-5), name
    ids = torch.tensor([[1, 2, 3, 4]])
    assert torch.allclose(a(ids).logits, b(ids).logits, atol=1e-4)


@pytest.mark.slow
def test_fsdp_resumes_exactly(runs, synthetic_dataset, tmp_path):
    """A crash after the step-3 checkpoint: rows up to 6 written, nothing else survived."""
    fsdp = runs[1]
    crashed = tmp_path / "crashed"
    shutil.copytree(fsdp, crashed)
    shutil.rmtree(crashed / "final")
    shutil.rmtree(crashed / "checkpoints" / "step-6")
    (crashed / "eval.json").unlink()
    torchrun("train", "--data", str(synthetic_dataset), "--out", str(crashed), *ARGS, *TASKS,
             "--parallelism", "fsdp")
    assert [r["step"] for r in rows(crashed)] == list(range(1, 7))
    assert [r["loss"] for r in rows(crashed)] == [r["loss"] for r in rows(fsdp)], \
        "a resumed run must reproduce the uninterrupted losses exactly on CPU"
    before, after = (json.loads((r / "eval.json").read_text()) for r in (fsdp, crashed))
    assert after["log_ppl"] == before["log_ppl"]
    assert after["downstream"] == before["downstream"]


@pytest.mark.slow
def test_a_sharded_checkpoint_is_refused_without_fsdp(runs, synthetic_dataset, tmp_path):
    crashed = tmp_path / "crashed"
    shutil.copytree(runs[1], crashed)
    shutil.rmtree(crashed / "final")
    cfg = train_config(data=str(synthetic_dataset), out=str(crashed), **SETTINGS,
                       eval_tasks="dataset", eval_limit=15)
    from mixtune.train.loop import run

    with pytest.raises(UserError, match="sharded checkpoint .* --parallelism fsdp"):
        run(cfg)  # one process: the plain model, which cannot take shards


@pytest.mark.slow
def test_doremi_proxy_under_fsdp_gives_the_ddp_weights(runs, synthetic_dataset, tmp_path):
    """The proxy scores each micro-batch without gradients first (grad_accum 2): forward passes
    through the sharded model outside backward; the reference model stays replicated."""
    reference = runs[0]
    for mode in ("ddp", "fsdp"):
        torchrun("doremi", "--data", str(synthetic_dataset), "--reference", str(reference),
                 "--out", str(tmp_path / mode), *ARGS, "--parallelism", mode)
    history = [np.array([list(json.loads(line)["weights"].values())
                         for line in open(tmp_path / mode / "weights_history.jsonl")])
               for mode in ("ddp", "fsdp")]
    assert history[0].shape == (6, 5)
    assert np.allclose(history[0], history[1], rtol=0, atol=1e-6)
