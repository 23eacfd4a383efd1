"""mixtune.report on a hand-made output folder whose expected numbers are known by construction.

Three mixtures, two seeds, two DoReMi rounds, 100 steps, evaluations at 25/50/75/100:

    natural (reference)  final averages 1.0, 1.2 -> 1.1000 ± 0.1414; S_ref = 100, target 1.1
    doremi               final averages 0.9, 1.0 -> 0.9500 ± 0.0707; seed-mean curve 1.4, 1.05, ...
                         reaches 1.1 at step 50 -> 2.0×; beats natural on books and web, ties code
    uniform              seed-1 unfinished (no eval.json); seed-0 average 1.2000, never <= 1.1 -> —
"""

import json
from pathlib import Path

import pytest

from mixtune.report import fmt_ms, main_table, mean_std, moving_average, write_report

DOMAINS = ["books", "code", "web"]
STEPS = 100
EVAL_STEPS = [25, 50, 75, 100]
FLOORS = {"books": 0.7, "code": 0.5, "web": 0.6}

# mixture -> seed -> (final per-domain log-ppl, average log-ppl at each eval step)
RUNS = {
    "natural": {
        "seed-0": ({"books": 1.2, "code": 0.8, "web": 1.0}, [1.6, 1.4, 1.2, 1.0]),
        "seed-1": ({"books": 1.4, "code": 1.0, "web": 1.2}, [1.8, 1.6, 1.4, 1.2]),
    },
    "uniform": {
        "seed-0": ({"books": 1.0, "code": 1.4, "web": 1.2}, [1.8, 1.5, 1.3, 1.2]),
        "seed-1": None,  # started, not finished
    },
    "doremi": {
        "seed-0": ({"books": 1.1, "code": 0.8, "web": 0.8}, [1.3, 1.0, 0.95, 0.9]),
        "seed-1": ({"books": 1.1, "code": 1.0, "web": 0.9}, [1.5, 1.1, 1.05, 1.0]),
    },
}
WEIGHTS = {
    "natural": {"books": 0.5, "code": 0.3, "web": 0.2},
    "uniform": {"books": 1 / 3, "code": 1 / 3, "web": 1 / 3},
    "doremi": {"books": 0.2, "code": 0.3, "web": 0.5},
}


def eval_result(log_ppl: dict) -> dict:
    """What evaluate.summarize() returns, without importing torch."""
    worst = max(log_ppl, key=log_ppl.get)
    return {
        "log_ppl": log_ppl,
        "tokens": dict.fromkeys(log_ppl, 1000),
        "average": sum(log_ppl.values()) / len(log_ppl),
        "worst": log_ppl[worst],
        "worst_domain": worst,
    }


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def write_main_run(folder: Path, spec, offset: float) -> None:
    rows = []
    for step in range(1, STEPS + 1):
        loss = 3.0 - 0.01 * step + offset
        rows.append(
            {
                "kind": "train",
                "step": step,
                "loss": loss,
                "mean_loss": loss,
                "lr": 1e-3,
                "tokens": step * 256,
                "domain_loss": dict.fromkeys(DOMAINS, loss),
            }
        )
        if spec is not None and step in EVAL_STEPS:
            avg = spec[1][EVAL_STEPS.index(step)]
            # Only `average` matters for the curve; per-domain values are the final ones.
            rows.append({"kind": "eval", "step": step, **eval_result(spec[0]), "average": avg})
    if spec is None:
        write_jsonl(folder / "metrics.jsonl", rows[:60])
        return
    write_jsonl(folder / "metrics.jsonl", rows)
    final = {"step": STEPS, "split": "validation", **eval_result(spec[0])}
    (folder / "eval.json").write_text(json.dumps(final))


