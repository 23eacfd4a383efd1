"""Downstream evaluation end to end on the tasks generated with a synthetic dataset: sharding over
ranks, `mixtune eval --tasks`, and tasks scored while training."""

import json

import pytest
import torch
from transformers import AutoTokenizer

from mixtune.data.store import open_dataset
from mixtune.eval.downstream import Runtime, evaluate_tasks
from mixtune.model.build import build_model

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup(synthetic_dataset):
    ds = open_dataset(synthetic_dataset)
    tok = AutoTokenizer.from_pretrained(ds.tokenizer_dir)
    model = build_model("tiny", ds.vocab_size, 64, ds.eos_id, seed=0).eval()
    return ds, tok, model


def test_generated_tasks_are_scored(setup):
    ds, tok, model = setup
    r = evaluate_tasks(model, tok, "dataset", Runtime(CPU), limit=30, roots=[ds.path / "tasks"])
    assert sorted(r.tasks) == sorted(p.name for p in (ds.path / "tasks").iterdir())
    mc, lm = r.tasks["continue_markov_easy"], r.tasks["complete_markov_easy"]
    assert mc.n == 30 and mc.format == "multiple_choice" and mc.primary == "acc_per_token"
    assert 0 <= mc.acc <= 1 and 0 < mc.gold_prob < 1 and mc.bpb > 0
    assert mc.acc_centered == pytest.approx((mc.acc_per_token - 0.25) / 0.75)
    assert lm.acc_norm is None and lm.gold_prob is None and lm.bpb > 0
    assert r.mean_bpb == pytest.approx(sum(t.bpb for t in r.tasks.values()) / len(r.tasks))
    assert r.aggregates == {}  # generated tasks belong to no suite


def test_ranks_split_the_items_and_add_up_to_one_process(setup):
    ds, tok, model = setup
    spec, roots = "continue_repeat,complete_noise", [ds.path / "tasks"]
    whole = evaluate_tasks(model, tok, spec, Runtime(CPU), limit=21, roots=roots)
    halves = [evaluate_tasks(model, tok, spec, Runtime(CPU, rank=r, world_size=2), limit=21,
                             roots=roots) for r in (0, 1)]
    for name, t in whole.tasks.items():
        parts = [h.tasks[name] for h in halves]
        assert [p.n for p in parts] == [11, 10]  # items 0, 2, ... and 1, 3, ...
        assert sum(p.acc * p.n for p in parts) / t.n == pytest.approx(t.acc, abs=1e-12)
        # Other batches, other float32 rounding: the same bits per byte to 1e-6.
        assert sum(p.bpb * p.n for p in parts) / t.n == pytest.approx(t.bpb, rel=1e-6)


def test_eval_command_adds_downstream_to_a_run(synthetic_dataset, tmp_path, capsys):
    from mixtune.cli import main
    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    out = run(train_config(data=str(synthetic_dataset), out=str(tmp_path / "r"), steps=4,
                           batch_size=8, eval_max_tokens_per_domain=64, eval_every=2,
                           eval_tasks="continue_repeat,complete_repeat", eval_limit=10))
    rows = [json.loads(x) for x in open(out / "metrics.jsonl") if '"eval"' in x]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(r["downstream"]["tasks"]["continue_repeat"]["n"] == 10 for r in rows)
    final = json.loads((out / "eval.json").read_text())
    assert final["downstream"] == rows[-1]["downstream"] and "log_ppl" in final

    capsys.readouterr()
    assert main(["eval", str(out), "--tasks", "dataset", "--limit", "5"]) == 0
    printed = capsys.readouterr().out
    assert "continue_markov_hard" in printed and "mean gold bpb" in printed
    ev = json.loads((out / "eval.json").read_text())
    assert "log_ppl" in ev and "average" in ev  # the per-domain result stays at the top
    assert ev["downstream"]["tasks"]["complete_noise"]["n"] == 5

    assert main(["eval", str(out), "--tasks", "no_such_task"]) == 2
    assert "mixtune tasks download --tasks no_such_task" in capsys.readouterr().err


