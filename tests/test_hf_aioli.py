"""AioliTrainer: a transformers Trainer giving `mixtune train --method aioli`'s weights, resumable
after a kill mid-sweep."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixtune.data.store import open_dataset
from mixtune.data.weights import write_weights
from mixtune.errors import UserError
from mixtune.hf import AioliTrainer
from mixtune.mixing.aioli import Aioli
from tests.conftest import PROXY
from tests.test_hf import Kill, history, trainer_kwargs, weights

pytestmark = pytest.mark.slow

AIOLI = dict(round_steps=8, sweep_steps=1, sweep_share=0.5, heldout_tokens=64)
"""As examples/aioli_loop.py: per round of 8 steps a sweep over the 5 domains (steps 0-4), the
update before step 5, then steps 5-7 on the updated mixture."""
STEPS = 16  # two rounds
EVAL_TOKENS = 256  # validation tokens the CLI's evaluation scores: the held-out text avoids them


@pytest.fixture(scope="module")
def cli_aioli(synthetic_dataset, tmp_path_factory):
    """`mixtune train --method aioli` with PROXY's settings for STEPS steps: its run folder."""
    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    out = tmp_path_factory.mktemp("cli_aioli") / "run"
    return run(train_config(data=str(synthetic_dataset), out=str(out), scale="tiny",
                            eval_max_tokens_per_domain=EVAL_TOKENS, **{**PROXY, "steps": STEPS},
                            method="aioli", **AIOLI))


def aioli_trainer(data, out, aioli=AIOLI, **settings):
    """An AioliTrainer configured like `cli_aioli` (model, optimizer, schedule, evaluation)."""
    return AioliTrainer(**trainer_kwargs(data, out, steps=STEPS, **settings), aioli=aioli,
                        eval_max_tokens=EVAL_TOKENS)


def same_history(out, cli, atol):
    ours, theirs = history(out / "weights_history.jsonl"), history(cli / "weights_history.jsonl")
    assert [s for s, _ in ours] == list(range(1, STEPS + 1))  # steps after a resume written once
    assert np.allclose([w for _, w in ours], [w for _, w in theirs], rtol=0, atol=atol)
    return np.array([w for _, w in ours])


# Measured: bit-identical with 2 micro-batches; 5.4e-7 with 1. Aioli's estimate of A is made of
# differences of held-out losses, normalised to sum 1: another summation order's float rounding
# reaches the weights amplified.
@pytest.mark.parametrize("grad_accum, atol", [(2, 1e-9), (1, 5e-6)], ids=["2-micro", "1-micro"])
def test_aioli_trainer_gives_the_cli_weights_and_logs_them(synthetic_dataset, cli_aioli, tmp_path,
                                                           grad_accum, atol):
    # 2 micro-batches, as the CLI run: the same float operations in the same order. 1 micro-batch:
    # the same global batches, each mean summed in one part instead of two.
    t = aioli_trainer(synthetic_dataset, tmp_path / "hf", grad_accum=grad_accum)
    t.train()
    ours = same_history(tmp_path / "hf", cli_aioli, atol)
    assert np.allclose(ours[:5], 0.2) and not np.allclose(ours[5], 0.2)  # the update before step 5
    assert not np.allclose(ours[13], ours[12], atol=1e-4)  # and round 2's, before step 13
    assert np.allclose(weights(tmp_path / "hf" / "domain_weights.json"),
                       weights(cli_aioli / "domain_weights.json"), rtol=0, atol=atol)
    logged = [r for r in t.state.log_history if "loss" in r]
    assert len(logged) == STEPS and logged[-1]["domain_weight/noise"] == pytest.approx(ours[-1][3])
    metrics = [json.loads(line) for line in open(cli_aioli / "metrics.jsonl")]
    cli_loss = [r["loss"] for r in metrics if r["kind"] == "train"]
    assert [r["loss"] for r in logged] == pytest.approx(cli_loss, rel=1e-5)  # the plain mean


def test_resume_after_a_kill_mid_sweep_continues_the_weights(synthetic_dataset, cli_aioli,
                                                             tmp_path):
    out = tmp_path / "hf"
    with pytest.raises(KeyboardInterrupt):
        aioli_trainer(synthetic_dataset, out, callbacks=[Kill(14)]).train()
    # checkpoint-12, mid-sweep: round 2's losses measured before steps 8-11 (β in part); the
    # measurement before step 12, and the one before step 13 with the update, are still to come.
    saved = json.loads((out / "checkpoint-12" / "aioli_state.json").read_text())
    assert (saved["step"], saved["aioli"]["round"], saved["aioli"]["measured"]) == (12, 1, 4)
    assert saved["batches"]["step"] == 12 and not (out / "domain_weights.json").exists()
    # A new process: fresh model, optimizer and Aioli; everything comes from checkpoint-12.
    aioli_trainer(synthetic_dataset, out).train(resume_from_checkpoint=True)
    same_history(out, cli_aioli, 1e-9)
    assert np.allclose(weights(out / "domain_weights.json"),
                       weights(cli_aioli / "domain_weights.json"), rtol=0, atol=1e-9)


def test_settings_the_aioli_trainer_cannot_use_are_refused(synthetic_dataset, tmp_path):
    kwargs = trainer_kwargs(synthetic_dataset, tmp_path / "a", steps=STEPS)
    kwargs["args"].dataloader_num_workers = 2
    with pytest.raises(ValueError, match=r"dataloader_num_workers=2: the batches are drawn in"):
        AioliTrainer(**kwargs, aioli=AIOLI)
    with pytest.raises(ValueError, match="Aioli's domains"):
        aioli_trainer(synthetic_dataset, tmp_path / "b", aioli=Aioli(["a", "b"]))
    with pytest.raises(ValueError, match="no checkpoint with aioli_state.json"):
        aioli_trainer(synthetic_dataset, tmp_path / "c").train(resume_from_checkpoint=True)
    with pytest.raises(UserError, match="round_steps 4 is too short"):  # Aioli's checks, the CLI's
        aioli_trainer(synthetic_dataset, tmp_path / "d", aioli={"round_steps": 4})
    init = [0.4, 0.3, 0.1, 0.1, 0.1]
    spec = write_weights(tmp_path / "init.json", init, open_dataset(synthetic_dataset).domains)
    t = aioli_trainer(synthetic_dataset, tmp_path / "e", aioli={**AIOLI, "init": str(spec)})
    assert np.allclose(t.aioli.mixture, init)  # a weights spec, resolved on the dataset


@pytest.mark.parametrize("torchrun", [False, True], ids=["one-process", "torchrun-2"])
def test_the_example_gives_the_cli_weights(synthetic_dataset, cli_aioli, tmp_path, torchrun):
    example = Path(__file__).parents[1] / "examples" / "hf_aioli.py"
    launcher = [sys.executable, *(["-m", "torch.distributed.run", "--nproc-per-node", "2"]
                                  if torchrun else [])]
    settings = [f"--{k.replace('_', '-')}={v}" for k, v in {**PROXY, "steps": STEPS}.items()]
    proc = subprocess.run([*launcher, str(example), str(synthetic_dataset), str(tmp_path),
                           *settings], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Two processes: each scores half of the held-out windows and of every micro-batch, and the
    # all-reduces add the halves (measured 2.6e-6, Aioli's amplification as above).
    same_history(tmp_path, cli_aioli, 1e-5 if torchrun else 1e-9)