def make_output(root: Path, floors=FLOORS, runs=RUNS) -> Path:
    for i, (name, seeds) in enumerate(runs.items()):
        for seed, spec in seeds.items():
            write_main_run(root / "main" / name / seed, spec, offset=0.1 * i)
    rounds = []
    for r, linf in ((1, 0.25), (2, 0.03)):
        history = [
            {"step": t, "weights": {"books": 0.4 - t / 1000, "code": 0.3, "web": 0.3 + t / 1000}}
            for t in range(1, 51)
        ]
        write_jsonl(root / f"round-{r}" / "proxy" / "weights_history.jsonl", history)
        rounds.append(
            {
                "round": r,
                "reference_weights": WEIGHTS["natural"],
                "doremi_weights": WEIGHTS["doremi"],
                "linf": linf,
                "reference_run": f"round-{r}/reference",
                "proxy_run": f"round-{r}/proxy",
            }
        )
    summary = {
        "format_version": 2,
        "domains": DOMAINS,
        "reference_mixture": "natural",
        "mixtures": WEIGHTS,
        "methods": {"doremi": {"rounds": rounds}},
        "main_runs": {n: {s: f"main/{n}/{s}" for s in seeds} for n, seeds in RUNS.items()},
        "loss_floor": floors,
        "dataset": "data/syn",
    }
    (root / "summary.json").write_text(json.dumps(summary))
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = make_output(tmp_path_factory.mktemp("run"))
    return out, write_report(out)


def table_row(md: str, mixture: str) -> list[str]:
    """The headline table's cells for `mixture` (the first table, ranked)."""
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 2 and cells[1].split(" (")[0] == mixture:
            return cells
    raise AssertionError(f"{mixture} not in the headline table")


def test_main_table_numbers(report):
    out, _ = report
    summary = json.loads((out / "summary.json").read_text())
    rows = {r["mixture"]: r for r in main_table(summary, out)}
    assert [r["mixture"] for r in main_table(summary, out)] == ["doremi", "natural", "uniform"]
    assert rows["doremi"]["rank"] == 1 and rows["uniform"]["rank"] == 3
    assert rows["natural"]["average"] == pytest.approx(1.1)
    assert rows["natural"]["average_std"] == pytest.approx(0.02**0.5)
    assert rows["doremi"]["speedup"] == pytest.approx(2.0)
    assert rows["doremi"]["speedup_step"] == 50
    assert rows["natural"]["speedup"] == 1.0
    assert rows["uniform"]["speedup"] is None
    assert rows["doremi"]["domains_improved"] == 2  # books, web; code ties (0.9 = 0.9)
    assert rows["uniform"]["domains_improved"] == 1  # books only
    assert rows["uniform"]["seeds"] == 1 and rows["uniform"]["average_std"] is None
    assert rows["uniform"]["missing"][0]["seed"] == "seed-1"


def test_headline_table(report):
    _, path = report
    md = path.read_text()
    lines = md.splitlines()
    order = [next(i for i, s in enumerate(lines) if s.startswith(f"| {k} | ")) for k in (1, 2, 3)]
    assert [table_row(md, m)[0] for m in ("doremi", "natural", "uniform")] == ["1", "2", "3"]
    assert order == sorted(order)
    doremi, natural, uniform = (table_row(md, m) for m in ("doremi", "natural", "uniform"))
    assert doremi[3] == "0.9500 ± 0.0707"
    assert natural[3] == "1.1000 ± 0.1414"
    assert uniform[3] == "1.2000"  # one finished seed: the mean alone
    assert uniform[2] == "1/2"
    assert doremi[4] == "1.1000 ± 0.0000" and doremi[5] == "books"
    assert doremi[6] == "2/3" and uniform[6] == "1/3" and natural[6] == "(reference)"
    assert doremi[7].startswith("2.0×")
    assert natural[7].startswith("1.0×")
    assert uniform[7] == "—"
    # The unfinished run is reported by name and reason.
    assert "uniform seed-1 (`main/uniform/seed-1`): not finished (no eval.json" in md


