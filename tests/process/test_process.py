"""`mixtune process` end to end: built-in pipelines into prepare and train, layouts, resume,
executors (local, Slurm script, Ray), statistics, and bad input."""

import itertools
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("datatrove")

from mixtune.data.config import PrepareOptions
from mixtune.data.prepare import prepare  # noqa: E402
from mixtune.data.store import open_dataset  # noqa: E402
from mixtune.errors import UserError  # noqa: E402
from mixtune.io import work_dir  # noqa: E402
from mixtune.process import stats  # noqa: E402
from mixtune.process.config import ProcessOptions
from mixtune.process.pipelines import BUILTIN  # noqa: E402
from mixtune.process.run import RECORD, process  # noqa: E402
from mixtune.train.config import train_config  # noqa: E402
from tests.process.planted import make_corpus, read_output, sentence  # noqa: E402


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    make_corpus(root, clean=48)
    return root


def opts(sources, out, **kw):
    return ProcessOptions([str(s) for s in sources], str(out), **{"workers": 1, **kw})


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(BUILTIN))
def test_builtin_pipeline_output_is_prepared_and_trained(raw, tmp_path, pipeline):
    from mixtune.train.loop import run

    out = process(opts([raw], tmp_path / "proc", pipeline=pipeline, tasks=2))
    # One folder per domain, splits kept; statistics and a record beside them.
    assert {p.name for p in out.iterdir()} >= {"train", "validation", RECORD, stats.STATS_FILE}
    assert sorted(p.name for p in (out / "train").iterdir()) == ["forum", "web"]
    merged = stats.read(out)
    assert [s["step"] for s in merged["steps"]][0] == stats.READ
    docs = read_output(out)
    assert sum(c["docs_out"] for c in merged["domains"].values()) == len(docs)
    assert not work_dir(out).exists()  # removed after success
    record = json.loads((out / RECORD).read_text())
    assert record["kind"] == "processed" and record["sources"] == [str(raw)]
    ds = prepare(PrepareOptions([str(out)], str(tmp_path / "data"), vocab_size=300, seq_len=16))
    assert sorted(open_dataset(ds).domains) == ["forum", "web"]
    prepared = json.loads((ds / "dataset_record.json").read_text())
    assert prepared["source_records"] == [record["uuid"]]  # the dataset names what it came from
    run(train_config(data=str(ds), out=str(tmp_path / "run"), scale="tiny", steps=2,
                     batch_size=2, eval_every=2, eval_max_tokens_per_domain=64))
    assert (tmp_path / "run" / "final").is_dir()


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", sorted(BUILTIN))
def test_builtin_pipeline_on_pile_layout_is_prepared(tmp_path, pipeline):
    make_corpus(tmp_path / "pile", clean=48, splits=False, pile=True)
    out = process(opts([tmp_path / "pile" / "pile.jsonl.zst"], tmp_path / "proc",
                       pipeline=pipeline, domain_field="meta.pile_set_name"))
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["forum", "web"]
    ds = prepare(PrepareOptions([str(out)], str(tmp_path / "data"), vocab_size=300, seq_len=16))
    assert sorted(open_dataset(ds).domains) == ["forum", "web"]


def test_pile_style_input_gets_one_folder_per_domain(tmp_path):
    words = "with all the words it needs to be kept by the length rule of the minimal pipeline"
    rows = [{"text": f"Document {i} of the {d} set, {words}.",
             "meta": {"pile_set_name": d}} for i in range(6) for d in ("Pile-CC", "ArXiv")]
    rows.append(dict(rows[0]))  # an exact duplicate
    (tmp_path / "pile.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = process(opts([tmp_path / "pile.jsonl"], tmp_path / "proc", pipeline="minimal",
                       domain_field="meta.pile_set_name"))
    got = read_output(out)
    assert sorted({d for d, _s, _t in got}) == ["ArXiv", "Pile-CC"]
    assert len(got) == 12 and {s for _d, s, _t in got} == {None}


@pytest.mark.slow
def test_same_output_for_any_number_of_tasks_without_bff(raw, tmp_path):
    """Per-document steps and datatrove's global dedups do not depend on how the input is cut
    (which copy of a duplicate survives may; the set of texts modulo copies does not)."""
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump([*BUILTIN["refinedweb"][1][1:], {"op": "minhash_dedup"},
                                    {"op": "exact_dedup"}]))
    one = process(opts([raw], tmp_path / "one", pipeline=str(pipe), tasks=1))
    three = process(opts([raw], tmp_path / "three", pipeline=str(pipe), tasks=3, workers=2))
    a, b = read_output(one), read_output(three)
    # The same documents up to the dedups; as many kept by them.
    assert stats.read(one)["steps"][:-2] == stats.read(three)["steps"][:-2]
    assert len(a) == len(b)
    assert sum(s["domains"]["web"]["docs_in"] - s["domains"]["web"]["docs_out"]
                   for s in stats.read(one)["steps"][-2:]) > 0  # the dedups did drop copies


