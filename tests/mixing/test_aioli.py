"""Aioli (`mixtune/mixing/aioli.py`): the estimate of A recovers a planted mixing law, the update
is the paper's exponentiated-gradient step, the state survives a checkpoint mid-sweep, and in the
training loop (held-out losses from `mixtune/train/heldout.py`) a run resumed mid-sweep, with
grad_accum 2 or on 2 processes gives the weights and losses of one uninterrupted process."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mixtune.errors import UserError
from mixtune.mixing.aioli import (
    AioliConfig,
    AioliMixer,
    estimate,
    normalise,
    sweep_matrix,
    update,
)
from mixtune.mixing.base import OnlineMixer
from mixtune.train.config import train_config

K = 4
PLANTED = np.array([  # loss decrease of domain i per step of training on domain j
    [0.030, 0.004, 0.002, 0.000],
    [0.005, 0.020, 0.001, 0.003],
    [0.001, 0.002, 0.050, 0.010],
    [0.000, 0.006, 0.004, 0.015],
])


def mixer(**kw) -> AioliMixer:
    opts = dict(round_steps=40, sweep_steps=2, sweep_share=0.5, epsilon=0.5, eta=1.0) | kw
    return AioliMixer(AioliConfig(**opts), np.full(K, 1.0 / K))


def simulate(m: AioliMixer, steps: range, losses: np.ndarray, noise: float = 0.0, seed: int = 0):
    """Train a linear-law "model": each step on mixture w lowers the losses by A·w (plus a drift
    every domain shares, and measurement noise); the mixer sees the losses when it asks."""
    rng = np.random.default_rng(seed)
    for step in steps:
        if m.wants_losses(step):
            m.observe_losses(step, losses + noise * rng.standard_normal(K), np.full(K, 64.0))
        losses = losses - PLANTED @ m.sampling_weights(step) - 0.01
    return losses


# -- the arithmetic ----------------------------------------------------------------------------


def test_the_schedule_sweeps_every_domain_once_per_sweep_then_holds():
    s = mixer().schedule  # 2 steps per perturbation, 40 per round, half of it in whole sweeps
    assert (s.passes, s.perturbations, s.sweep_length) == (2, 8, 16)
    for rnd in (0, 3):
        start = rnd * 40
        towards = [s.perturbation(start + o) for o in range(0, 16, 2)]
        assert sorted(towards[:4]) == sorted(towards[4:]) == list(range(K))
        assert all(s.perturbation(start + o) == s.perturbation(start + o + 1) for o in range(0, 16, 2))
        assert all(s.perturbation(start + o) is None for o in range(16, 40))
        measured = [o for o in range(40) if s.measurement(start + o) is not None]
        assert measured == list(range(0, 17, 2))  # before each perturbation, and after the last
    # whole sweeps: 25% of 40 steps is 1.25 sweeps of 8 steps -> 1; never the whole round
    assert mixer(sweep_share=0.25).schedule.passes == 1
    assert mixer(sweep_share=0.99).schedule.passes == 4  # 4 × 8 = 32 < 40: a hold step is left
    with pytest.raises(UserError, match=r"round_steps 8 is too short for one sweep over the 4 "
                                        r"domains \(4 × sweep_steps 2 = 8 steps\)"):
        mixer(round_steps=8)


def test_a_planted_mixing_law_is_recovered_exactly_without_noise():
    m = mixer()
    simulate(m, range(17), np.full(K, 5.0))  # one LearnParams: 16 sweep steps, 9 measurements
    # Over a perturbation of 2 steps on w_j the loss of i falls by 2·(A·w_j)_i + 2·drift: the
    # mixtures sum to 1, so the drift is a shift of A's rows. It adds the same to every column
    # sum, which the update (a softmax) does not see.
    drift = np.full((K, K), 0.01)
    assert np.allclose(m.state.a, 2 * (PLANTED + drift), rtol=0, atol=1e-12)
    assert np.allclose(normalise(m.state.a), normalise(PLANTED + drift), atol=1e-12)


def test_a_planted_mixing_law_is_recovered_from_noisy_losses():
    m = mixer(sweep_share=0.99)  # 4 sweeps averaged
    simulate(m, range(40), np.full(K, 5.0), noise=2e-4, seed=1)
    # β of a perturbation is a difference of two noisy losses (σ√2); W⁻¹ at ε = 0.5 amplifies
    # it at most 1/ε = 2 times; averaged over 4 sweeps: ~3e-4 per entry of 2·A.
    assert np.abs(m.state.a - 2 * (PLANTED + 0.01)).max() < 2e-3
    assert np.argmax(m.state.a.sum(axis=0)) == np.argmax(PLANTED.sum(axis=0))


def test_the_estimate_inverts_the_sweep_mixtures():
    w = sweep_matrix(3, 0.25)  # the code's one_hot_factor: ε + (1 − ε)/k = 0.5 for 3 domains
    assert np.allclose(np.diag(w), 0.5) and np.allclose(w.sum(axis=1), 1.0)
    a = np.arange(9.0).reshape(3, 3)
    assert np.allclose(estimate(a @ w.T, w), a)
    assert np.allclose(estimate(a, sweep_matrix(3, 1.0)), a)  # ε = 1: one-hot sweeps, W = I


def test_the_update_is_the_papers_exponentiated_gradient_step():
    p = np.array([0.5, 0.3, 0.2])
    a = np.array([[0.2, -0.1, 0.0], [0.1, 0.4, 0.0], [0.0, 0.1, 0.1]])
    shifted = a + 0.1  # the smallest entry to 0, then the whole matrix to sum 1
    assert np.allclose(normalise(a), shifted / shifted.sum())
    expected = p * np.exp(2.0 * (shifted / shifted.sum()).sum(axis=0))
    assert np.allclose(update(p, a, 2.0), expected / expected.sum(), rtol=0, atol=1e-15)
    # the domain whose training lowers the losses most gains; a domain at 0 stays at 0
    assert np.argmax(update(np.full(3, 1 / 3), a, 1.0)) == 1
    assert update(np.array([0.0, 0.5, 0.5]), a, 1.0)[0] == 0.0
    assert np.allclose(update(p, np.zeros((3, 3)), 5.0), p)  # no information, no move


def test_the_mixture_moves_towards_the_domains_that_lower_every_loss():
    m = mixer(sweep_share=0.99)
    losses = simulate(m, range(40 * 5), np.full(K, 5.0))
    gain = PLANTED.sum(axis=0)  # domain 2 lowers the summed loss most, domain 0 next
    p = m.state.p
    assert list(np.argsort(p)) == list(np.argsort(gain)) and p.sum() == pytest.approx(1.0)
    assert np.isfinite(losses).all()
    assert m.sampling_weights(40 * 5 + 39).tolist() == p.tolist()  # a hold step samples p
    # 5 rounds of 17 measurements (before each of 4 × 4 perturbations, and after the last)
    assert np.allclose(m.metrics()["domain_heldout_tokens"], 5 * 17 * 64)


def test_the_state_round_trip_continues_mid_sweep_exactly():
    whole, first = mixer(), mixer()
    simulate(whole, range(100), np.full(K, 5.0))
    losses = simulate(first, range(47), np.full(K, 5.0))  # stopped in round 1's sweeps
    assert first.state.rnd == 1 and 0 < first.state.measured < first.schedule.perturbations + 1
    resumed = mixer()
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))  # as a checkpoint holds it
    simulate(resumed, range(47, 100), losses)
    assert resumed.state_dict() == whole.state_dict()
    with pytest.raises(ValueError, match="Aioli state has 4 domains, this run 3"):
        AioliMixer(AioliConfig(round_steps=40), np.full(3, 1 / 3)).load_state_dict(
            whole.state_dict())


def test_a_missed_measurement_is_an_error_not_a_wrong_estimate():
    m = mixer()
    m.observe_losses(0, np.ones(K), np.ones(K))
    with pytest.raises(RuntimeError, match="measurement 2 of round 0, expected measurement 1"):
        m.observe_losses(4, np.ones(K), np.ones(K))


def test_methods_that_do_not_ask_get_no_losses():
    from mixtune.mixing.static import StaticMixer

    assert isinstance(StaticMixer(np.ones(2) / 2), OnlineMixer)
    assert not StaticMixer(np.ones(2) / 2).wants_losses(0)


def test_init_names_a_mixture_of_the_run_or_is_refused(tmp_path):
    from mixtune.pipeline.config import load_run_config

    def load(init, mixtures):
        path = tmp_path / "run.yaml"
        path.write_text(json.dumps({"output": "out", "data": {"synthetic": {}},
                                    "mixtures": mixtures, "aioli": {"init": init}}))
        return load_run_config(path)

    assert load("regmix", ["reference", "regmix", "aioli"]).methods["aioli"].init == "regmix"
    assert load("reference", ["reference", "aioli"]).methods["aioli"].init == "reference"
    with pytest.raises(UserError, match=r"aioli\.init 'regmix': not a weights spec.*nor another "
                                        r"mixture of this run's mixtures: \(reference, uniform\)"):
        load("regmix", ["reference", "uniform", "aioli"])
    with pytest.raises(UserError, match="aioli.init 'doremi'.*give its weights file"):
        AioliConfig(init="doremi").build(None)


def test_its_options_are_checked():
    for kw, msg in [({"epsilon": 0}, r"epsilon 0: must be in \(0, 1\]"),
                    ({"sweep_share": 1}, r"sweep_share 1: must be in \(0, 1\)"),
                    ({"init": "unifrom"}, r"init 'unifrom': not understood"),
                    ({"round_steps": 1}, r"round_steps 1: must be at least 2"),
                    ({"weights": "natural"}, r"unknown key 'weights'")]:
        with pytest.raises(UserError, match=msg):
            train_config(data="d", out="o", method="aioli", **kw)


# -- the held-out text -------------------------------------------------------------------------


def test_held_out_text_is_never_what_the_evaluation_scores(synthetic_dataset):
    from mixtune.data.store import open_dataset
    from mixtune.train.heldout import source

    ds = open_dataset(synthetic_dataset)
    val, train = ds.counts("validation"), ds.counts("train")
    split, starts = source(ds, 64, 256)  # the evaluation scores tokens 0..256 of validation
    assert split == "validation"
    assert starts == {d: n - 65 for d, n in val.items()} and min(starts.values()) > 256
    split, starts = source(ds, 64, None)  # it scores all of validation: the train tail
    assert split == "train" and starts == {d: n - 65 for d, n in train.items()}


# -- in the training loop ----------------------------------------------------------------------

SETTINGS = dict(scale="tiny", steps=16, batch_size=8, checkpoint_every=2, keep_checkpoints=20,
                eval_max_tokens_per_domain=256, seed=3)
# 5 domains × 1 step per perturbation, one sweep (5 steps) and 3 hold steps per 8-step round
AIOLI = dict(method="aioli", round_steps=8, sweep_steps=1, sweep_share=0.5, heldout_tokens=64)


def rows(run_dir, kind="train"):
    return [r for r in map(json.loads, open(run_dir / "metrics.jsonl")) if r["kind"] == kind]


def history(run_dir):
    return np.array([list(r["weights"].values())
                     for r in map(json.loads, open(run_dir / "weights_history.jsonl"))])


# Held-out losses of two layouts agree to float32 rounding (~1e-6: their models differ in the last
# bits, the gradient sums being ordered differently), but A is estimated from their changes over
# one step (~5e-3) and normalised by its sum (~0.1): the weights agree to ~1e-5. A wrong reduction
# (one rank's windows only: half the held-out text) moves them by ~2e-2.
WEIGHTS_ATOL = 1e-4


def train(data, out, **kw):
    from mixtune.train.loop import run

    return run(train_config(data=str(data), out=str(out), **(SETTINGS | AIOLI | kw)))


def test_train_method_aioli_runs_and_writes_its_history(synthetic_dataset, tmp_path):
    from mixtune.cli import main

    flags = [a for k, v in (SETTINGS | AIOLI | {"eta": 2.0}).items()
             for a in (f"--{k.replace('_', '-')}", str(v))]
    out = tmp_path / "run"
    assert main(["train", "--data", str(synthetic_dataset), "--out", str(out), *flags]) == 0
    h, r = history(out), rows(out)
    assert h.shape == (16, 5) and np.allclose(h.sum(axis=1), 1.0)
    assert np.allclose(h[:5], 0.2) and not np.allclose(h[5], 0.2)  # updated after the sweep
    assert not np.allclose(h[13], h[5])  # and again after the second round's
    # 2 rounds of 6 measurements (before each of 5 perturbations and after the last), 64 tokens
    # of each of the 5 domains each time
    assert sum(r[-1]["domain_heldout_tokens"].values()) == 2 * 6 * 5 * 64
    assert all(r[-1]["domain_gain"][d] >= 0 for d in r[-1]["domain_gain"])
    dw = json.loads((out / "domain_weights.json").read_text())["train_domain_weights"]
    assert np.allclose(list(dw.values()), h[-1])
    assert (out / "final" / "config.json").is_file()


@pytest.mark.slow
def test_resumed_mid_sweep_it_gives_the_uninterrupted_weights_and_losses(synthetic_dataset,
                                                                         tmp_path):
    a = train(synthetic_dataset, tmp_path / "a")
    b = train(synthetic_dataset, tmp_path / "b")
    # A crash after step 10's checkpoint, mid-sweep: round 2 has measured before steps 8 and 9
    # (2 of its 6 measurements, in the checkpoint's sweep records) and trained on 2 of its 5
    # perturbations; nothing after survived but the logged rows.
    shutil.rmtree(b / "final")
    for step in range(12, 17, 2):
        shutil.rmtree(b / "checkpoints" / f"step-{step}")
    (b / "eval.json").unlink()
    (b / "domain_weights.json").unlink()
    train(synthetic_dataset, tmp_path / "b")
    assert [r["step"] for r in rows(b)] == list(range(1, 17))
    assert np.array_equal(history(a), history(b))
    assert [r["loss"] for r in rows(a)] == [r["loss"] for r in rows(b)]
    assert [r["domain_gain"] for r in rows(a)] == [r["domain_gain"] for r in rows(b)]
    assert (a / "domain_weights.json").read_text() == (b / "domain_weights.json").read_text()
    assert json.loads((a / "eval.json").read_text())["log_ppl"] == \
        json.loads((b / "eval.json").read_text())["log_ppl"]


@pytest.mark.slow
def test_grad_accum_2_gives_the_weights_of_1(synthetic_dataset, tmp_path):
    one = train(synthetic_dataset, tmp_path / "one")
    acc = train(synthetic_dataset, tmp_path / "acc", grad_accum=2)
    assert np.allclose(history(one), history(acc), rtol=0, atol=WEIGHTS_ATOL)
    assert not np.allclose(history(one)[-1], 0.2)
    assert [r["loss"] for r in rows(one)] == pytest.approx([r["loss"] for r in rows(acc)], abs=1e-5)


@pytest.mark.slow
def test_two_processes_give_the_weights_of_one(synthetic_dataset, tmp_path):
    one = train(synthetic_dataset, tmp_path / "one")
    flags = [a for k, v in (SETTINGS | AIOLI).items() for a in (f"--{k.replace('_', '-')}", str(v))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}  # loopback only
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "mixtune", "train", "--data", str(synthetic_dataset), "--out",
         str(tmp_path / "two"), *flags],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = tmp_path / "two"
    assert np.allclose(history(one), history(two), rtol=0, atol=WEIGHTS_ATOL)
    assert [r["loss"] for r in rows(one)] == pytest.approx([r["loss"] for r in rows(two)], abs=1e-5)
    # the held-out windows were split between the ranks and their sums added: the same tokens
    assert rows(one)[-1]["domain_heldout_tokens"] == rows(two)[-1]["domain_heldout_tokens"]


@pytest.mark.slow
def test_mixtune_run_trains_aiolis_main_models_beside_the_others(tmp_path):
    import yaml

    from mixtune.pipeline import run_pipeline

    cfg = {
        "output": str(tmp_path / "out"),
        "data": {"synthetic": {"train_tokens": 12_000, "validation_tokens": 1_000,
                               "doc_len": 64, "seq_len": 32}},
        "proxy": {"scale": "tiny", "steps": 6, "batch_size": 8},
        "main": {"scale": "tiny", "steps": 24, "batch_size": 8},
        "mixtures": ["reference", "uniform", "doremi", "aioli"], "seeds": [0],
        "aioli": {"round_steps": 12, "sweep_steps": 1, "heldout_tokens": 256, "init": "doremi"},
        "train": {"eval_max_tokens_per_domain": 128},
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    out = run_pipeline(tmp_path / "run.yaml")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["origins"] == {"doremi": "doremi", "aioli": "aioli"}  # fixed ones: none
    record = summary["methods"]["aioli"]
    assert record["online"] and 0 < record["flops"]["forward_per_token"] < record["flops"]["main_run"]
    for name in ("natural", "uniform", "doremi", "aioli"):
        for rel in summary["main_runs"][name].values():
            assert (out / rel / "eval.json").is_file()
    run = out / summary["main_runs"]["aioli"]["seed-0"]
    weights = history(run)
    # init: doremi: it started from DoReMi's proposal (the mixture it holds before its first update)
    doremi = [summary["mixtures"]["doremi"][d] for d in summary["domains"]]
    assert np.allclose(weights[0], doremi, atol=1e-12)
    assert len({tuple(w) for w in weights}) > 1  # and moved during the main run
    model = json.loads((run / "model_record.json").read_text())
    assert model["mixture"]["name"] == "aioli"  # a main model, not a proxy
    report = (out / "report" / "report.md").read_text()
    assert "aioli (online, in the main runs)" in report and "| aioli |" in report
    assert "## aioli: the mixture chosen during the main runs" in report
    assert "% of one main run's" in report and (out / "report" / "aioli_trajectory.png").is_file()
    # the verdict: first in the report, in summary.json, and above the leaderboard's tables
    verdict = json.loads((out / "summary.json").read_text())["verdict"]
    assert {c["mixture"] for c in verdict["comparisons"]} == {"uniform", "doremi", "aioli"}
    assert verdict["sentence"] in report.replace("**", "")
    assert "| aioli |" in (out / "report" / "leaderboard.md").read_text()  # a main model
    for page in ("leaderboard.md", "leaderboard.html"):
        assert f"Verdict, out: {verdict['sentence'][:30]}" in (out / "report" / page).read_text()