def test_sections_and_plots(report):
    _, path = report
    md = path.read_text()
    headings = [s for s in md.splitlines() if s.startswith("## ")]
    assert headings == [
        "## Verdict: which mixture to train on",
        "## Headline: the mixtures ranked",
        "## Domain weights",
        "## DoReMi weight trajectory",
        "## Training loss",
        "## Validation log-perplexity",
        "## Leaderboard",
        "## How to read this",
    ]
    for name in (
        "weights.png",
        "trajectory.png",
        "train_loss.png",
        "eval_avg.png",
        "per_domain.png",
    ):
        png = path.parent / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"]({name})" in md
    assert not list(path.parent.glob(".*.tmp"))  # atomic writes leave no temp files
    assert "| books | 0.500 | 0.333 | 0.200 |" not in md  # columns follow the ranking ...
    assert "| books | 0.200 | 0.500 | 0.333 |" in md  # ... doremi, natural, uniform
    assert "round 1: 0.2500, round 2: 0.0300" in md
    assert "moving average over 5 step(s)" in md


def test_floors_shown_when_present(report):
    _, path = report
    md = path.read_text()
    assert "| domain | floor | doremi | natural (reference) | uniform |" in md
    assert "| books | 0.7000 | 1.1000 ± 0.0000 | 1.3000 ± 0.1414 | **1.0000** |" in md
    assert "| *average* | 0.6000 |" in md


def test_no_floor_and_missing_reference(tmp_path):
    runs = {**RUNS, "natural": {"seed-0": None, "seed-1": None}}
    out = make_output(tmp_path, floors=None, runs=runs)
    (out / "round-2" / "proxy" / "weights_history.jsonl").unlink()
    md = write_report(out).read_text()
    assert "floor" not in md.split("## Validation log-perplexity")[1].split("## How")[0]
    assert "No speed-up: the reference mixture natural has no finished main run" in md
    assert table_row(md, "natural")[3] == "—" and table_row(md, "natural")[0] == "—"
    assert table_row(md, "doremi")[7] == "—" and table_row(md, "doremi")[6] == "—"
    assert "Round 2: no weight history" in md
    assert (out / "report" / "trajectory.png").stat().st_size > 0


def test_a_run_before_its_summary_is_reported_as_it_stands(tmp_path):
    """Data prepared, the DoReMi reference finished, the proxy halfway: the report lists the
    stages and how far each got (it refused such a run before: summary.json not found)."""
    import yaml

    from mixtune.errors import UserError

    def stage(name, complete, steps=None, done=0, weights=None):
        folder = tmp_path / name
        folder.mkdir(parents=True)
        (folder / "stage.json").write_text(json.dumps(
            {"stage": name, "config_hash": "h", "config": {}, "complete": complete,
             "run_id": None, "inputs": {}, "format_version": 2}))
        if steps:
            (folder / "config.yaml").write_text(yaml.safe_dump({"steps": steps}))
            write_jsonl(folder / "metrics.jsonl", [{"kind": "train", "step": s, "loss": 1.0}
                                                    for s in range(1, done + 1)])
        if weights:
            write_jsonl(folder / "weights_history.jsonl", [{"step": done, "weights": weights}])

    stage("data", True)
    stage("round-1/reference", True, steps=100, done=100)
    stage("round-1/proxy", False, steps=100, done=40, weights={"code": 0.25, "web": 0.75})
    md = write_report(tmp_path).read_text()
    assert "summary.json` is written once the mixture methods have proposed" in md
    assert "| `data` | complete |  |" in md
    assert "| `round-1/reference` | complete | step 100 of 100 |" in md
    assert "| `round-1/proxy` | started | step 40 of 100; α_t now: code 0.250, web 0.750 |" in md
    with pytest.raises(UserError, match="no stage of a `mixtune run` here"):
        write_report(tmp_path / "round-1" / "proxy" / "nothing")


