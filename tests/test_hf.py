"""DoReMiTrainer: a transformers Trainer giving the CLI's DoReMi weights, resumable after a kill."""

import json

import numpy as np
import pytest
import torch
from transformers import TrainerCallback, TrainingArguments

from mixtune.data.store import open_dataset
from mixtune.hf import DoReMiTrainer
from mixtune.model.build import build_model, load_model
from mixtune.train.config import OptimConfig
from mixtune.train.optim import build_optimizer, lr_at
from tests.conftest import PROXY

pytestmark = pytest.mark.slow


def trainer_kwargs(data, out, callbacks=(), save_steps=4, save_total_limit=None, **overrides):
    """Model, TrainingArguments, optimizer and schedule configured like the CLI runs of PROXY's
    settings with `overrides` (steps, batch_size, grad_accum, seed)."""
    p = {**PROXY, **overrides}
    ds = open_dataset(data)
    model = build_model("tiny", ds.vocab_size, ds.seq_len, ds.eos_id, p["seed"])
    args = TrainingArguments(
        output_dir=str(out), max_steps=p["steps"], seed=p["seed"], use_cpu=True,
        per_device_train_batch_size=p["batch_size"] // p["grad_accum"],
        gradient_accumulation_steps=p["grad_accum"], save_steps=save_steps, logging_steps=1,
        report_to="none", disable_tqdm=True, save_total_limit=save_total_limit,
    )
    optim = OptimConfig.for_scale("tiny")
    opt = build_optimizer(model, optim)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s, optim, p["steps"]) / optim.lr)
    return dict(model=model, args=args, train_dataset=ds, optimizers=(opt, sched),
                callbacks=list(callbacks))


def trainer(data, reference, out, weights_layout="doremi", **settings):
    """A DoReMiTrainer configured like the CLI proxy of `cli_proxy` (model, optimizer, schedule)."""
    return DoReMiTrainer(**trainer_kwargs(data, out, **settings), weights_layout=weights_layout,
                         reference_model=load_model(reference))


def weights(path):
    return np.array(list(json.loads(path.read_text())["train_domain_weights"].values()))


def history(path):
    return [(r["step"], list(r["weights"].values())) for r in map(json.loads, open(path))]


class Kill(TrainerCallback):
    """Stops the process's training abruptly after `at` steps (before that step's records)."""

    def __init__(self, at):
        self.at = at

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def test_trainer_gives_the_cli_weights_and_logs_them(synthetic_dataset, cli_proxy, tmp_path):
    ref, proxy = cli_proxy
    t = trainer(synthetic_dataset, ref, tmp_path / "hf")
    t.train()
    # One process on CPU: the same arithmetic in the same order as the CLI, so equal to rounding.
    assert np.allclose(weights(tmp_path / "hf" / "domain_weights.json"),
                       weights(proxy / "domain_weights.json"), rtol=0, atol=1e-9)
    ours, cli = history(tmp_path / "hf" / "weights_history.jsonl"), history(proxy / "weights_history.jsonl")
    assert [s for s, _ in ours] == list(range(1, 9))
    assert np.allclose([w for _, w in ours], [w for _, w in cli], rtol=0, atol=1e-9)
    logged = [r for r in t.state.log_history if "loss" in r]
    assert len(logged) == 8 and all(f"domain_weight/{d}" in logged[-1] for d in t.domains)
    assert logged[-1]["domain_weight/noise"] == pytest.approx(ours[-1][1][3])
    metrics = [json.loads(line) for line in open(proxy / "metrics.jsonl")]
    cli_loss = [r["loss"] for r in metrics if r["kind"] == "train"]
    assert [r["loss"] for r in logged] == pytest.approx(cli_loss, rel=1e-5)  # the same objective


