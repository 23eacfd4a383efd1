"""benchmarks/mixture_study.py's pure parts: rank correlation, decision accuracy, the configs and
the tables, on constructed numbers (nothing trains)."""

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from mixtune.regmix import spearman
from mixtune.report.verdict import decide

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "mixture_study.py"
_spec = importlib.util.spec_from_file_location("mixture_study", _PATH)
study = importlib.util.module_from_spec(_spec)
sys.modules["mixture_study"] = study  # before running it: its dataclasses look it up
_spec.loader.exec_module(study)


def test_average_ranks_share_ties():
    assert study.average_ranks([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    assert study.average_ranks([1.0, 2.0, 2.0, 0.5]) == [2.0, 3.5, 3.5, 1.0]
    assert study.average_ranks([5.0, 5.0, 5.0]) == [2.0, 2.0, 2.0]
    assert study.average_ranks([]) == []


def test_rank_correlation():
    a = {"x": 1.0, "y": 2.0, "z": 3.0, "w": 4.0}
    assert study.rank_correlation(a, {"x": 10, "y": 20, "z": 30, "w": 40}) == pytest.approx(1.0)
    assert study.rank_correlation(a, {"x": 4, "y": 3, "z": 2, "w": 1}) == pytest.approx(-1.0)
    # Only the names both have; fewer than 2, or one side constant: undefined.
    assert study.rank_correlation(a, {"x": 1.0, "q": 2.0}) is None
    assert study.rank_correlation(a, dict.fromkeys(a, 1.0)) is None
    # One swap of four: 1 - 6·2/(4·15) = 0.8.
    assert study.rank_correlation(a, {"x": 1, "y": 3, "z": 2, "w": 4}) == pytest.approx(0.8)


def test_rank_correlation_with_ties_is_the_tie_corrected_spearman():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, 7).astype(float)  # many ties
        y = rng.integers(0, 4, 7).astype(float)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        names = [f"m{i}" for i in range(7)]
        got = study.rank_correlation(dict(zip(names, x, strict=True)),
                                     dict(zip(names, y, strict=True)))
        assert got == pytest.approx(spearman(x, y))


def test_decision_accuracy():
    small = {"a": 1.0, "b": 2.0, "c": 3.0}
    assert study.decision_accuracy(small, {"a": 5.0, "b": 6.0, "c": 7.0}) == (1.0, 3, 3)
    # b and c swapped at the large scale: one of three pairs is decided wrongly.
    share, agree, n = study.decision_accuracy(small, {"a": 5.0, "b": 7.0, "c": 6.0})
    assert (agree, n) == (2, 3) and share == pytest.approx(2 / 3)
    # A tie on one side only is a wrong decision; on both sides a right one.
    assert study.decision_accuracy({"a": 1.0, "b": 1.0}, {"a": 1.0, "b": 2.0}) == (0.0, 0, 1)
    assert study.decision_accuracy({"a": 1.0, "b": 1.0}, {"a": 3.0, "b": 3.0}) == (1.0, 1, 1)
    # Names at one scale only are left out; no pair: None.
    assert study.decision_accuracy(small, {"a": 1.0, "z": 0.0}) == (None, 0, 0)
    assert study.decision_accuracy({**small, "d": 0.0}, {"a": 5.0, "b": 6.0, "c": 7.0}) \
        == (1.0, 3, 3)
    # Over given pairs only (those the large scale separates).
    assert study.decision_accuracy(small, {"a": 5.0, "b": 7.0, "c": 6.0}, [("b", "c")]) \
        == (0.0, 0, 1)


def test_decision_accuracy_of_a_reversed_order_is_zero():
    small = {f"m{i}": float(i) for i in range(6)}
    large = {n: -v for n, v in small.items()}
    assert study.decision_accuracy(small, large) == (0.0, 0, 15)
    assert study.rank_correlation(small, large) == pytest.approx(-1.0)


def test_separated_pairs():
    by_seed = {
        "natural": {"seed-0": 1.00, "seed-1": 1.10, "seed-2": 1.05},
        "better": {"seed-0": 0.90, "seed-1": 1.00, "seed-2": 0.96},   # −0.1 ± tiny: separated
        "noisy": {"seed-0": 0.90, "seed-1": 1.20, "seed-2": 1.05},    # ±0.1 around 0: not
        "single": {"seed-0": 0.5},                                     # one seed: never
    }
    pairs = study.separated_pairs(by_seed)
    assert ("natural", "better") in pairs
    assert not any("noisy" in p and "natural" in p for p in pairs)
    assert not any("single" in p for p in pairs)


def test_aioli_options_fit_the_run():
    assert study.aioli_options(600, 5) == {"round_steps": 150, "sweep_steps": 2}
    assert study.aioli_options(300, 6) == {"round_steps": 75, "sweep_steps": 2}
    # Too short for sweeps of 2 steps: sweeps of 1, and a round a sweep + 1 long.
    assert study.aioli_options(24, 5) == {"round_steps": 6, "sweep_steps": 1}
    for steps in (4, 24, 40, 44, 100, 600, 2000):
        for k in (2, 5, 6, 17):
            o = study.aioli_options(steps, k)
            assert o["round_steps"] >= k * o["sweep_steps"] + 1  # Aioli's own rule


def test_swarm_and_proxies():
    assert study.regmix_proxies(5) == 20
    assert study.regmix_proxies(1) == 8
    assert study.proxy_steps(600) == 300 and study.proxy_steps(1) == 1


def test_scale_configs(tmp_path):
    base = study.base_config("generated", 24, 256, 8192)
    assert "eval" not in base and base["main"]["steps"] == 24
    first = study.scale_config(base, "tiny", [0, 1], tmp_path / "tiny", 5)
    assert first["output"] == str((tmp_path / "tiny").resolve())  # not the demo's own
    assert first["mixtures"] == ["reference", "uniform", "unimax", "doremi", "regmix", "aioli"]
    assert first["proxy"]["steps"] == 12 and first["proxy"]["scale"] == "tiny"
    assert first["doremi"]["eta"] == 0.03 and first["regmix"] == {"proxies": 20}
    assert first["main"]["scale"] == "tiny" and first["seeds"] == [0, 1]
    with pytest.raises(SystemExit, match="not written yet"):
        study.scale_config(base, "small", [0], tmp_path / "small", 5, tmp_path / "tiny")
    (tmp_path / "tiny" / "mixtures").mkdir(parents=True)
    for m in ["natural", *study.FIXED]:
        (tmp_path / "tiny" / "mixtures" / f"{m}.json").write_text("{}")
    big = study.scale_config(base, "small", [0], tmp_path / "small", 5, tmp_path / "tiny")
    assert big["reference_weights"].endswith("mixtures/natural.json")
    assert [Path(m).stem for m in big["mixtures"]] == \
        ["reference", "uniform", "unimax", "doremi", "regmix", "aioli"]
    assert big["data"] == {"dataset": str((tmp_path / "tiny" / "data" / "dataset").resolve())}
    assert "proxy" not in big and "doremi" not in big and "regmix" not in big
    assert big["main"]["steps"] == 24 and big["main"]["scale"] == "small"


def _values():
    """{mixture: {seed: {average, worst, bpb}}}: natural, a clear winner, one within noise."""
    def runs(avgs):
        return {f"seed-{i}": {"average": a, "worst": a + 2, "bpb": None}
                for i, a in enumerate(avgs)}

    return {"natural": runs([1.80, 1.82, 1.81]), "uniform": runs([1.70, 1.725, 1.705]),
            "doremi": runs([1.79, 1.83, 1.80]), "aioli": runs([1.75])}


def test_scale_table():
    values = _values()
    verdict = decide(study.by_seed(values), "natural", "average")
    rows = study.scale_table(values, verdict, {"natural": 0.0, "uniform": 0.0, "doremi": 1.1667,
                                               "aioli": 0.0123}, downstream=False)
    header, *body = rows
    assert header[:3] == ["mixture", "average log-ppl", "worst-case log-ppl"]
    assert "gold bpb" not in header and all(len(r) == len(header) for r in body)
    by_name = {r[0]: dict(zip(header, r, strict=True)) for r in body}
    assert body[0][0] == "natural"  # the reference first
    assert by_name["natural"]["average log-ppl"] == "1.8100 ± 0.0100"
    assert by_name["natural"]["vs natural"] == "(reference)"
    assert by_name["natural"]["Δ average vs natural"] == "0"
    assert by_name["uniform"]["vs natural"] == "better, beyond the spread"
    assert by_name["uniform"]["rank"] == "1"
    assert by_name["uniform"]["Δ average vs natural"] == "-0.1000 ± 0.0050"
    assert by_name["doremi"]["vs natural"] == "within noise"
    assert by_name["aioli"]["vs natural"] == "one seed: no verdict"
    assert by_name["aioli"]["90% interval"] == "—" and by_name["aioli"]["seeds"] == "1"
    assert by_name["doremi"]["compute (× main run)"] == "1.17×"
    assert by_name["uniform"]["compute (× main run)"] == "0"
    with_bpb = study.scale_table(values, verdict, {}, downstream=True)
    assert "gold bpb" in with_bpb[0] and with_bpb[1][with_bpb[0].index("gold bpb")] == "—"


def test_across_and_rank_tables():
    tiny = {"natural": 1.8, "uniform": 1.7, "doremi": 1.75, "aioli": 1.72}
    small = {"natural": 1.5, "uniform": 1.45, "doremi": 1.40, "aioli": 1.42, "new": 1.0}
    rows = study.across_table("tiny", tiny, {"small": (small, [("natural", "doremi")])})
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["mixtures"] == "4"  # `new` is not at tiny
    # uniform, aioli and doremi reverse their order; natural stays last: 3 of 6 pairs hold.
    assert row["decision accuracy"] == "50% (3/6)"
    assert row["on pairs it separates"] == "100% (1/1)"
    assert row["best at tiny"] == "uniform" and row["best at it"] == "doremi"
    assert float(row["Spearman ρ with tiny"]) == pytest.approx(
        study.rank_correlation(tiny, small))
    ranks = study.rank_table({"tiny": tiny, "small": small})
    assert ranks[0] == ["mixture", "tiny", "small"]
    assert ranks[1] == ["natural", "1.8000 (4)", "1.5000 (5)"]
    assert ranks[-1] == ["new", "—", "1.0000 (1)"]


def test_compute_multiple_and_format():
    assert study.compute_multiple(10.0, 4.0) == 2.5
    assert study.compute_multiple(None, 4.0) is None and study.compute_multiple(1.0, 0) is None
    assert study.fmt_multiple(0.0) == "0" and study.fmt_multiple(None) == "—"
    assert study.fmt_multiple(10.0) == "10×" and study.fmt_multiple(0.01234) == "0.0123×"


def test_train_seconds(tmp_path):
    lines = ['{"kind": "train", "step": 1, "step_time_s": 0.5}',
             '{"kind": "eval", "step": 1, "log_ppl": {}}',
             '{"kind": "train", "step": 2, "step_time_s": 0.25}',
             '{"kind": "train", "step": 2, "step_time_s": 0.75}',  # resumed: logged again
             '{"kind": "train", "step": 3, "step_', ]                # a torn line
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    assert study.train_seconds(tmp_path) == pytest.approx(1.25)
    assert study.train_seconds(tmp_path / "none") is None
    assert not math.isnan(study.train_seconds(tmp_path))


def test_same_weights_counts_a_mixture_once():
    u = {"a": 0.5, "b": 0.5}
    mixtures = {"natural": {"a": 0.8, "b": 0.2}, "uniform": u, "unimax": dict(u),
                "regmix": {"a": 0.8, "b": 0.2}, "doremi": {"a": 0.6, "b": 0.4}, "aioli": {}}
    assert study.same_weights(mixtures) == {"unimax": "uniform", "regmix": "natural"}
    assert "UniMax" in study.same_note("unimax", "uniform")
    assert "UniMax" not in study.same_note("regmix", "natural")




def test_machines_name_the_scales_they_ran():
    timing = {"tiny": {"machines": ["H200, 16 cores", "CPU, 2 cores"]},
              "small": {"machines": ["H200, 16 cores"]}, "base": {}}
    assert study.machines_text(timing) == ["Ran on H200, 16 cores: tiny, small.",
                                           "Ran on CPU, 2 cores: tiny."]
    assert study.machines_text({"tiny": {"sessions": 1}}) == []  # recorded before machines were
    assert "cores, torch" in study.machine()
