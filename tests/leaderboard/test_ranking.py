"""What ranks the board: the measure the caller chooses; `auto` ranks by CORE only where it stands out
of noise above chance, as it does not at laptop scale, and says so."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mixtune.errors import UserError
from mixtune.io import write_json_atomic
from mixtune.leaderboard.board import collect, curves, ranking, to_board, to_csv, to_markdown
from mixtune.leaderboard.html import render_html
from mixtune.leaderboard.write import leaderboard_text, write_leaderboard
from mixtune.provenance import DATASET_RECORD, new_record, write_eval_record, write_model_record
from tests.leaderboard.test_board import table_lines

NOISE = "within noise of chance at this scale"


def _run(out: Path, mixture: str, seed: int, core: float | None, bpb: float | None, ppl: float) -> None:
    """A finished main run: its records, and metrics.jsonl with two evaluations of every measure."""
    dataset = out / "data" / "dataset"
    if not (dataset / DATASET_RECORD).is_file():
        write_json_atomic(dataset / DATASET_RECORD, new_record("dataset", kind="dataset"))
    ds = json.loads((dataset / DATASET_RECORD).read_text())
    run = out / "main" / mixture / f"seed-{seed}"
    model = write_model_record(
        run, dataset_name="dataset", dataset_uuid=ds["uuid"], dataset_path=str(dataset),
        method="static", mixture={"name": mixture, "spec": mixture, "weights": {"a": 1.0}},
        hyperparameters={"scale": "tiny", "tokens": 4096, "seed": seed, "global_bs": 4, "seq_len": 32})
    metrics = {"average_log_ppl": ppl} | ({"mean_bpb": bpb} if bpb is not None else {})
    write_eval_record(run, model, **({"Core": core} if core is not None else {}), eval_metrics=metrics)
    rows = []
    for step in (16, 32):
        downstream = {"tasks": {"t": {"name": "t", "task": "t", "format": "mc", "shots": 0, "n": 50,
                                      **({"bpb": bpb + 1 / step} if bpb is not None else {})}},
                      "aggregates": {} if core is None else {"core": {"value": core, "present": True}}}
        rows.append({"kind": "eval", "step": step, "average": ppl + 1 / step, "log_ppl": {"a": ppl},
                     "downstream": downstream})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _board(tmp_path, results: dict[str, list[tuple]]) -> Path:
    """{mixture: [(core, bpb, ppl) per seed]} as a `mixtune run` output."""
    out = tmp_path / "out"
    for mixture, seeds in results.items():
        for seed, (core, bpb, ppl) in enumerate(seeds):
            _run(out, mixture, seed, core, bpb, ppl)
    return out


def _order(rows) -> list[str]:
    return [r.first.mixture for r in rows]


# CORE within ±0.01 of chance: `noisy` has the highest CORE, and is worst on everything else.
NOISY = {"noisy": [(0.012, 1.30, 3.3), (-0.004, 1.32, 3.3)],
         "good": [(-0.002, 1.10, 3.1), (0.001, 1.12, 3.1)],
         "fair": [(-0.008, 1.20, 3.2), (0.002, 1.21, 3.2)]}


def test_auto_passes_over_core_within_noise_and_says_so(tmp_path):
    out = _board(tmp_path, NOISY)
    rows, notes = collect([out / "main"])
    assert notes == [] and _order(rows) == ["good", "fair", "noisy"]
    order = ranking(rows)
    assert order.key == "mean_bpb" and NOISE in order.note
    md = to_markdown(rows)
    assert "Ranked by mean BPB (lower is better)." in md and md.count(NOISE) == 1
    assert "--rank-by core" in md
    board = to_board(rows, curves=curves(rows))
    assert board["ranking"]["key"] == "mean_bpb" and NOISE in board["ranking"]["note"]
    assert [r["values"]["mixture"] for r in board["rows"]] == ["good", "fair", "noisy"]
    page = render_html(board)
    assert "Ranked by mean BPB" in page and NOISE in page
    assert curves(rows)["metric"] == "mean BPB"  # the page plots what ranks, not CORE
    # Asked for, CORE ranks anyway (and the curve is CORE's).
    by_core, _ = collect([out / "main"], rank_by="core")
    assert _order(by_core) == ["noisy", "good", "fair"] and ranking(by_core, "core").note is None
    assert "Ranked by CORE (higher is better)." in to_markdown(by_core, rank_by="core")
    assert curves(by_core, "core")["metric"] == "CORE"
    assert _order(collect([out / "main"], rank_by="avg_log_ppl")[0]) == ["good", "fair", "noisy"]


def test_auto_ranks_by_core_above_chance_beyond_its_spread(tmp_path):
    rows, _ = collect([_board(tmp_path, {
        "strong": [(0.11, 1.30, 3.3), (0.09, 1.32, 3.3)],  # 0.10 ± 0.014: above chance
        "weak": [(0.02, 1.10, 3.1), (0.01, 1.12, 3.1)]})])
    assert ranking(rows) == ranking(rows, "core") and ranking(rows).note is None
    assert _order(rows) == ["strong", "weak"]
    md = to_markdown(rows)
    assert "Ranked by CORE (higher is better)." in md and NOISE not in md
    assert curves(rows)["metric"] == "CORE"


def test_one_seed_never_ranks_by_core(tmp_path):
    rows, _ = collect([_board(tmp_path, {"high": [(0.3, 1.3, 3.3)], "low": [(0.0, 1.1, 3.1)]})])
    order = ranking(rows)
    assert order.key == "mean_bpb" and "one seed" in order.note and _order(rows) == ["low", "high"]


def test_without_bits_per_byte_the_board_ranks_by_log_ppl(tmp_path):
    rows, _ = collect([_board(tmp_path, {"a": [(0.01, None, 3.3), (0.0, None, 3.3)],
                                         "b": [(0.0, None, 3.1), (0.01, None, 3.1)]})])
    order = ranking(rows)
    assert order.key == "avg_log_ppl" and "average validation log-ppl" in order.note
    assert _order(rows) == ["b", "a"] and curves(rows)["metric"] == "average log-ppl"
    # No CORE at all: nothing passed over, nothing to say about it.
    rows, _ = collect([_board(tmp_path / "x", {"a": [(None, None, 3.3)], "b": [(None, None, 3.1)]})])
    assert ranking(rows).key == "avg_log_ppl" and ranking(rows).note is None
    assert to_markdown(rows).endswith("\n\nRanked by avg log-ppl (lower is better).\n")
    asked = ranking(rows, "core")  # asked for a measure no row has: said, and the next one ranks
    assert asked.key == "avg_log_ppl" and "No model here has CORE" in asked.note


def test_csv_ranks_as_asked(tmp_path):
    out = _board(tmp_path, NOISY)
    rows, _ = collect([out])
    ranked = [line.split(",")[2] for line in to_csv(rows, rank_by="core").splitlines()[1:]]
    assert ranked == ["noisy", "good", "fair"]


def test_an_unknown_measure_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="rank_by 'ppl': one of auto, core, mean_bpb, avg_log_ppl"):
        collect([_board(tmp_path, NOISY)], rank_by="ppl")


def test_the_report_writes_its_board_ranked_by_log_ppl(tmp_path):
    out = _board(tmp_path, {"low-bpb": [(0.0, 1.0, 3.3)], "low-ppl": [(0.0, 1.2, 3.1)]})
    report = out / "report"
    md, notes = write_leaderboard(out, report, rank_by="avg_log_ppl")
    assert notes == [] and (report / "leaderboard.md").read_text() == md
    assert [line.split("|")[3].strip() for line in table_lines(md)[2:]] == ["low-ppl", "low-bpb"]
    assert "Ranked by avg log-ppl (lower is better)." in md
    page = (report / "leaderboard.html").read_text()
    assert "Ranked by avg log-ppl" in page and "average log-ppl vs training tokens" in page
    auto, _ = write_leaderboard(out, report)  # as `mixtune leaderboard`: by bits per byte
    assert [line.split("|")[3].strip() for line in table_lines(auto)[2:]] == ["low-bpb", "low-ppl"]


def test_the_command_takes_rank_by(tmp_path):
    out = _board(tmp_path, NOISY)
    proc = subprocess.run([sys.executable, "-m", "mixtune", "leaderboard", str(out), "--rank-by", "core"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert [line.split("|")[3].strip() for line in table_lines(proc.stdout)[2:]] == ["noisy", "good", "fair"]
    text, _ = leaderboard_text([out], "md")
    assert NOISE in text