def test_a_missing_task_fails_before_training(synthetic_dataset, tmp_path, monkeypatch):
    from mixtune.errors import UserError
    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    monkeypatch.setenv("MIXTUNE_TASKS", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="not installed: arc_easy"):
        run(train_config(data=str(synthetic_dataset), out=str(tmp_path / "r"), steps=4,
                         batch_size=8, eval_tasks="arc_easy"))
    assert not (tmp_path / "r" / "config.yaml").exists()


@pytest.mark.slow
def test_eval_under_torchrun_matches_one_process(synthetic_dataset, tmp_path):
    """Two processes split the items and sum their metrics: the same numbers as one process."""
    import os
    import subprocess
    import sys

    from mixtune.train.config import train_config
    from mixtune.train.loop import run

    out = run(train_config(data=str(synthetic_dataset), out=str(tmp_path / "r"), steps=2,
                           batch_size=8, eval_max_tokens_per_domain=64))
    base = [sys.executable, "-m", "mixtune", "eval", str(out), "--tasks",
            "continue_markov_easy,complete_repeat", "--limit", "25", "--device", "cpu"]
    one = subprocess.run([*base, "--out", str(tmp_path / "one.json")], capture_output=True,
                         text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node", "2", *base[1:], "--out", str(tmp_path / "two.json")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / f).read_text())["downstream"]["tasks"]
            for f in ("one.json", "two.json"))
    for name in a:
        assert b[name]["n"] == a[name]["n"] == 25
        assert b[name]["acc"] == pytest.approx(a[name]["acc"], abs=1e-12)
        assert b[name]["bpb"] == pytest.approx(a[name]["bpb"], rel=1e-6)
    assert a["complete_repeat"]["n"] == 25


@pytest.mark.slow
def test_eval_progress_lines_appear_without_a_tty(setup, tmp_path):
    """`mixtune eval` writing to a log (stderr captured, no terminal) reports items scored as it
    goes; `--progress-every` is tiny, so every batch scored gives a line."""
    import re
    import subprocess
    import sys

    ds, tok, model = setup
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    done = subprocess.run(
        [sys.executable, "-m", "mixtune", "eval", str(tmp_path / "m"), "--data", str(ds.path),
         "--tasks", "continue_repeat,complete_noise", "--limit", "6", "--device", "cpu",
         "--progress-every", "1e-9"],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = re.findall(r"^mixtune: eval: item (\d+)/12 .*item/s.*$", done.stderr, re.M)
    assert lines and all(0 < int(n) <= 12 for n in lines), done.stderr[-2000:]
    assert "ETA" in done.stderr and "task continue_repeat" in done.stderr


def test_user_schema_and_qa_files(setup, tmp_path):
    """A user's own files in the two formats generated tasks lack: scored, with their metrics."""
    ds, tok, model = setup
    schema = tmp_path / "wino.jsonl"
    schema.write_text("".join(json.dumps({"context_options": [f"t{i} t{i + 1}", f"t{i + 2} t{i}"],
                                          "continuation": f"t{i + 3}", "gold": i % 2}) + "\n"
                              for i in range(8)))
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"context": f"t{i} t{i + 1} t{i + 2}",
                                      "answers": [f"t{i + 3}", f"t{i + 4}"]}) + "\n"
                          for i in range(6)))
    r = evaluate_tasks(model, tok, f"{schema},{qa}", Runtime(CPU), shots=1)
    s, q = r.tasks[str(schema)], r.tasks[str(qa)]
    assert (s.format, s.n, s.shots, q.format, q.n) == ("schema", 8, 1, "generative_qa", 6)
    assert s.acc == s.acc_per_token  # the continuation is shared: every rule picks the same
    assert 0 <= q.acc <= 1 and q.bpb > 0 and q.acc_norm is None