def test_killed_run_resumes_to_the_same_output(raw, tmp_path, monkeypatch):
    from datatrove.pipeline.dedup.exact_dedup import ExactFindDedups

    whole = read_output(process(opts([raw], tmp_path / "whole", tasks=3)))
    calls = []
    original = ExactFindDedups.run

    def killed(self, *args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C between the signatures and the search

    monkeypatch.setattr(ExactFindDedups, "run", killed)
    with pytest.raises(KeyboardInterrupt):
        process(opts([raw], tmp_path / "again", tasks=3))
    assert not (tmp_path / "again").exists()  # nothing published
    completions = work_dir(tmp_path / "again") / "logs" / "1-filter" / "completions"
    assert len(list(completions.iterdir())) == 3

    from mixtune.process.blocks import SourceReader

    source_run = SourceReader.run

    def counting(self, *args, **kwargs):
        calls.append(1)
        return source_run(self, *args, **kwargs)

    monkeypatch.setattr(ExactFindDedups, "run", original)
    monkeypatch.setattr(SourceReader, "run", counting)
    again = read_output(process(opts([raw], tmp_path / "again", tasks=3)))
    assert calls == []  # the finished tasks were not redone
    assert again == whole


def test_rerun_of_a_complete_output_is_skipped_or_refused(raw, tmp_path):
    out = process(opts([raw], tmp_path / "proc"))
    stamp = (out / RECORD).stat().st_mtime_ns
    assert process(opts([raw], tmp_path / "proc")) == out
    assert (out / RECORD).stat().st_mtime_ns == stamp
    with pytest.raises(Exception, match="processed otherwise"):
        process(opts([raw], tmp_path / "proc", pipeline="c4"))
    process(opts([raw], tmp_path / "proc", pipeline="c4", overwrite=True))
    assert json.loads((out / RECORD).read_text())["steps"][0]["op"] == "c4_quality"


def test_domains_limit_a_step(raw, tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump([{"op": "length", "min_chars": 10**9, "domains": ["web"]}]))
    out = process(opts([raw], tmp_path / "proc", pipeline=str(pipe)))
    got = read_output(out)
    assert {d for d, _s, _t in got} == {"forum"}
    # The totals count what was written, also of the domains the step let pass.
    totals = stats.read(out)["domains"]
    assert totals["forum"]["docs_out"] == len(got) > 0 and totals["web"]["docs_out"] == 0
    record = json.loads((out / RECORD).read_text())
    assert record["domains"] == ["forum"] and record["documents"]["forum"] == len(got)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mixtune", "process", *map(str, args)],
                          capture_output=True, text=True, cwd=Path(__file__).parents[2])


@pytest.mark.parametrize("steps, message", [
    ([{"op": "gopher_qualty"}], "step 1: unknown operation 'gopher_qualty'; the operations are "
                                "gopher_quality, gopher_repetition"),
    ([{"op": "length"}, {"op": "length", "min_word": 3}],
     "step 2: length has no argument 'min_word'; its arguments are min_chars, max_chars, "
     "min_words, max_words"),
    ([{"op": "length", "min_words": "many"}], "length min_words: want int (default 0), got 'many'"),
    ([{"op": "fasttext_quality", "model": "nowhere.bin"}],
     "fasttext_quality model nowhere.bin: no such file"),
    ([{"op": "language", "languages": ["english"]}], "languages: english unknown; use ISO 639-1"),
    ([{"op": "exact_dedup", "domains": ["web"]}], "exact_dedup sees every document"),
    ([{"op": "line_filter", "patterns": ["(unclosed"]}], "line_filter: missing ), unterminated"),
    ([{"op": "length", "max_chars": "1000"}], "length max_chars: want int | None, got '1000'"),
    ([{"op": "sample", "rate": 5}], "sample rate: 5 is outside [0.0, 1.0]"),
    ([{"op": "bff_dedup", "fp_rate": 0}], "fp_rate must lie in (0, 1)"),
])
def test_bad_pipeline_is_named_before_any_work(raw, tmp_path, steps, message):
    pipe = tmp_path / "bad.yaml"
    pipe.write_text(yaml.safe_dump(steps))
    proc = cli(raw, "--out", tmp_path / "proc", "--pipeline", pipe)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and str(pipe) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "proc").exists() and not work_dir(tmp_path / "proc").exists()


