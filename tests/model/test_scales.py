"""Named scales: DCLM's shapes give DCLM's parameter counts and budgets; recipes resolve."""

import math

import pytest

from mixtune.model.scales import (
    DCLM_VOCAB,
    PUBLISHED,
    SCALES,
    count_params,
    steps_for_budget,
    token_budget,
)
from mixtune.train.config import OptimConfig, train_config
from mixtune.train.optim import lr_at


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_dclm_scales_have_dclms_parameter_counts_and_token_budgets(name):
    pub = PUBLISHED[name]
    total, _ = count_params(name, DCLM_VOCAB)
    assert abs(total / pub.params - 1) < 0.02  # the bound; measured < 2e-5
    assert abs(token_budget(name, DCLM_VOCAB, 1) / pub.tokens - 1) < 0.02
    assert token_budget(name, DCLM_VOCAB, 2) == pytest.approx(2 * token_budget(name, DCLM_VOCAB, 1), rel=1e-9)


# DCLM's training/configs/*.json: lr, wd, warm-up, global batch, z-loss; cool-down to 3e-5.
DCLM_RECIPES = {
    "dclm-411m": (3e-3, 0.033, 2000, 512, 1e-4),
    "dclm-1b": (3e-3, 0.033, 5000, 256, 1e-4),
    "dclm-3b": (3e-3, 0.033, 5000, 256, 1e-4),
    "dclm-7b": (2e-3, 0.05, 5000, 2048, 5e-6),
}


@pytest.mark.parametrize("name", list(DCLM_RECIPES))
def test_dclm_recipes(name):
    lr, wd, warmup, batch, z = DCLM_RECIPES[name]
    o = OptimConfig.for_scale(name)
    assert (o.lr, o.weight_decay, o.warmup_steps, o.z_loss, o.beta2) == (lr, wd, warmup, z, 0.95)
    assert SCALES[name].recipe.batch_size == batch and not SCALES[name].tied
    steps = 10_000
    assert lr_at(warmup - 1, o, steps) == pytest.approx(lr)  # linear warm-up to the peak
    assert lr_at(steps - 1, o, steps) == pytest.approx(3e-5)  # the cool-down's end
    mid = warmup + (steps - 1 - warmup) // 2
    assert lr_at(mid, o, steps) == pytest.approx((lr + 3e-5) / 2, rel=1e-3)  # cosine: half-way


def test_doremi_recipe_is_the_papers():
    o = OptimConfig.for_scale("120M")
    assert (o.lr, o.weight_decay, o.beta2, o.warmup_fraction, o.final_lr_ratio, o.z_loss) == \
        (1e-3, 0.01, 0.99, 0.06, 0.1, 0.0)
    assert lr_at(99, o, 100) == pytest.approx(1e-4) and SCALES["120M"].tied


def test_given_settings_win_over_the_recipe_and_identity_sees_values():
    given = train_config(data="d", out="o", scale="dclm-tiny", lr=1e-3, warmup_fraction=0.1)
    r = given.resolved()
    assert (r.optim.lr, r.optim.warmup_fraction, r.optim.warmup_steps, r.optim.weight_decay) == \
        (1e-3, 0.1, None, 0.033)
    # A value left to the recipe and the same value given are the same run.
    a = train_config(data="d", out="o", steps=5, scale="tiny")
    b = train_config(data="d", out="o", steps=5, scale="tiny", lr=1e-3, batch_size=32, beta2=0.99)
    assert a.identity() == b.identity()
    assert a.identity() != train_config(data="d", out="o", steps=5, scale="dclm-tiny").identity()


def test_steps_follow_the_token_budget():
    cfg = train_config(data="d", out="o", scale="dclm-tiny", chinchilla_multiplier=2)
    r = cfg.resolved(vocab_size=512, seq_len=64)
    total, _ = count_params("dclm-tiny", 512)
    assert r.steps == math.ceil(40 * total / (32 * 64)) == steps_for_budget("dclm-tiny", 512, 2, 32, 64)
    assert train_config(data="d", out="o", steps=7).resolved(512, 64).steps == 7


def test_built_models_have_the_counted_parameters():
    from mixtune.model.build import build_model

    for name in ("tiny", "dclm-tiny"):
        model = build_model(name, 300, 32, 0, seed=0)
        assert sum(p.numel() for p in model.parameters()) == count_params(name, 300)[0]
    assert type(build_model("dclm-tiny", 300, 32, 0, seed=0)).__name__ == "Qwen3ForCausalLM"


@pytest.mark.slow
def test_a_dclm_scale_trains_with_its_recipe(synthetic_dataset, tmp_path):
    import json

    import yaml

    from mixtune.train.loop import run

    out = run(train_config(data=str(synthetic_dataset), out=str(tmp_path / "r"), scale="dclm-tiny",
                           steps=3, batch_size=8, eval_max_tokens_per_domain=64))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["lr"], cfg["weight_decay"], cfg["beta2"], cfg["schedule"], cfg["z_loss"]) == \
        (3e-3, 0.033, 0.95, "cosine", 1e-4)  # config.yaml says what was trained
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    train = [r for r in rows if r["kind"] == "train"]
    # The objective is the mean cross-entropy plus 1e-4 × mean (log Z)²: a little above the mean.
    assert all(0 < r["loss"] - r["mean_loss"] < 1e-4 * 100 for r in train)
    from mixtune.model.build import load_model

    assert type(load_model(out)).__name__ == "Qwen3ForCausalLM"
    record = json.loads((out / "model_record.json").read_text())
    assert record["hyperparameters"]["z_loss"] == 1e-4 and record["hyperparameters"]["scale"] == "dclm-tiny"


def test_scales_says_which_names_are_one_model():
    """120M and 280M are one shape: `mixtune scales` says so, with the vocabularies at which
    their names are their sizes (the reference code's 50k, the paper's 256k)."""
    from mixtune.model.catalog import scales_lines

    lines = scales_lines(8192, 1.0, 2048, 0.4)
    notes = [line for line in lines if "same model" in line]
    assert notes == ["120M and 280M are the same model: 91,245,312 parameters at vocabulary 8,192. "
                     "Their names are their sizes at the vocabularies they were published with: "
                     "124M at 50,277 (120M), 282M at 256,000 (280M)."]
    assert lines.index(notes[0]) == 1 + len(SCALES)  # under the shapes table
    assert count_params("120M", 50_277)[0] == pytest.approx(124e6, rel=0.005)
    assert count_params("280M", 256_000)[0] == pytest.approx(282e6, rel=0.005)


def test_load_model_draws_no_progress_bar_and_leaves_the_setting_as_it_was(tmp_path, capfd):
    """The Python API's load_model: no "Loading weights" bar per load in a user's loop, and
    transformers' own switch as the caller had it afterwards."""
    from transformers.utils import logging as hf_logging

    from mixtune.model.build import build_model, load_model

    build_model("tiny", 64, 16, 0, seed=0).save_pretrained(tmp_path)
    capfd.readouterr()
    hf_logging.enable_progress_bar()
    load_model(tmp_path)
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
