"""Every rule of the typed configs, checked when a config is loaded: a wrong key or value fails
at once with a message naming the key and what is allowed."""

import copy
import subprocess
import sys

import pytest
import yaml

from mixtune import schema
from mixtune.data.config import PrepareOptions
from mixtune.errors import UserError
from mixtune.pipeline.config import load_run_config
from mixtune.pipeline.names import check_plan, stage_names
from mixtune.train.config import TrainConfig, load_train_config, train_config

BASE = {
    "output": "out",
    "data": {"synthetic": {"train_tokens": 1000, "validation_tokens": 100, "doc_len": 16}},
    "proxy": {"scale": "tiny", "steps": 4, "batch_size": 8},
    "main": {"scale": "tiny", "steps": 4, "batch_size": 8, "eval_every": 2},
}


def load(tmp_path, **changes):
    """BASE with `changes` applied at dotted keys (a value None deletes the key)."""
    cfg = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = cfg
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_run_config(path)


RUN_ERRORS = [
    ({"output": None}, r"output: required"),
    ({"data": {}}, r"data: needs exactly one of sources, dataset or synthetic"),
    ({"data__dataset": "."}, r"exactly one of .* \(got dataset, synthetic\)"),
    ({"bogus": 1}, r"unknown key 'bogus'"),
    ({"proxy__scale": "tinny"}, r"proxy.scale 'tinny': unknown scale; use one of tiny"),
    ({"main__steps": 0}, r"main.steps 0: must be at least 1"),
    ({"main__batch_size": "8"}, r"main.batch_size '8': not an integer"),
    ({"main__eval_every": -1}, r"main.eval_every -1: must be at least 0"),
    ({"mixtures": ["reference", "unifrom"]}, r"mixtures\[1\] 'unifrom': .*did you mean 'uniform'"),
    ({"mixtures": []}, r"mixtures \[\]: must not be empty"),
    ({"mixtures": ["temperature:0"]}, r"T must be a positive number"),
    ({"mixtures": ["missing.json"]}, r"no such weights file"),
    ({"reference_weights": "natrual"}, r"reference_weights 'natrual': not understood"),
    ({"seeds": []}, r"seeds \[\]: must not be empty"),
    ({"seeds": [0, "1"]}, r"seeds\[1\] '1': not an integer"),
    ({"seeds": [0, -1]}, r"seeds \[0, -1\]: must be at least 0"),
    ({"doremi": {"rounds": 0}}, r"doremi.rounds 0: must be at least 1"),
    ({"doremi": {"rounds": {"max": 3}}}, r"doremi.rounds.until: required"),
    ({"doremi": {"rounds": {"until": 0.1, "mx": 3}}}, r"unknown key 'mx' \(did you mean 'max'\?\)"),
    ({"doremi": {"rounds": True}}, r"doremi.rounds True: not an integer or a mapping"),
    ({"rounds": 2}, r"rounds: an option of the doremi method now; write it as doremi: \{rounds: N\}"),
    ({"doremi": {"etta": 2}}, r"doremi: unknown key 'etta' \(did you mean 'eta'\?\); known keys: "
                              r"proxy_sampling, eta,"),  # not reference, which is refused
    ({"doremi": {"eta": 0}}, r"doremi.eta 0: must be positive"),
    ({"doremi": {"smoothing": 1}}, r"doremi.smoothing 1: must be in \[0, 1\)"),
    ({"doremi": {"loss_normalization": "tokens"}}, r"use one of domain, token \(did you mean 'token'\?\)"),
    ({"doremi": {"proxy_sampling": "unform"}}, r"doremi.proxy_sampling 'unform': not understood"),
    ({"doremi": {"reference": "r"}}, r"doremi.reference: not set here"),
    ({"train": {"lr": -1}}, r"train.lr -1: must be positive"),
    ({"train": {"steps": 5}}, r"train.steps: not set here; set it per model in proxy: and main:"),
    ({"train": {"weights": "uniform"}}, r"train.weights: not set here; set the mixtures"),
    ({"train": {"checkpoint_evry": 5}}, r"did you mean 'checkpoint_every'"),
    ({"train": {"precision": "fp16"}}, r"train.precision 'fp16': not allowed; use one of auto, fp32, bf16"),
    ({"train": {"device": "gpu"}}, r"train.device 'gpu': use auto, cpu, cuda or cuda:N"),
    ({"train": {"report_to": "mlflow"}}, r"use one of none, tensorboard, wandb"),
    ({"nproc": 0}, r"nproc 0: must be at least 1"),
    ({"data__synthetic__domains": [{"name": "a", "kind": "markov", "params": {"branching": 999}}]},
     r"data.synthetic: domain a: branching must be an integer in \[1, 256\]"),
    ({"data__synthetic__domains": [{"name": "a", "kind": "marcov"}]},
     r"data.synthetic.domains\[0\].kind 'marcov': not allowed"),
    ({"data__synthetic__domains": [{"name": "a", "kind": "noise", "params": {"period": 3}}]},
     r"noise takes params \[\], not \['period'\]"),
    ({"data__synthetic__train_tokens": {"zzz": 5}}, r"token counts name \['zzz'\]"),
    ({"data__synthetic__vocabb": 5}, r"data.synthetic: unknown key 'vocabb'"),
    ({"data": {"sources": ["nowhere"]}}, r"data.sources\[0\] '.*nowhere': no such file or folder"),
    ({"data": {"dataset": "nowhere"}}, r"data.dataset '.*nowhere': not a prepared dataset"),
    ({"data": {"sources": ["."], "prepare": {"sources": ["t"]}}}, r"data.prepare.sources: not set here"),
    ({"data": {"sources": ["."], "prepare": {"validation_fraction": 1.5}}},
     r"data.prepare.validation_fraction 1.5: must be in \(0, 1\)"),
    ({"data": {"sources": ["."], "prepare": {"vocab_size": 100}}}, r"vocab_size 100: a byte-level BPE"),
]