def test_unreadable_input_is_located_and_nothing_is_published(tmp_path):
    (tmp_path / "raw" / "web").mkdir(parents=True)
    good = json.dumps({"text": "fine text " * 30})
    (tmp_path / "raw" / "web" / "a.jsonl").write_text(f"{good}\n{{not json\n")
    proc = cli(tmp_path / "raw", "--out", tmp_path / "proc", "--tasks", 2)
    assert proc.returncode == 2
    assert proc.stderr.count("a.jsonl:2: malformed JSON") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "proc").exists()
    assert cli(tmp_path / "missing", "--out", tmp_path / "p").stderr.strip().endswith(
        "no such file or folder. Check the SOURCE path.")
    # Tasks read shards, so the layout is checked once before they start: an empty domain
    # folder is named with any number of tasks.
    (tmp_path / "raw2" / "web").mkdir(parents=True)
    (tmp_path / "raw2" / "web" / "a.jsonl").write_text(f"{good}\n")
    (tmp_path / "raw2" / "empty").mkdir()
    proc = cli(tmp_path / "raw2", "--out", tmp_path / "p2", "--tasks", 3)
    assert proc.returncode == 2 and "domain folder 'empty' has no documents" in proc.stderr
    (tmp_path / "file").write_text("x")
    proc = cli(tmp_path / "raw" / "web", "--out", tmp_path / "file")
    assert proc.returncode == 2 and "is a file; --out names the folder" in proc.stderr


def test_line_filter_takes_one_pattern_as_a_string():
    from mixtune.process.filters import LineFilter

    assert LineFilter(patterns="cookie").format("keep me\nwe use cookies") == "keep me"


def test_nothing_left_is_not_published(raw, tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump([{"op": "length", "min_chars": 10**9}]))
    with pytest.raises(UserError, match="no document passed the pipeline"):
        process(opts([raw], tmp_path / "proc", pipeline=str(pipe)))
    assert not (tmp_path / "proc").exists()


def test_list_and_show(tmp_path):
    listed = cli("--list-operations")
    assert listed.returncode == 0 and "bff_dedup" in listed.stdout
    shown = cli("--show-pipeline", "dclm-baseline")
    steps = yaml.safe_load(shown.stdout)
    assert [s["op"] for s in steps][-1] == "bff_dedup"
    # The printed pipeline is a valid pipeline file.
    (tmp_path / "p.yaml").write_text(shown.stdout)
    from mixtune.process.pipelines import load_pipeline

    assert len(load_pipeline(str(tmp_path / "p.yaml"))) == len(steps)


def test_quality_model_adds_the_fasttext_filter(raw, tmp_path):
    pytest.importorskip("fasttext")
    rng = random.Random(0)
    lines = [f"__label__hq {sentence(rng)}" for _ in range(200)]
    lines += ["__label__cc " + " ".join(rng.choice(["click", "here", "buy", "now", "free"])
                                        for _ in range(10)) for _ in range(200)]
    rng.shuffle(lines)
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    # fasttext-numpy2-wheel's trainer stops at random with "Encountered NaN" (about one run in
    # two in a fresh process, nearly always in a busy one): train in fresh processes until one
    # succeeds. Loading and predicting, which mixtune does, are not affected.
    train = ("import fasttext, sys; fasttext.train_supervised(sys.argv[1], epoch=10, lr=0.5, "
             "thread=1, verbose=0).save_model(sys.argv[2])")
    for _ in range(30):
        if subprocess.run([sys.executable, "-c", train, str(tmp_path / "train.txt"),
                           str(tmp_path / "q.bin")], capture_output=True).returncode == 0:
            break
    assert (tmp_path / "q.bin").is_file(), "fastText training failed 30 times"
    out = process(opts([raw], tmp_path / "proc", pipeline="dclm-baseline",
                       quality_model=str(tmp_path / "q.bin")))
    last = stats.read(out)["steps"][-1]
    assert last["step"] == "7 fasttext_quality"
    assert sum(c["docs_out"] for c in last["domains"].values()) > 0  # prose scores high
    with pytest.raises(UserError, match="no label 'nope'"):
        pipe = tmp_path / "p.yaml"
        pipe.write_text(yaml.safe_dump([{"op": "fasttext_quality", "model": str(tmp_path / "q.bin"),
                                         "label": "nope"}]))
        process(opts([raw], tmp_path / "proc2", pipeline=str(pipe)))