def test_empty_output_does_not_crash(tmp_path):
    """summary.json written, no run finished yet: every entry says so, no plots of nothing."""
    summary = {
        "format_version": 2,
        "domains": DOMAINS,
        "reference_mixture": "natural",
        "mixtures": WEIGHTS,
        "methods": {"doremi": {"rounds": [{"round": 1, "linf": 0.1, "proxy_run": "round-1/proxy"}]}},
        "main_runs": {"natural": {"seed-0": "main/natural/seed-0"}},
        "loss_floor": None,
        "dataset": "x",
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    md = write_report(tmp_path).read_text()
    assert "natural seed-0 (`main/natural/seed-0`): run folder not found" in md
    assert "uniform: no main runs listed in summary.json" in md
    assert "No finished main run yet." in md
    assert not (tmp_path / "report" / "eval_avg.png").exists()


def test_a_summary_of_an_older_mixtune_is_refused_with_what_to_do(tmp_path):
    from mixtune.errors import UserError

    (tmp_path / "summary.json").write_text(json.dumps(
        {"domains": DOMAINS, "reference_mixture": "natural", "mixtures": WEIGHTS, "rounds": [],
         "main_runs": {}, "dataset": "x"}))
    with pytest.raises(UserError, match=r"summary.json: written by an older mixtune \(format "
                       r"version 1, this mixtune reads 2\); report it with the version that wrote it"):
        write_report(tmp_path)
    assert not (tmp_path / "report").exists()


def test_helpers():
    assert fmt_ms(1.23456, None) == "1.2346"
    assert fmt_ms(None, None) == "—"
    assert fmt_ms(*mean_std([1.0, 1.2])) == "1.1000 ± 0.1414"
    assert moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def test_excess_is_doremis_objective_over_the_floor_or_the_reference(report, tmp_path):
    """Per seed: excess = log-ppl - floor per domain; its max (worst case) and mean. doremi:
    seed 0 (0.4, 0.3, 0.2), seed 1 (0.4, 0.5, 0.3) -> worst 0.45 ± 0.0707, average 0.35 ± 0.0707."""
    out, path = report
    rows = {r["mixture"]: r for r in main_table(json.loads((out / "summary.json").read_text()),
                                                out)}
    d = rows["doremi"]
    assert d["excess_baseline"] == "the loss floor"
    assert d["worst_excess"] == pytest.approx(0.45) and d["average_excess"] == pytest.approx(0.35)
    assert d["worst_excess_std"] == pytest.approx(0.02**0.5 / 2)
    assert d["excess"] == pytest.approx({"books": 0.4, "code": 0.4, "web": 0.25})
    assert rows["natural"]["worst_excess"] == pytest.approx(0.6)
    md = path.read_text()
    assert table_row(md, "doremi")[8] == "0.4500 ± 0.0707 (books)"
    assert table_row(md, "doremi")[9] == "0.3500 ± 0.0707"
    assert "*Worst-case excess* is what DoReMi minimises: the largest per-domain log-ppl above " \
           "the loss floor" in md
    # Real data has no floor: the excess is over the reference mixture's model of the same
    # seed: doremi seed 0 (-0.1, 0, -0.2), seed 1 (-0.3, 0, -0.3). Against natural's seed mean
    # (1.3, 0.9, 1.1) the worst case would be -0.1 and 0.1 by seed: a std of 0.14 that is
    # natural's seed-to-seed noise, not DoReMi's.
    out2 = make_output(tmp_path, floors=None)
    rows = {r["mixture"]: r for r in main_table(json.loads((out2 / "summary.json").read_text()),
                                                out2)}
    assert rows["doremi"]["excess_baseline"] == "natural's model"
    assert rows["doremi"]["worst_excess"] == pytest.approx(0.0)
    assert rows["doremi"]["worst_excess_std"] == pytest.approx(0.0)
    assert rows["doremi"]["worst_excess_domain"] == "code"
    assert rows["doremi"]["average_excess"] == pytest.approx(-0.15)
    assert rows["doremi"]["average_excess_std"] == pytest.approx(0.02**0.5 / 2)
    assert rows["natural"]["worst_excess"] == rows["natural"]["worst_excess_std"] == 0.0
    # uniform's one seed, seed 0, against natural's seed 0: (-0.2, 0.6, 0.2).
    assert rows["uniform"]["worst_excess"] == pytest.approx(0.6)
    assert "above natural's model of the same seed" in write_report(out2).read_text()


def test_the_verdict_comes_first_paired_by_seed_with_the_reference(report):
    out, path = report
    md = path.read_text()
    # doremi - natural per seed: 0.9 - 1.0, 1.0 - 1.2 -> -0.15 ± 0.0707; t(1) = 6.314 gives the
    # interval -0.15 ± 0.316: within noise (the old neighbour-only sentence called it separated).
    assert md.index("## Verdict: which mixture to train on") < md.index("## Headline")
    assert ("**Keep the reference mixture natural**: the difference is within noise. The best on "
            "average, doremi, is -0.1500 ± 0.0707 over 2 seeds (90% interval [-0.4657, +0.1657]) "
            "on the average validation log-ppl, which the seed spread does not separate from 0; "
            "about 3 seeds would resolve a difference this size at its spread.") in md
    row = next(line for line in md.splitlines() if line.startswith("| doremi | 0.9500 |"))
    assert "seed-0: -0.1000, seed-1: -0.2000" in row and "within noise" in row
    uniform = next(line for line in md.splitlines() if line.startswith("| uniform | 1.2000 |"))
    assert "seed-0: +0.2000" in uniform and "one seed: no verdict" in uniform
    recorded = json.loads((out / "summary.json").read_text())["verdict"]
    assert recorded["outcome"] == "within_noise" and recorded["recommended"] == "natural"
    assert recorded["sentence"].startswith("Keep the reference mixture natural: the difference")
    assert recorded["comparisons"][0]["diffs"] == pytest.approx([-0.1, -0.2])


def test_weights_stability(report):
    """History: books 0.4 - t/1000, web 0.3 + t/1000, t = 1..50. ᾱ over all 50 steps vs over the
    first 40 differs by 25.5/1000 - 20.5/1000 = 0.005 for both."""
    from mixtune.mixing.iterated_doremi import weights_stability

    _, path = report
    history = {t: {"books": 0.4 - t / 1000, "code": 0.3, "web": 0.3 + t / 1000}
               for t in range(1, 51)}
    shift, domain = weights_stability(history)
    assert shift == pytest.approx(0.005) and domain in ("books", "web")
    assert weights_stability({1: {"a": 1.0}}) is None
    assert "Round 1 stability: leaving out the last 20% of the proxy run would move ᾱ by up " \
           "to 0.005 (books); settled." in path.read_text()
    swinging = {t: {"a": float(t > 40), "b": float(t <= 40)} for t in range(1, 51)}
    assert weights_stability(swinging)[0] == pytest.approx(0.2)


def test_cautions_about_the_data_follow_the_verdict(tmp_path):
    out = make_output(tmp_path / "run")
    data = tmp_path / "data"
    data.mkdir()
    entry = lambda docs, tokens: {"documents": docs, "tokens": tokens, "sequences": 1,  # noqa: E731
                                  "skipped": {}, "duplicates": 0}
    splits = {s: {d: entry(1000, 1_000_000) for d in DOMAINS} for s in ("train", "validation")}
    splits["validation"]["code"] = entry(1, 8_241)
    (data / "manifest.json").write_text(json.dumps({"domains": DOMAINS, "splits": splits}))
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "dataset": str(data)}))
    md = write_report(out).read_text()
    assert md.index("## Verdict") < md.index("### What the numbers rest on") < md.index("## Headline")
    assert "- code: its validation set is 1 document (8,241 tokens)" in md


def test_the_terminal_shows_and_ranks_by_a_target_that_is_not_the_average(tmp_path, capsys):
    """`mixtune run`'s closing table: with `target: {web: 1}` the rows are ranked by web's
    log-ppl, so that column is shown (the average beside it would not follow the order)."""
    from mixtune.report.terminal import print_outcome

    out = make_output(tmp_path)
    summary = json.loads((out / "summary.json").read_text())
    (out / "summary.json").write_text(json.dumps({**summary, "target": {"web": 1.0}}))
    print_outcome(out)
    lines = capsys.readouterr().out.splitlines()
    head = next(line for line in lines if line.startswith("mixture"))
    assert head.split()[:4] == ["mixture", "target", "average", "log-ppl"]
    assert "target: 1·web validation log-ppl (lower is better), which ranks the rows" in lines
    (out / "summary.json").write_text(json.dumps(summary))
    print_outcome(out)
    assert "target" not in next(line for line in capsys.readouterr().out.splitlines()
                                if line.startswith("mixture"))
