import json

import numpy as np
import pytest

from mixtune.data.weights import mixture_name, resolve_weights, spec_problem
from mixtune.errors import UserError

DOMAINS = ["a", "b", "c"]
TOKENS = {"a": 100, "b": 300, "c": 600}


def test_natural_uniform_temperature():
    assert np.allclose(resolve_weights("natural", DOMAINS, TOKENS), [0.1, 0.3, 0.6])
    assert np.allclose(resolve_weights("uniform", DOMAINS, TOKENS), [1 / 3] * 3)
    t2 = np.sqrt([100, 300, 600])
    assert np.allclose(resolve_weights("temperature:2", DOMAINS, TOKENS), t2 / t2.sum())
    assert np.allclose(resolve_weights("temperature:1", DOMAINS, TOKENS), [0.1, 0.3, 0.6])


def test_json_file_any_order_unnormalised_missing_excluded(tmp_path, caplog):
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"c": 2, "a": 6}))
    assert np.allclose(resolve_weights(str(f), DOMAINS, TOKENS), [0.75, 0.0, 0.25])
    assert "leaves out domain(s) b: they get weight 0" in caplog.text  # said, not silent
    caplog.clear()
    resolve_weights(str(f), DOMAINS, TOKENS)  # a run reads its weights twice: said once
    assert "leaves out" not in caplog.text


def test_doremi_layout_is_read(tmp_path):
    f = tmp_path / "domain_weights.json"
    f.write_text(
        json.dumps({"train_domain_weights": {"a": 1, "b": 1, "c": 2}, "eval_domain_weights": {}})
    )
    assert np.allclose(resolve_weights(str(f), DOMAINS, TOKENS), [0.25, 0.25, 0.5])


@pytest.mark.parametrize(
    "content, message",
    [
        ({"a": 1, "zzz": 1}, "unknown domain"),
        ({"a": -1, "b": 1}, "'a' is -1"),
        ({"a": float("nan")}, "'a' is nan"),
        ({"a": 0, "b": 0}, "all weights are zero"),
        ({"a": "1"}, "finite numbers"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_weights_files(tmp_path, content, message):
    f = tmp_path / "w.json"
    f.write_text(json.dumps(content))
    with pytest.raises(UserError, match=message) as e:
        resolve_weights(str(f), DOMAINS, TOKENS)
    if message != "expected a JSON object":
        assert str(f) in str(e.value)


@pytest.mark.parametrize(
    "spec", ["temperature:0", "temperature:x", "temperature:-1", "bogus", "missing.json"]
)
def test_bad_specs(spec):
    with pytest.raises(UserError):
        resolve_weights(spec, DOMAINS, TOKENS)


def test_unimax_specs():
    # Budget 1200, E = 4: a takes min(400, 400) = 400, b min(400, 1200) = 400, c the 400 left.
    assert np.allclose(resolve_weights("unimax", DOMAINS, TOKENS, 1200), [1 / 3] * 3)
    # E = 2: a takes min(600, 200) = 200, b min(500, 600) = 500, c the 500 left.
    w = resolve_weights("unimax:2", DOMAINS, TOKENS, budget_tokens=1200)
    assert np.allclose(w, np.array([200, 500, 500]) / 1200)
    assert spec_problem("unimax") is None and spec_problem(" unimax:2.5 ") is None
    assert mixture_name("unimax:2") == "unimax2"


@pytest.mark.parametrize("spec", ["unimax:x", "unimax:0", "unimax:-1", "unimax:inf", "unimax:"])
def test_bad_unimax_specs(spec):
    assert "E must be a positive number" in spec_problem(spec)
    with pytest.raises(UserError, match="E must be a positive number"):
        resolve_weights(spec, DOMAINS, TOKENS, 1200)


def test_unimax_without_the_runs_budget_is_refused():
    with pytest.raises(UserError, match=r"weights 'unimax': needs the run's token budget"):
        resolve_weights("unimax", DOMAINS, TOKENS)


def test_invalid_json(tmp_path):
    f = tmp_path / "w.json"
    f.write_text("{nope")
    with pytest.raises(UserError, match="not valid JSON"):
        resolve_weights(str(f), DOMAINS, TOKENS)


@pytest.mark.parametrize("layout", ["flat", "doremi"])
def test_write_then_read_weights_in_both_layouts(tmp_path, layout):
    from mixtune.data.weights import read_weights, write_weights

    w = np.array([0.2, 0.5, 0.3])
    path = write_weights(tmp_path / "w.json", w, DOMAINS, layout=layout)
    obj = json.loads(path.read_text())
    assert ("train_domain_weights" in obj) == (layout == "doremi")
    assert np.allclose(read_weights(path, DOMAINS), w)
    assert np.allclose(resolve_weights(str(path), DOMAINS, TOKENS), w)  # what --weights takes
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temp file left


def test_the_api_writes_the_layout_a_proxy_run_writes(tmp_path):
    """One default for `mixtune.write_weights`, `mixtune doremi`'s domain_weights.json and the
    Trainer's: the reference code's layout, which its tools read; `flat` on request."""
    import mixtune as mt

    path = mt.write_weights(tmp_path / "domain_weights.json", np.array([0.2, 0.5, 0.3]), DOMAINS)
    expected = {"a": 0.2, "b": 0.5, "c": 0.3}
    assert json.loads(path.read_text()) == {"train_domain_weights": expected,
                                            "eval_domain_weights": expected}
    flat = mt.write_weights(tmp_path / "flat.json", expected, layout="flat")
    assert json.loads(flat.read_text()) == expected
    with pytest.raises(ValueError, match="unknown weights layout 'mixtune'; use one of doremi, flat"):
        mt.write_weights(tmp_path / "x.json", expected, layout="mixtune")
    assert not (tmp_path / "x.json").exists()


def test_the_cli_writes_either_layout(synthetic_dataset, tmp_path):
    """A proposal's domain_weights.json: the reference code's layout, or flat on request."""
    import json

    from mixtune.cli import main

    ref = tmp_path / "ref"
    common = ["--data", str(synthetic_dataset), "--steps", "2", "--batch-size", "8",
              "--eval-max-tokens-per-domain", "64"]
    assert main(["train", *common, "--out", str(ref)]) == 0
    for layout in ("doremi", "flat"):
        out = tmp_path / layout
        assert main(["doremi", *common, "--reference", str(ref), "--out", str(out),
                     "--weights-layout", layout]) == 0
        saved = json.loads((out / "domain_weights.json").read_text())
        assert ("train_domain_weights" in saved) == (layout == "doremi")
