"""The examples work from a clone: the local corpus is made and prepares; the Python API loop and the\nTrainer script give the CLI's DoReMi weights."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mixtune.data.prepare import PrepareOptions, prepare
from mixtune.data.store import open_dataset
from tests.conftest import PROXY

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_local_corpus_is_made_and_prepared(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_corpus.py"), str(tmp_path / "corpus"), "--max-mb", "0.05"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ds = open_dataset(prepare(PrepareOptions(
        sources=[str(tmp_path / "corpus")], out=str(tmp_path / "data"), vocab_size=400, seq_len=32)))
    # Licences live under /usr/share/common-licenses or in packages' dist-info: always some here.
    assert {"python_code", "c_headers", "package_docs", "licenses"} <= set(ds.domains)
    assert all(n > 32 for n in ds.counts("train").values())


def _weights(path):
    obj = json.loads(Path(path).read_text())
    return np.array(list(obj.get("train_domain_weights", obj).values()))


def _example(script, *args, torchrun=False):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"] if torchrun \
        else [sys.executable]
    settings = ["--steps", str(PROXY["steps"]), "--batch-size", str(PROXY["batch_size"]),
                "--grad-accum", str(PROXY["grad_accum"]), "--seed", str(PROXY["seed"])]
    proc = subprocess.run([*launcher, str(EXAMPLES / script), *map(str, args), *settings],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_api_loop_gives_the_cli_weights(synthetic_dataset, cli_proxy, tmp_path):
    ref, proxy = cli_proxy
    _example("api_loop.py", synthetic_dataset, ref, tmp_path)
    assert np.allclose(_weights(tmp_path / "domain_weights.json"),
                       _weights(proxy / "domain_weights.json"), rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("torchrun", [False, True], ids=["one-process", "torchrun-2"])
def test_trainer_example_gives_the_cli_weights(synthetic_dataset, cli_proxy, tmp_path, torchrun):
    ref, proxy = cli_proxy
    _example("hf_trainer.py", synthetic_dataset, ref, tmp_path, torchrun=torchrun)
    # Two processes all-reduce the excess sums and gradients: equal up to summation order.
    assert np.allclose(_weights(tmp_path / "domain_weights.json"),
                       _weights(proxy / "domain_weights.json"), rtol=0, atol=1e-6)


@pytest.mark.slow
def test_aioli_loop_gives_the_cli_weights(synthetic_dataset, tmp_path):
    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    aioli = dict(method="aioli", round_steps=8, sweep_steps=1, sweep_share=0.5, heldout_tokens=64)
    cli = run(train_config(data=str(synthetic_dataset), out=str(tmp_path / "cli"), scale="tiny",
                           eval_max_tokens_per_domain=256, **PROXY, **aioli))
    _example("aioli_loop.py", synthetic_dataset, tmp_path)
    mine = _weights(tmp_path / "domain_weights.json")
    assert np.allclose(mine, _weights(cli / "domain_weights.json"), rtol=0, atol=1e-6)
    assert not np.allclose(mine, 0.2)  # its rounds moved the mixture
