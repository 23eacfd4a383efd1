"""End-to-end tests of `train` and `doremi` on a tiny generated dataset."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mixtune.errors import UserError
from mixtune.train.config import OptimConfig, train_config
from mixtune.train.loop import run
from mixtune.train.optim import lr_at

pytestmark = pytest.mark.slow


def cfg(data, out, **kw):
    base = dict(
        data=str(data),
        out=str(out),
        scale="tiny",
        steps=8,
        batch_size=8,
        checkpoint_every=4,
        eval_max_tokens_per_domain=256,
        seed=3,
    )
    base.update(kw)
    if "reference" in base:  # a DoReMi proxy: its sampling mixture is `proxy_sampling`
        base.update(method="doremi", proxy_sampling=base.pop("weights", "uniform"))
    return train_config(**base)


def rows(run_dir, kind="train"):
    return [r for r in map(json.loads, open(run_dir / "metrics.jsonl")) if r["kind"] == kind]


def history(run_dir):
    return np.array(
        [
            list(r["weights"].values())
            for r in map(json.loads, open(run_dir / "weights_history.jsonl"))
        ]
    )


@pytest.fixture(scope="module")
def reference(synthetic_dataset, tmp_path_factory):
    return run(
        cfg(synthetic_dataset, tmp_path_factory.mktemp("ref") / "ref", steps=6, weights="natural")
    )


def test_lr_schedule():
    c = OptimConfig.for_scale("tiny")  # the paper: 1e-3, 6% warm-up, decay to a tenth
    assert lr_at(0, c, 100) == pytest.approx(1e-3 / 6)  # 6% warm-up: 6 steps
    assert lr_at(5, c, 100) == pytest.approx(1e-3)
    assert lr_at(99, c, 100) == pytest.approx(1e-4)
    assert all(lr_at(s, c, 100) > lr_at(s + 1, c, 100) for s in range(6, 99))


def test_exact_resume_after_crash(synthetic_dataset, tmp_path):
    a = run(cfg(synthetic_dataset, tmp_path / "a", steps=12))
    b = run(cfg(synthetic_dataset, tmp_path / "b", steps=12))
    # Simulate a crash after the step-8 checkpoint: rows 9..12 were written, nothing else survived.
    shutil.rmtree(b / "final")
    shutil.rmtree(b / "checkpoints" / "step-12")
    (b / "eval.json").unlink()
    assert [r["step"] for r in rows(b)][-1] == 12
    run(cfg(synthetic_dataset, tmp_path / "b", steps=12))
    la, lb = [r["loss"] for r in rows(a)], [r["loss"] for r in rows(b)]
    assert [r["step"] for r in rows(b)] == list(range(1, 13))
    assert la == lb, "resumed run must reproduce the uninterrupted losses exactly on CPU"
    assert (
        json.loads((a / "eval.json").read_text())["log_ppl"]
        == json.loads((b / "eval.json").read_text())["log_ppl"]
    )


def test_metrics_and_final_folder_load_with_plain_transformers(synthetic_dataset, reference):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    r = rows(reference)
    assert len(r) == 6
    for key in ("step", "loss", "lr", "tokens", "step_time_s", "tokens_per_s", "domain_loss"):
        assert key in r[0]
    assert r[-1]["tokens"] == 6 * 8 * 32
    ev = json.loads((reference / "eval.json").read_text())
    assert set(ev["log_ppl"]) == {"markov_easy", "markov_hard", "markov_medium", "noise", "repeat"}
    assert ev["worst"] == max(ev["log_ppl"].values())
    model = AutoModelForCausalLM.from_pretrained(reference / "final")
    tok = AutoTokenizer.from_pretrained(reference / "final")
    ids = tok("t1 t2 t3", return_tensors="pt").input_ids
    assert ids.tolist() == [[1, 2, 3]]
    assert model(ids).logits.shape == (1, 3, 257)


def test_finished_run_is_skipped_and_changed_settings_refused(synthetic_dataset, reference):
    before = (reference / "metrics.jsonl").read_text()
    run(cfg(synthetic_dataset, reference, steps=6, weights="natural"))
    assert (reference / "metrics.jsonl").read_text() == before
    with pytest.raises(UserError, match="steps: 6 -> 7"):
        run(cfg(synthetic_dataset, reference, steps=7, weights="natural"))


def test_proxy_weights_same_with_grad_accum(synthetic_dataset, reference, tmp_path):
    one = run(cfg(synthetic_dataset, tmp_path / "one", reference=str(reference), weights="uniform"))
    acc = run(
        cfg(
            synthetic_dataset,
            tmp_path / "acc",
            reference=str(reference),
            weights="uniform",
            grad_accum=2,
        )
    )
    h1, h2 = history(one), history(acc)
    assert h1.shape == (8, 5)
    assert np.allclose(h1, h2, rtol=0, atol=1e-6)
    dw = json.loads((one / "domain_weights.json").read_text())
    assert np.allclose(list(dw["train_domain_weights"].values()), h1.mean(axis=0), atol=1e-12)
    assert dw["train_domain_weights"] == dw["eval_domain_weights"]
    assert not np.allclose(h1[-1], 0.2), "the weights moved away from uniform"


@pytest.mark.slow
def test_proxy_weights_same_under_torchrun(synthetic_dataset, reference, tmp_path):
    one = run(cfg(synthetic_dataset, tmp_path / "one", reference=str(reference), weights="uniform"))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}  # loopback only
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "mixtune",
        "doremi",
        "--data",
        str(synthetic_dataset),
        "--reference",
        str(reference),
        "--out",
        str(tmp_path / "two"),
        "--scale",
        "tiny",
        "--steps",
        "8",
        "--batch-size",
        "8",
        "--checkpoint-every",
        "4",
        "--eval-max-tokens-per-domain",
        "256",
        "--seed",
        "3",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.allclose(history(one), history(tmp_path / "two"), rtol=0, atol=1e-6)
    assert [r["loss"] for r in rows(one)] == pytest.approx(
        [r["loss"] for r in rows(tmp_path / "two")], abs=1e-5
    )


def test_proxy_token_normalisation_differs(synthetic_dataset, reference, tmp_path):
    dom = run(
        cfg(synthetic_dataset, tmp_path / "d", reference=str(reference), weights="uniform", steps=4)
    )
    tok = run(
        cfg(
            synthetic_dataset,
            tmp_path / "t",
            reference=str(reference),
            weights="uniform",
            steps=4,
            loss_normalization="token",
        )
    )
    # Same first update (it only depends on the initial proxy), different losses afterwards.
    assert np.allclose(history(dom)[0], history(tok)[0])
    assert (
        rows(dom)[0]["loss"] != rows(tok)[0]["loss"] or rows(dom)[1]["loss"] != rows(tok)[1]["loss"]
    )


def test_missing_reference_is_a_clear_error(synthetic_dataset, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mixtune",
            "doremi",
            "--data",
            str(synthetic_dataset),
            "--reference",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "p"),
            "--steps",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "no trained model" in proc.stderr and "Traceback" not in proc.stderr


def test_tokenizer_mismatch_is_a_clear_error(synthetic_dataset, reference, tmp_path):
    other = tmp_path / "ref"
    shutil.copytree(reference, other)
    tj = other / "final" / "tokenizer.json"
    spec = json.loads(tj.read_text())
    spec["model"]["vocab"]["t0"], spec["model"]["vocab"]["t1"] = 1, 0  # same size, different ids
    tj.write_text(json.dumps(spec))
    with pytest.raises(UserError, match="tokenizer differs"):
        run(cfg(synthetic_dataset, tmp_path / "p", reference=str(other), weights="uniform"))


def test_proxy_resume_reproduces_weights(synthetic_dataset, reference, tmp_path):
    kw = dict(reference=str(reference), weights="uniform", steps=8)
    a = run(cfg(synthetic_dataset, tmp_path / "a", **kw))
    b = run(cfg(synthetic_dataset, tmp_path / "b", **kw))
    shutil.rmtree(b / "final")
    shutil.rmtree(b / "checkpoints" / "step-8")
    (b / "domain_weights.json").unlink()
    run(cfg(synthetic_dataset, tmp_path / "b", **kw))  # resumes from step 4 with the saved α, Σα, λ
    assert np.array_equal(history(a), history(b))
    assert (a / "domain_weights.json").read_text() == (b / "domain_weights.json").read_text()


def test_eval_command_writes_eval_json_and_table(synthetic_dataset, reference, tmp_path):
    from mixtune.cli import main

    copy = tmp_path / "run"
    shutil.copytree(reference, copy)
    (copy / "eval.json").unlink()
    assert main(["eval", str(copy), "--max-tokens-per-domain", "64"]) == 0
    ev = json.loads((copy / "eval.json").read_text())
    assert all(n == 64 for n in ev["tokens"].values())
    assert ev["average"] == pytest.approx(sum(ev["log_ppl"].values()) / 5)
    assert main(["eval", str(tmp_path / "nothing")]) == 2


def test_a_failed_start_does_not_lock_the_run_folder(synthetic_dataset, reference, tmp_path, caplog):
    """A typo'd --reference fails before anything is recorded; the corrected command then runs.
    A config.yaml left by an older failed start (no checkpoint) gives way to new settings."""
    from mixtune.cli import main

    args = ["doremi", "--data", str(synthetic_dataset), "--out", str(tmp_path / "p"), "--steps", "2",
            "--batch-size", "8", "--eval-max-tokens-per-domain", "64"]
    assert main([*args, "--reference", str(tmp_path / "typo")]) == 2
    assert main([*args, "--reference", str(reference)]) == 0
    assert (tmp_path / "p" / "final").is_dir()

    stale = tmp_path / "q"
    stale.mkdir()
    (stale / "config.yaml").write_text(cfg(synthetic_dataset, stale, steps=99).to_yaml())
    run(cfg(synthetic_dataset, stale, steps=2))
    assert "starting again with the new settings (steps: 99 -> 2)" in caplog.text
    assert [r["step"] for r in rows(stale)] == [1, 2]


def test_train_with_unimax_samples_the_unimax_weights(tmp_path, monkeypatch):
    """`mixtune train --weights unimax:E` spreads this run's tokens (steps × batch × seq_len) by
    UniMax; the loop, the model record and `DomainBatches` over the same steps all agree."""
    from mixtune.cli import main
    from mixtune.data.loader import DomainBatches
    from mixtune.data.sampler import DomainSampler
    from mixtune.data.store import open_dataset
    from mixtune.mixing.repetition import unimax_weights
    from mixtune.provenance import model_record
    from mixtune.synthetic import write_dataset

    sizes = {"markov_easy": 200, "markov_hard": 2000, "markov_medium": 4000, "noise": 6000,
             "repeat": 8000}  # unequal, so UniMax is neither uniform nor natural
    data = write_dataset(tmp_path / "data", train_tokens=sizes, validation_tokens=200,
                         doc_len=64, seq_len=32, seed=0)
    ds = open_dataset(data)
    counts = np.array([ds.counts("train")[d] for d in ds.domains], dtype=float)
    expected = unimax_weights(counts, 4 * 8 * 32, 0.5)  # the smallest domain is held to 0.5 epochs
    assert expected[0] < 0.2 and not np.allclose(expected, counts / counts.sum())

    drawn = []
    real_next = DomainSampler.next
    monkeypatch.setattr(DomainSampler, "next",
                        lambda self, w=None: drawn.append(np.array(w)) or real_next(self, w))
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "4",
                 "--batch-size", "8", "--scale", "tiny", "--eval-max-tokens-per-domain", "64",
                 "--weights", "unimax:0.5"]) == 0
    assert len(drawn) == 4 and all(np.allclose(w, expected, rtol=0, atol=1e-15) for w in drawn)
    mixture = model_record(tmp_path / "run")["mixture"]
    assert mixture["name"] == "unimax0.5"
    assert np.allclose(list(mixture["weights"].values()), expected, rtol=0, atol=1e-15)
    assert np.allclose(DomainBatches(ds, "unimax:0.5", 8, steps=4).weights_at(0), expected,
                       rtol=0, atol=1e-15)
    with pytest.raises(UserError, match="needs the run's token budget"):
        DomainBatches(ds, "unimax", 8)  # endless: no budget to spread
