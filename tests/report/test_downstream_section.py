"""The report's downstream section shows a suite's accuracy only where some mixture is above
chance beyond its seed spread; at chance it says why the score is left out."""

from mixtune.records import DownstreamResult, EvalResult, TaskResult
from mixtune.report.collect import MainRun
from mixtune.report.downstream import above_chance, section


def result(core: float, bpb: float) -> DownstreamResult:
    task = TaskResult("hellaswag", "hellaswag", "mc", 0, 50, acc=0.26, acc_centered=core, bpb=bpb)
    return DownstreamResult({"hellaswag": task}, {"core": {"name": "CORE (1/22)", "value": core}})


def runs(cores: dict[str, list[float]]) -> dict[str, list[MainRun]]:
    final = EvalResult.from_sums(["a"], [1.0], [1.0])
    return {name: [MainRun(f"seed-{i}", f"main/{name}/seed-{i}", final=final,
                           downstream=result(c, 1.0 + c)) for i, c in enumerate(values)]
            for name, values in cores.items()}


def test_a_suite_at_chance_is_left_out_with_the_reason():
    noise = runs({"natural": [0.01, -0.01], "uniform": [0.005, -0.008]})
    assert not above_chance({n: [r.downstream for r in rs] for n, rs in noise.items()}, "core")
    md = "\n".join(section(noise, ["natural", "uniform"], False))
    assert "| mixture | mean gold bpb |" in md and "CORE (1/22) |" not in md
    assert "Left out: CORE (1/22), a centred accuracy (0 is chance)" in md


def test_a_suite_above_chance_beyond_its_spread_is_shown():
    real = runs({"natural": [0.20, 0.22], "uniform": [0.01, 0.03]})
    assert above_chance({n: [r.downstream for r in rs] for n, rs in real.items()}, "core")
    md = "\n".join(section(real, ["natural", "uniform"], False))
    assert "| mixture | mean gold bpb | CORE (1/22) |" in md and "Left out" not in md


def test_one_seed_is_never_above_chance_beyond_a_spread():
    one = runs({"natural": [0.5]})
    assert not above_chance({n: [r.downstream for r in rs] for n, rs in one.items()}, "core")