def test_slurm_submits_one_array_per_stage(raw, tmp_path, monkeypatch):
    """No cluster: a stand-in `sbatch` keeps each submitted script and answers a job id."""
    bin_dir, log = tmp_path / "bin", tmp_path / "sbatch"
    bin_dir.mkdir()
    log.mkdir()
    (bin_dir / "sbatch").write_text(
        '#!/bin/sh\nn=$(ls "$SBATCH_LOG" | grep -c sh$)\nfor a; do last="$a"; done\n'
        'cp "$last" "$SBATCH_LOG/$n.sh"\necho "$@" > "$SBATCH_LOG/$n.args"\n'
        'echo "Submitted batch job $((1000+n))"\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SBATCH_LOG", str(log))
    proc = cli(raw, "--out", tmp_path / "proc", "--executor", "slurm", "--slurm-partition",
               "cpu", "--tasks", 4)
    assert proc.returncode == 0, proc.stderr
    assert "submitted to Slurm" in proc.stdout
    # Per stage, datatrove submits the task array, then a job merging its statistics.
    arrays = [n for n in range(len(list(log.glob("*.sh"))))
              if "launch_pickled_pipeline" in (log / f"{n}.sh").read_text()]
    # minimal: filter, signatures, find, filter+write, publish
    assert len(arrays) == 5
    scripts = [(log / f"{n}.sh").read_text() for n in arrays]
    assert all("#SBATCH --partition=cpu" in s for s in scripts)
    assert [re.search(r"#SBATCH --array=(\S+)", s).group(1) for s in scripts] == \
        ["0-3", "0-3", "0-0", "0-3", "0-0"]
    for before, after in itertools.pairwise(arrays):  # each waits for the one before
        assert f"--dependency=afterok:{1000 + before}" in (log / f"{after}.args").read_text()
    assert not (tmp_path / "proc").exists()


@pytest.mark.slow
def test_ray_gives_the_local_output(raw, tmp_path):
    ray = pytest.importorskip("ray")
    local = process(opts([raw], tmp_path / "local", tasks=2))
    kw = {"vocab_size": 300, "seq_len": 16}
    try:
        on_ray = process(opts([raw], tmp_path / "ray", tasks=2, executor="ray"))
        prepared = prepare(PrepareOptions([str(local)], str(tmp_path / "data-ray"), tasks=2,
                                          executor="ray", **kw))
    finally:
        ray.shutdown()
    assert read_output(local) == read_output(on_ray)
    alone = prepare(PrepareOptions([str(local)], str(tmp_path / "data"), **kw))
    for split in ("train", "validation"):
        for domain in ("forum", "web"):
            assert (prepared / split / f"{domain}.bin").read_bytes() == \
                (alone / split / f"{domain}.bin").read_bytes()


@pytest.mark.slow
def test_run_yaml_with_a_process_section(raw, tmp_path):
    """`data.process` adds a stage before `data`; the report shows what it dropped."""
    from mixtune.pipeline import run_pipeline
    from mixtune.pipeline.stage import StageRecord

    cfg = {
        "output": str(tmp_path / "out"),
        "data": {"sources": [str(raw)], "process": {"pipeline": "minimal", "tasks": 2},
                 "prepare": {"vocab_size": 300, "seq_len": 16}},
        "proxy": {"scale": "tiny", "steps": 2, "batch_size": 4},
        "main": {"scale": "tiny", "steps": 2, "batch_size": 4, "eval_every": 2},
        "mixtures": ["reference", "uniform"], "seeds": [0],
        "train": {"eval_max_tokens_per_domain": 64},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run_pipeline(path)
    assert StageRecord.read(out / "process").complete
    assert (out / "process" / "corpus" / "train" / "web").is_dir()
    assert StageRecord.read(out / "data").inputs["process"] == StageRecord.read(
        out / "process").run_id
    report = (out / "report" / "report.md").read_text()
    assert "## Processing" in report and "2 exact_dedup" in report
    assert (out / "report" / "process_stats.png").is_file()
    # prepare reads the processed corpus: its fields belong under process:
    cfg["data"]["prepare"]["domain_field"] = "meta.source"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match="set domain_field under process:"):
        run_pipeline(path)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "examples" / "pipelines")
                                        .glob("*.yaml")), ids=lambda p: p.name)
def test_example_pipelines_load(path):
    from mixtune.process.pipelines import load_pipeline

    assert load_pipeline(str(path))


def test_sample_is_seeded_per_task(raw, tmp_path):
    """Rerun: the same documents; two tasks do not draw the same numbers."""
    from datatrove.data import Document

    from mixtune.process.filters import SampleFilter

    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump([{"op": "sample", "rate": 0.5, "seed": 3}]))
    a = read_output(process(opts([raw], tmp_path / "a", pipeline=str(pipe), tasks=2)))
    b = read_output(process(opts([raw], tmp_path / "b", pipeline=str(pipe), tasks=2)))
    assert a == b and 0 < len(a) < len(read_output(process(opts([raw], tmp_path / "all"))))
    draws = []
    for rank in (0, 1):
        f = SampleFilter(rate=0.5, seed=3)
        f.start(rank)
        draws.append([f.filter(Document(str(i), str(i))) is True for i in range(64)])
    assert draws[0] != draws[1]
