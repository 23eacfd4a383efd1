"""A new offline mixture method, added from this file alone: registering it is all it takes for
`mixtune run` to check its options (`test-loss-share:`), plan its stage, train main models on its
proposal, keep its record in summary.json under its name, and put its section in the report.

The method: one proxy on the uniform mixture, then each domain weighted by the proxy's validation
log-ppl to the power `power` (a toy: more data where the loss is high).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml

from mixtune.errors import UserError
from mixtune.mixing import METHODS
from mixtune.mixing.base import OfflineMethod, Proposal
from mixtune.mixing.static import StaticConfig
from mixtune.pipeline.config import load_run_config
from mixtune.pipeline.names import check_plan, stage_names
from mixtune.schema import positive, setting
from mixtune.tables import fmt, md_table


@dataclass
class LossShareConfig:
    power: float = setting(1.0, check=positive)
    """Weights ∝ the proxy's per-domain validation log-ppl to this power."""


@METHODS.register
class LossShare(OfflineMethod):
    method = "test-loss-share"
    Config = LossShareConfig

    def stage_names(self, cfg):
        return ["loss-share/proxy"]

    def propose(self, ctx):
        folder = yield ctx.train_stage("loss-share/proxy", StaticConfig(weights="uniform"),
                                       ctx.cfg.proxy)
        losses = json.loads((folder / "eval.json").read_text())["log_ppl"]
        w = np.array([losses[d] ** self.opts.power for d in ctx.domains])
        return Proposal(w / w.sum(), ["loss-share/proxy"], summary={"losses": losses})

    @classmethod
    def report_section(cls, record, output, report_dir):
        rows = [[d, fmt(v)] for d, v in record.get("losses", {}).items()]
        return ["## Loss share", "", *md_table(["domain", "proxy log-ppl"], rows, "lr"), ""]


def run_yaml(tmp_path: Path, **over) -> Path:
    cfg = {
        "output": str(tmp_path / "out"),
        "data": {"synthetic": {"train_tokens": 12_000, "validation_tokens": 1_000, "doc_len": 64,
                               "seq_len": 32}},
        "proxy": {"scale": "tiny", "steps": 4, "batch_size": 8},
        "main": {"scale": "tiny", "steps": 6, "batch_size": 8, "eval_every": 3},
        "mixtures": ["reference", "test-loss-share"], "seeds": [0],
        "test-loss-share": {"power": 2},
        "train": {"checkpoint_every": 5, "eval_max_tokens_per_domain": 128},
        **over,
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_its_options_and_stages_are_known_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match=r"run.yaml: test-loss-share.power -1: must be positive"):
        load_run_config(run_yaml(tmp_path, **{"test-loss-share": {"power": -1}}))
    cfg = load_run_config(run_yaml(tmp_path))
    assert cfg.options("test-loss-share") == LossShareConfig(power=2.0)
    assert stage_names(cfg) == ["data", "loss-share/proxy", "main/natural/seed-0",
                                "main/test-loss-share/seed-0"]
    check_plan(cfg, ["loss-share"])  # --force names its stage


@pytest.mark.slow
def test_run_trains_main_models_on_its_proposal_and_reports_it(tmp_path):
    from mixtune.pipeline import run_pipeline

    out = run_pipeline(run_yaml(tmp_path))
    summary = json.loads((out / "summary.json").read_text())
    losses = summary["methods"]["test-loss-share"]["losses"]
    expected = {d: losses[d] ** 2 / sum(v ** 2 for v in losses.values()) for d in losses}
    assert summary["mixtures"]["test-loss-share"] == pytest.approx(expected)
    main = out / "main" / "test-loss-share" / "seed-0"
    assert (main / "eval.json").is_file()
    assert json.loads((out / "mixtures" / "test-loss-share.json").read_text()) == \
        pytest.approx(expected)
    report = (out / "report" / "report.md").read_text()
    assert "test-loss-share (offline)" in report
    section = report.split("## Loss share")[1].split("## ")[0]
    assert all(f"| {d} | {fmt(v)} |" in section for d, v in losses.items())
    assert METHODS.get("test-loss-share") is LossShare