@pytest.mark.parametrize("changes, message", RUN_ERRORS, ids=lambda x: str(x)[:40])
def test_run_config_errors_name_the_key(tmp_path, changes, message):
    with pytest.raises(UserError, match=message) as e:
        load(tmp_path, **changes)
    assert str(tmp_path / "run.yaml") in str(e.value)  # every message names the file


def test_valid_run_config_and_its_defaults(tmp_path):
    cfg = load(tmp_path, doremi={"rounds": {"until": 0.01, "max": 3}}, train={"lr": 0.003, "seed": 7})
    doremi = cfg.options("doremi")
    assert doremi.max_rounds == 3 and doremi.tolerance == 0.01
    assert cfg.train.optim.lr == 0.003 and cfg.train.seed == 7 and cfg.train.eval.every == 0
    assert doremi.eta == 1.0 and doremi.proxy_sampling == "uniform"
    assert cfg.output == str(tmp_path / "out")  # relative to the file
    assert cfg.mixtures == ["reference", "uniform", "doremi"]


def test_a_method_section_the_run_does_not_train_is_warned_about(tmp_path, caplog):
    load(tmp_path, mixtures=["reference", "uniform"], regmix={"proxies": 8})
    assert "regmix: options of a method the run does not train (it is not in mixtures: " \
           "reference, uniform); they are unused" in caplog.text
    caplog.clear()
    load(tmp_path, mixtures=["reference", "regmix"], regmix={"proxies": 8})
    assert "unused" not in caplog.text


