"""A new online mixture method, added from this file alone: registering it is all it takes for
the training loop (unchanged) to train with it, checkpoint it and resume it exactly, and for
`mixtune run` to train main models with it beside the fixed mixtures (`mixtures: [...,
test-schedule]`, its options in a `test-schedule:` section), with the report showing them.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
import yaml

from mixtune.data.store import open_dataset
from mixtune.errors import UserError
from mixtune.mixing import MIXERS
from mixtune.mixing.base import MixerContext, OnlineMixer
from mixtune.pipeline.config import load_run_config
from mixtune.schema import at_least, setting
from mixtune.train.config import train_config

REPO = Path(__file__).parents[2]


@MIXERS.register
@dataclass
class ScheduleConfig:
    """Every step samples one domain only, the domains in turn; counts the tokens it has seen."""

    method: ClassVar[str] = "test-schedule"
    every: int = setting(1, check=at_least(1))
    """Steps per domain."""

    def build(self, ctx: MixerContext) -> "Schedule":
        return Schedule(len(ctx.dataset.domains), self.every)


class Schedule(OnlineMixer):
    def __init__(self, k: int, every: int):
        self.k, self.every, self.seen = k, every, np.zeros(k)

    def sampling_weights(self, step):
        w = np.zeros(self.k)
        w[(step // self.every) % self.k] = 1.0
        return w

    def loss_factors(self, scores, token_counts):
        return torch.full_like(token_counts, 1.0 / float(token_counts.sum()))

    def observe(self, loss_sums, token_counts):
        self.seen = self.seen + token_counts

    def metrics(self):
        return {"domain_seen": self.seen}

    def state_dict(self):
        return {"seen": self.seen.tolist()}

    def load_state_dict(self, state):
        self.seen = np.array(state["seen"])


def rows(run_dir):
    return [r for r in map(json.loads, open(run_dir / "metrics.jsonl")) if r["kind"] == "train"]


# -- in one training run: trained, killed, resumed ---------------------------------------------

SCRIPT = """
import sys, json
sys.path.insert(0, {repo!r})
import tests.mixing.test_plugin_online  # registers test-schedule
from mixtune.train.config import train_config
from mixtune.train.loop import run
run(train_config(**json.loads({kw!r})))
"""


def schedule_run(data, out, steps):
    return dict(data=str(data), out=str(out), method="test-schedule", every=2, steps=steps,
                batch_size=8, checkpoint_every=10, eval_max_tokens_per_domain=64, seed=1)


@pytest.mark.slow
def test_a_new_method_trains_and_resumes_exactly_after_a_kill(synthetic_dataset, tmp_path):
    from mixtune.train.loop import run

    whole = run(train_config(**schedule_run(synthetic_dataset, tmp_path / "whole", 300)))
    domains = open_dataset(synthetic_dataset).domains
    for r in rows(whole):  # every sequence of step s came from domain (s // 2) mod k
        assert r["domain_sequences"][domains[((r["step"] - 1) // 2) % 5]] == 8
    assert sum(rows(whole)[-1]["domain_seen"].values()) == 300 * 8 * 32

    kw = json.dumps(schedule_run(synthetic_dataset, tmp_path / "killed", 300))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT.format(repo=str(REPO), kw=kw)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    checkpoints = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 120
    while not (checkpoints.is_dir() and any(checkpoints.glob("step-*"))):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "final").exists()
    resumed = run(train_config(**json.loads(kw)))
    assert [r["loss"] for r in rows(resumed)] == [r["loss"] for r in rows(whole)]
    assert rows(resumed)[-1]["domain_seen"] == rows(whole)[-1]["domain_seen"]
    shutil.rmtree(tmp_path / "killed")


def test_train_command_takes_the_method_and_only_its_options(synthetic_dataset, tmp_path):
    from mixtune.cli import main

    out = tmp_path / "cli"
    assert main(["train", "--data", str(synthetic_dataset), "--out", str(out), "--method",
                 "test-schedule", "--every", "3", "--steps", "6", "--batch-size", "8",
                 "--eval-max-tokens-per-domain", "64"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["every"] == 3
    assert main(["train", "--data", str(synthetic_dataset), "--out", str(tmp_path / "x"),
                 "--method", "test-schedule", "--eta", "2"]) == 2  # DoReMi's option


# -- in `mixtune run`: main models trained by the online method --------------------------------


def run_yaml(tmp_path: Path, **over) -> Path:
    cfg = {
        "output": str(tmp_path / "out"),
        "data": {"synthetic": {"train_tokens": 12_000, "validation_tokens": 1_000, "doc_len": 64,
                               "seq_len": 32}},
        "main": {"scale": "tiny", "steps": 10, "batch_size": 8, "eval_every": 5},
        "mixtures": ["reference", "test-schedule"],
        "test-schedule": {"every": 2},
        "seeds": [0, 1],
        "train": {"checkpoint_every": 5, "eval_max_tokens_per_domain": 128},
        **over,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_its_options_are_checked_when_the_run_yaml_is_loaded(tmp_path):
    with pytest.raises(UserError, match=r"run.yaml: test-schedule.every 0: must be at least 1"):
        load_run_config(run_yaml(tmp_path, **{"test-schedule": {"every": 0}}))
    with pytest.raises(UserError, match=r"test-schedule: unknown key 'evry' \(did you mean 'every'"):
        load_run_config(run_yaml(tmp_path, **{"test-schedule": {"evry": 2}}))
    assert load_run_config(run_yaml(tmp_path)).options("test-schedule") == ScheduleConfig(every=2)
    path = run_yaml(tmp_path)  # named in mixtures without a section: its defaults
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.startswith(("test-schedule:", "  every:"))))
    assert load_run_config(path).options("test-schedule") == ScheduleConfig(every=1)


@pytest.mark.slow
def test_run_trains_main_models_with_the_online_method(tmp_path):
    from mixtune.pipeline import run_pipeline

    out = run_pipeline(run_yaml(tmp_path))
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["methods"]) == ["test-schedule"]
    assert summary["methods"]["test-schedule"]["online"] is True
    assert summary["main_runs"]["test-schedule"] == {"seed-0": "main/test-schedule/seed-0",
                                                     "seed-1": "main/test-schedule/seed-1"}
    domains = summary["domains"]
    for seed in (0, 1):  # the method's mixer trained them: one domain every 2 steps, in turn
        run = out / "main" / "test-schedule" / f"seed-{seed}"
        assert (run / "eval.json").is_file()
        config = yaml.safe_load((run / "config.yaml").read_text())
        assert config["method"] == "test-schedule" and config["seed"] == seed
        assert config["steps"] == 10 and config["batch_size"] == 8  # the same budget as natural
        for r in rows(run):
            assert r["domain_sequences"][domains[((r["step"] - 1) // 2) % 5]] == 8
    # The report ranks it beside natural, its weights the mixture it trained on: 10 steps of 8
    # sequences, 2 steps per domain = 0.2 each.
    report = (out / "report" / "report.md").read_text()
    assert "test-schedule (online, in the main runs)" in report
    assert "| test-schedule |" in report.split("## Headline")[1].split("## Domain weights")[0]
    weights = report.split("## Domain weights")[1].split("## Training loss")[0]
    assert all(f"| {d} |" in weights for d in domains)
    assert weights.count("0.200") >= 5
