"""`mixtune process` refuses, before any work, the pipeline values that used to pass the checks
and crash inside datatrove; and its helper processes die with it (issue 23, items 5 and 8)."""

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("datatrove")

from mixtune.errors import UserError  # noqa: E402
from mixtune.io import work_dir  # noqa: E402
from mixtune.process.ops import domains_problem, parse_step  # noqa: E402
from tests.process.planted import make_corpus  # noqa: E402

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    make_corpus(root, clean=12)
    return root


def cli(*args):
    return subprocess.run([sys.executable, "-m", "mixtune", "process", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def refused_before_work(raw, tmp_path, steps) -> str:
    """The stderr of a run of `steps` that must stop, located, before any task ran."""
    pipe = tmp_path / "p.yaml"
    pipe.write_text(yaml.safe_dump(steps))
    proc = cli(raw, "--out", tmp_path / "out", "--pipeline", pipe)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and str(pipe) in proc.stderr
    assert not (tmp_path / "out").exists() and not work_dir(tmp_path / "out").exists()
    return proc.stderr


def fasttext_header(model: int = 3, magic: int = 793712314, version: int = 12) -> bytes:
    # magic, version, then Args: dim, ws, epoch, minCount, neg, wordNgrams, loss, model, ...
    return struct.pack("<10i", magic, version, 10, 5, 5, 1, 5, 1, 2, model) + bytes(64)


def test_a_file_that_is_no_fasttext_model_is_refused_before_any_work(raw, tmp_path):
    pytest.importorskip("fasttext")
    (tmp_path / "notes.bin").write_text("hello, not a model\n" * 10)
    err = refused_before_work(raw, tmp_path, [{"op": "fasttext_quality",
                                               "model": str(tmp_path / "notes.bin")}])
    assert f"model {tmp_path / 'notes.bin'}: not a fastText model" in err


def test_the_fasttext_header_says_model_or_not(tmp_path):
    pytest.importorskip("fasttext")

    def step(header: bytes):
        (tmp_path / "m.bin").write_bytes(header)
        return parse_step({"op": "fasttext_quality", "model": str(tmp_path / "m.bin")}, "step 1")

    assert step(fasttext_header()).args["model"] == str(tmp_path / "m.bin")  # a classifier
    with pytest.raises(UserError, match="word-vector model, not a classifier"):
        step(fasttext_header(model=2))  # skipgram vectors
    with pytest.raises(UserError, match="format 13, newer than"):
        step(fasttext_header(version=13))
    with pytest.raises(UserError, match="not a fastText model"):
        step(b"")


def test_a_bloom_filter_larger_than_memory_is_refused_before_any_work(raw, tmp_path):
    err = refused_before_work(raw, tmp_path, [{"op": "bff_dedup", "expected_ngrams": 10**20}])
    assert "bff_dedup: expected_ngrams 100000000000000000000 at fp_rate 0.01 needs a Bloom " \
           "filter of 104 EiB in each task, more than this machine's" in err
    parse_step({"op": "bff_dedup", "expected_ngrams": 10**9}, "step 1")  # 1.1 GiB: fine


def test_a_domain_the_corpus_lacks_is_named_with_the_corpus_domains():
    steps = [{"op": "length"}, {"op": "line_filter", "domains": ["web", "nosuch"]}]
    assert domains_problem(steps, ["forum", "web"]) == (
        "step 2 (line_filter): domains: nosuch: not a domain of the corpus, whose domains are "
        "forum, web; correct the name or remove it.")
    assert domains_problem(steps[:1] + [{"op": "length", "domains": ["web"]}], {"web"}) is None


def test_a_step_limited_to_an_unknown_domain_is_refused_before_any_work(raw, tmp_path):
    """Needs process/run.py to check the pipeline against the layout's domains (see the
    report of issue 23, item 5)."""
    err = refused_before_work(raw, tmp_path, [{"op": "length", "domains": ["nosuch"]}])
    assert "step 1 (length): domains: nosuch: not a domain of the corpus, whose domains are " \
           "forum, web" in err


SLEEPER = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    from datatrove.pipeline.base import PipelineStep
    from mixtune.executors import ExecutorOptions, Stage, execute

    class Sleep(PipelineStep):
        name = type = "sleep"

        def __init__(self, marks):
            super().__init__()
            self.marks = marks

        def run(self, data=None, rank=0, world_size=1):
            Path(self.marks, str(rank)).write_text(str(os.getpid()))
            time.sleep(600)
            return iter(())

    if __name__ == "__main__":  # not again in a spawned worker
        logs, marks, method = sys.argv[1:]
        execute([Stage("s", [Sleep(marks)], 2)], ExecutorOptions(tasks=2, workers=2),
                Path(logs), start_method=method)
''')


def session_members(sid: int) -> list[int]:
    """The live (not zombie) processes of session `sid`."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):  # not a process, or it ended meanwhile
            continue
        state, _ppid, _pgrp, session = stat.rsplit(")", 1)[1].split()[:4]
        if int(session) == sid and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_sigkill_of_the_main_process_leaves_no_helper(tmp_path, method):
    """datatrove's Manager and Pool workers used to outlive a SIGKILLed main process, holding
    its stdout and stderr (`mixtune process ... | tee` never ended)."""
    (tmp_path / "sleeper.py").write_text(SLEEPER)
    marks = tmp_path / "marks"
    marks.mkdir()
    # A session of its own: its members are found after the main process is gone.
    main = subprocess.Popen([sys.executable, tmp_path / "sleeper.py", tmp_path / "logs", marks,
                             method], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(list(marks.iterdir())) == 2, "the tasks did not start"
        assert len(session_members(main.pid)) >= 4  # main, Manager, two workers
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 10
        while session_members(main.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_members(main.pid) == []
    finally:
        for pid in session_members(main.pid):  # left by a failure: not for the next tests
            os.kill(pid, signal.SIGKILL)



def _sigint_handler(_=None):
    from mixtune.executors import _no_interrupt

    return int(signal.getsignal(signal.SIGINT) is _no_interrupt)


def test_pool_workers_leave_ctrl_c_to_the_main_process():
    """Ctrl-C reaches every process of the job: a pool worker busy outside its task's own
    try (a swarm's worker in a checkpoint's rmtree) printed a KeyboardInterrupt traceback of
    its own. The workers ignore SIGINT; the main process ends the pool, and they die with it."""
    import multiprocess

    from mixtune.executors import _MortalMultiprocess

    ctx = _MortalMultiprocess(multiprocess).get_context("spawn")
    with ctx.Pool(1) as pool:
        assert pool.map(_sigint_handler, [0]) == [1]