def test_force_and_mixture_names_are_checked_before_anything_runs(tmp_path):
    cfg = load(tmp_path, doremi={"rounds": 2}, seeds=[0, 1])
    assert stage_names(cfg) == [
        "data",
        "round-1/reference", "round-1/proxy", "round-2/reference", "round-2/proxy",
        "main/natural/seed-0", "main/natural/seed-1", "main/uniform/seed-0", "main/uniform/seed-1",
        "main/doremi/seed-0", "main/doremi/seed-1", "main/doremi-round1/seed-0",
        "main/doremi-round1/seed-1",
    ]
    for ok in ("main", "proxy", "round-2", "uniform", "seed-1", "data", "main/doremi/seed-0"):
        check_plan(cfg, [ok])
    with pytest.raises(UserError, match=r"--force prox: matches no stage of this run; its stages"):
        check_plan(cfg, ["prox"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in "ab":
        (tmp_path / d / "w.json").write_text('{"x": 1}')
    cfg = load(tmp_path, mixtures=[str(tmp_path / "a" / "w.json"), str(tmp_path / "b" / "w.json")])
    with pytest.raises(UserError, match=r"would both be named 'w'"):
        check_plan(cfg, [])


TRAIN_ERRORS = [
    ({"steps": 0}, "steps 0: must be at least 1"),
    ({"batch_size": 0}, "batch_size 0: must be at least 1"),
    ({"seq_len": 0}, "seq_len 0: must be at least 1"),
    ({"grad_accum": 0}, "grad_accum 0: must be at least 1"),
    ({"seed": -1}, "seed -1: must be at least 0"),
    ({"final_lr_ratio": 0}, r"final_lr_ratio 0: must be in \(0, 1\]"),
    ({"warmup_fraction": 1}, r"warmup_fraction 1: must be in \[0, 1\)"),
    ({"weight_decay": -0.1}, "weight_decay -0.1: must be at least 0"),
    ({"beta1": 1}, r"beta1 1: must be in \[0, 1\)"),
    ({"beta2": -0.5}, r"beta2 -0.5: must be in \[0, 1\)"),
    ({"grad_clip": 0}, "grad_clip 0: must be positive"),
    ({"eval_max_tokens_per_domain": -1}, "eval_max_tokens_per_domain -1: must be at least 0"),
    ({"eval_batch_size": 0}, "eval_batch_size 0: must be at least 1"),
    ({"checkpoint_every": 0}, "checkpoint_every 0: must be at least 1"),
    ({"keep_checkpoints": 0}, "keep_checkpoints 0: must be at least 1"),
    ({"progress_every": 0}, "progress_every 0: must be positive"),
    ({"peak_tflops": 0}, "peak_tflops 0: must be positive"),
    ({"weights": "bogus"}, "weights 'bogus': not understood"),
    ({"method": "dormi"}, r"method 'dormi': not a mixture method; use one of static, doremi"),
    ({"method": "doremi"}, "reference: required"),
    ({"method": "doremi", "reference": "r", "weights": "natural"}, "unknown key 'weights'"),
    ({"lr": "fast"}, "lr 'fast': not a number"),
    ({"grad_accum": 1.5}, "grad_accum 1.5: not an integer"),
    ({"seq_len": True}, "seq_len True: not an integer or null"),
]


@pytest.mark.parametrize("changes, message", TRAIN_ERRORS, ids=lambda x: str(x)[:30])
def test_train_config_errors(changes, message):
    with pytest.raises(UserError, match=message):
        train_config(data="d", out="o", **{"steps": 5, **changes})


def test_report_to_needs_its_package(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n: None if n == "wandb" else real(n))
    with pytest.raises(UserError, match=r"pip install 'mixtune\[wandb\]'"):
        train_config(data="d", out="o", steps=5, report_to="wandb")


def test_flat_form_round_trips_and_identity_skips_cadence():
    cfg = train_config(data="d", out="o", steps=5, method="doremi", reference="r", eta=0.5,
                       eval_every=3, checkpoint_every=7, keep_checkpoints=4)
    assert cfg.mixing.eta == 0.5 and cfg.eval.every == 3 and cfg.checkpoint.keep == 4
    assert schema.parse(TrainConfig, schema.to_flat(cfg)) == cfg
    ident = cfg.identity()
    assert ident["method"] == "doremi" and ident["eta"] == 0.5 and ident["eval_every"] == 3
    for cadence in ("out", "checkpoint_every", "keep_checkpoints", "device", "report_to",
                    "progress_every", "peak_tflops", "eval_batch_size"):
        assert cadence not in ident
    assert schema.replace(cfg, steps=9).steps == 9


def test_config_yaml_of_an_older_mixtune_is_refused_with_what_to_do(tmp_path):
    """mixtune 0.1 wrote no `method` (and DoReMi's keys on every run): its run folders are not
    resumed but refused, naming the folder to delete."""
    old = {"data": "d", "out": "o", "weights": "natural", "scale": "tiny", "steps": 6,
           "reference": None, "eta": 1.0, "smoothing": 0.001, "loss_normalization": "domain"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    with pytest.raises(UserError, match=r"config.yaml: written by an older mixtune \(no `method` "
                       rf"key\); delete {tmp_path} to train that run again"):
        load_train_config(tmp_path / "config.yaml")


def test_prepare_options_checked_when_built_in_python(tmp_path):
    from mixtune.data.prepare import prepare

    with pytest.raises(UserError, match=r"--seq-len 0: must be at least 1"):
        prepare(PrepareOptions(out=str(tmp_path / "o"), sources=[str(tmp_path)], seq_len=0))


def test_loading_a_config_does_not_import_torch(tmp_path):
    """What makes a typo fail in milliseconds: checking never imports torch (seconds)."""
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(BASE))
    code = (
        "import sys; from mixtune.pipeline.config import load_run_config; "
        "from mixtune.pipeline.names import check_plan; "
        f"check_plan(load_run_config({str(path)!r}), ['main']); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# Literal defaults that may appear in several classes: not tuned values but where a thing starts.
SAME_BY_NATURE = {
    ("seed", "0"): "every seeded thing starts at seed 0",
    ("split", "'validation'"): "the split a score is on, by name",
    ("prefix", "''"): "no text",
    ("description", "''"): "no text",
}


def test_each_default_is_written_once():
    """A default given as a literal in two classes drifts apart (DoReMi's η once stood in four
    places): such a value is written once, as a named constant or in a shared base class."""
    import ast
    from collections import defaultdict
    from pathlib import Path

    def literal(node: ast.AnnAssign) -> str | None:
        v = node.value
        if isinstance(v, ast.Call) and getattr(v.func, "id", "") == "setting" and v.args:
            v = v.args[0]
        # None and False are "unset" and "off", the natural defaults of options and switches.
        unset = isinstance(v, ast.Constant) and (v.value is None or v.value is False)
        return repr(v.value) if isinstance(v, ast.Constant) and not unset else None

    where = defaultdict(list)
    for path in sorted(Path(__file__).parents[1].joinpath("mixtune").rglob("*.py")):
        for cls in (n for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.ClassDef)):
            for node in cls.body:
                if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    value = literal(node)
                    if value is not None:
                        where[(node.target.id, value)].append(f"{path.name}:{cls.name}")
    twice = {k: v for k, v in where.items() if len(v) > 1 and k not in SAME_BY_NATURE}
    assert twice == {}