def test_without_accumulation_the_training_forward_scores(synthetic_dataset, cli_proxy, tmp_path):
    ref, proxy = cli_proxy
    # One micro-batch per step: compute_loss scores the training forward itself (no extra forward).
    # The CLI proxy ran with 2 micro-batches: the same global batches, losses summed in two parts.
    # And ᾱ in the other layout, on request: {domain: weight}.
    trainer(synthetic_dataset, ref, tmp_path / "hf", grad_accum=1, weights_layout="flat").train()
    flat = json.loads((tmp_path / "hf" / "domain_weights.json").read_text())
    assert np.allclose(list(flat.values()), weights(proxy / "domain_weights.json"), rtol=0, atol=1e-6)
    ours, cli = history(tmp_path / "hf" / "weights_history.jsonl"), history(proxy / "weights_history.jsonl")
    assert [s for s, _ in ours] == list(range(1, 9))
    assert np.allclose([w for _, w in ours], [w for _, w in cli], rtol=0, atol=1e-6)
    assert not np.allclose([w for _, w in ours][-1], [0.2] * 5, atol=1e-3)  # the weights did move


def test_resume_after_a_kill_continues_the_weights(synthetic_dataset, cli_proxy, tmp_path):
    ref, proxy = cli_proxy
    with pytest.raises(KeyboardInterrupt):
        trainer(synthetic_dataset, ref, tmp_path / "hf", callbacks=[Kill(6)]).train()
    assert (tmp_path / "hf" / "checkpoint-4" / "doremi_state.json").is_file()
    assert not (tmp_path / "hf" / "domain_weights.json").exists()
    # A new process: fresh model and optimizer; everything comes from checkpoint-4.
    trainer(synthetic_dataset, ref, tmp_path / "hf").train(resume_from_checkpoint=True)
    ours = history(tmp_path / "hf" / "weights_history.jsonl")
    assert [s for s, _ in ours] == list(range(1, 9))  # steps 5.. rewritten once, not twice
    assert np.allclose([w for _, w in ours], [w for _, w in history(proxy / "weights_history.jsonl")],
                       rtol=0, atol=1e-9)
    assert np.allclose(weights(tmp_path / "hf" / "domain_weights.json"),
                       weights(proxy / "domain_weights.json"), rtol=0, atol=1e-9)


class KillAfterSave(TrainerCallback):
    """Stops the process right after the Trainer saved checkpoint-`at` and deleted older ones."""

    def __init__(self, at):
        self.at = at

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


def test_a_kill_after_the_save_with_one_checkpoint_kept_still_resumes(synthetic_dataset, cli_proxy,
                                                                      tmp_path):
    # save_total_limit=1 deletes checkpoint-2 when checkpoint-4 is saved: checkpoint-4 alone must
    # hold everything a resume needs, DoReMi's state included, whenever the process dies.
    ref, proxy = cli_proxy
    with pytest.raises(KeyboardInterrupt):
        trainer(synthetic_dataset, ref, tmp_path / "hf", callbacks=[KillAfterSave(4)],
                save_steps=2, save_total_limit=1).train()
    assert [p.name for p in (tmp_path / "hf").glob("checkpoint-*")] == ["checkpoint-4"]
    trainer(synthetic_dataset, ref, tmp_path / "hf", save_steps=2,
            save_total_limit=1).train(resume_from_checkpoint=True)
    assert np.allclose(weights(tmp_path / "hf" / "domain_weights.json"),
                       weights(proxy / "domain_weights.json"), rtol=0, atol=1e-9)


def test_settings_the_trainer_cannot_use_are_refused(synthetic_dataset, cli_proxy, tmp_path):
    from mixtune.data.loader import DomainBatches

    ref, _ = cli_proxy
    with pytest.raises(ValueError, match="max_steps"):
        trainer(synthetic_dataset, ref, tmp_path / "a", steps=-1)
    batches = DomainBatches(synthetic_dataset, "uniform", 8, grad_accum=1)
    with pytest.raises(ValueError, match=r"layout .* = \(8, 1, 1, 0\) does not match .* \(8, 2, 1, 0\)"):
        t = trainer(synthetic_dataset, ref, tmp_path / "b")
        DoReMiTrainer(model=t.model, args=t.args, reference_model=t.reference, train_dataset=batches)
    with pytest.raises(ValueError, match="no checkpoint with doremi_state.json"):
        trainer(synthetic_dataset, ref, tmp_path / "c").train(resume_from_checkpoint=True)
    with pytest.raises(ValueError, match="unknown weights layout 'reference'"):  # before training
        trainer(synthetic_dataset, ref, tmp_path / "d", weights_layout="reference")
