"""One process at a time on an output (lock.py): a second one refuses at once, naming the first;
a dead holder's lock is taken over; the holder's own children and torchrun's other ranks pass."""

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mixtune import lock
from mixtune.errors import UserError

REPO = Path(__file__).parents[1]

# A process that takes the lock (beside the folder with a second argument), says so, and waits.
HOLD = """
import sys, time
from mixtune import lock
with lock.hold(sys.argv[1], beside=len(sys.argv) > 2):
    print("held", flush=True)
    time.sleep(120)
"""

# A process that tries the lock: exits 0 if it got it, else prints the refusal and exits 3.
TRY = """
import sys
from mixtune import lock
from mixtune.errors import UserError
try:
    with lock.hold(sys.argv[1]):
        pass
except UserError as e:
    print(e)
    sys.exit(3)
"""


def python(code: str, *args, env=None, **kw):
    return [sys.executable, "-c", code, *map(str, args)], {"cwd": REPO, "env": env, **kw}


@pytest.fixture
def holder(tmp_path):
    """Start a process holding a lock (on a folder, or beside it); stopped at the end."""
    procs = []

    def start(folder: Path, beside: bool = False) -> subprocess.Popen:
        cmd, kw = python(HOLD, folder, *(["beside"] if beside else []))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **kw)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def refusal(folder, pid: int) -> str:
    return (rf"{re.escape(str(folder))}: in use by pid {pid} on host {socket.gethostname()} since \S+ \S+ "
            r"\(.*\); wait for it to finish, or stop it\.")


def test_a_second_process_is_refused_naming_the_holder(tmp_path, holder):
    proc = holder(tmp_path)
    record = json.loads((tmp_path / lock.LOCK_FILE).read_text())
    assert record["pid"] == proc.pid and record["host"] == socket.gethostname()
    with pytest.raises(UserError, match=refusal(tmp_path, proc.pid)):
        lock.Lock(tmp_path).acquire()
    cmd, kw = python(TRY, tmp_path, capture_output=True, text=True)
    tried = subprocess.run(cmd, **kw)
    assert tried.returncode == 3 and f"in use by pid {proc.pid}" in tried.stdout

    proc.kill()
    proc.wait()
    with lock.hold(tmp_path):  # free again
        assert (tmp_path / lock.LOCK_FILE).is_file()
    assert not (tmp_path / lock.LOCK_FILE).exists()  # removed on release


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path, holder, caplog):
    proc = holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / lock.LOCK_FILE).is_file()  # left behind, but no longer locked
    with caplog.at_level(logging.INFO, logger="mixtune.lock"), lock.hold(tmp_path):
        record = json.loads((tmp_path / lock.LOCK_FILE).read_text())
        assert record["pid"] == os.getpid()
    assert f"taking over the lock left by pid {proc.pid} " in caplog.text


def test_the_holders_children_and_torchruns_other_ranks_are_not_refused(tmp_path):
    cmd, kw = python(TRY, tmp_path, capture_output=True, text=True)
    with lock.hold(tmp_path):
        assert str(lock.lock_file(tmp_path)) in os.environ[lock.HELD]
        # A child (mixtune run's torchrun relaunch) inherits the lock.
        assert subprocess.run(cmd, **kw).returncode == 0
        with lock.hold(tmp_path):  # and so does this process, again
            pass
        # A rank other than 0 leaves the locking to rank 0.
        rank1 = {**os.environ, "WORLD_SIZE": "2", "RANK": "1", lock.HELD: ""}
        assert subprocess.run(cmd, **{**kw, "env": rank1}).returncode == 0
        # Any other process is refused: the nested hold above kept the lock.
        stranger = {**os.environ, lock.HELD: ""}
        tried = subprocess.run(cmd, **{**kw, "env": stranger})
        assert tried.returncode == 3 and f"pid {os.getpid()}" in tried.stdout
    assert lock.HELD not in os.environ or str(lock.lock_file(tmp_path)) not in os.environ[lock.HELD]


def test_a_dropped_lock_is_released(tmp_path):
    held = lock.Lock(tmp_path / "new").acquire()  # the folder is made
    assert (tmp_path / "new" / lock.LOCK_FILE).is_file()
    del held
    assert not (tmp_path / "new" / lock.LOCK_FILE).exists()
    with lock.hold(tmp_path / "new"):
        pass


def test_beside_locks_next_to_an_output_without_making_it(tmp_path, holder):
    out = tmp_path / "ds"
    assert lock.lock_file(out, beside=True) == tmp_path / ".ds.mixtune.lock"
    proc = holder(out, beside=True)
    assert not out.exists()
    with pytest.raises(UserError, match=refusal(out, proc.pid)):
        lock.Lock(out, beside=True).acquire()
    with lock.hold(out):  # another lock file: not this one
        pass


def test_prepare_and_process_into_an_output_in_use_are_refused(tmp_path, holder):
    pytest.importorskip("datatrove")
    from mixtune.data.config import PrepareOptions
    from mixtune.data.prepare import prepare
    from mixtune.process.config import ProcessOptions
    from mixtune.process.run import process
    from tests.process.planted import make_corpus

    make_corpus(tmp_path / "raw", clean=12)
    out = tmp_path / "out"
    proc = holder(out, beside=True)
    with pytest.raises(UserError, match=refusal(out, proc.pid)):
        prepare(PrepareOptions(sources=[str(tmp_path / "raw")], out=str(out), vocab_size=300))
    with pytest.raises(UserError, match=refusal(out, proc.pid)):
        process(ProcessOptions([str(tmp_path / "raw")], str(out), workers=1))
    assert not out.exists() and not (tmp_path / "out.work").exists()


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not path.exists():
        assert proc.poll() is None, "the first run ended before its lock was seen"
        assert time.time() < deadline
        time.sleep(0.01)


def run_second(cmd: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.time()
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO)
    return second, time.time() - t0


@pytest.mark.slow
def test_two_trainings_into_one_folder(synthetic_dataset, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mixtune", "train", "--data", str(synthetic_dataset), "--out",
           str(out), "--scale", "tiny", "--batch-size", "8", "--eval-max-tokens-per-domain", "64"]
    first = subprocess.Popen([*cmd, "--steps", "5000"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, cwd=REPO)
    try:
        wait_for(out / lock.LOCK_FILE, first)
        second, _ = run_second([*cmd, "--steps", "5000"])
        assert first.poll() is None, "the first training ended before the second was refused"
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"{out}: in use by pid {first.pid} " in second.stderr
        assert "wait for it to finish, or stop it." in second.stderr
    finally:
        first.kill()
        first.wait()


@pytest.mark.slow
def test_two_runs_of_one_config(tmp_path):
    """The second `mixtune run` refuses at once; the first finishes undisturbed."""
    output = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({
        "output": str(output),
        "data": {"synthetic": {"train_tokens": 12_000, "validation_tokens": 1_000,
                               "doc_len": 64, "seq_len": 32}},
        "proxy": {"scale": "tiny", "steps": 4, "batch_size": 8},
        "main": {"scale": "tiny", "steps": 30, "batch_size": 8},
        "mixtures": ["reference", "uniform"], "seeds": [0],
    }))
    cmd = [sys.executable, "-m", "mixtune", "run", str(config)]
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, cwd=REPO)
    try:
        wait_for(output / lock.LOCK_FILE, first)
        second, seconds = run_second(cmd)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"{output}: in use by pid {first.pid} " in second.stderr
        assert seconds < 30  # at once: before any stage (no torch import)
        first.wait(timeout=600)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, log.read_text()[-3000:]
    assert (output / "summary.json").is_file() and not (output / lock.LOCK_FILE).exists()


def test_a_folder_the_lock_made_goes_with_it_if_nothing_was_written(tmp_path):
    with lock.hold(tmp_path / "new" / "out"):
        assert (tmp_path / "new" / "out" / lock.LOCK_FILE).is_file()
    assert not (tmp_path / "new" / "out").exists()  # refused before writing: no empty output
    with lock.hold(tmp_path / "used"):
        (tmp_path / "used" / "summary.json").write_text("{}")
    assert (tmp_path / "used" / "summary.json").is_file()
    (tmp_path / "empty").mkdir()
    with lock.hold(tmp_path / "empty"):
        pass
    assert (tmp_path / "empty").is_dir()  # the user's own folder stays, empty or not


def test_a_refused_run_leaves_no_empty_output(tmp_path):
    from mixtune.pipeline import run_pipeline
    from mixtune.synthetic import write_dataset

    data = write_dataset(tmp_path / "data", train_tokens=4096, validation_tokens=512, seq_len=16,
                         vocab=32)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump({"output": str(tmp_path / "out"), "data": {"dataset": str(data)},
                                   "target": "wiki", "seeds": [0]}))
    with pytest.raises(UserError, match="wiki"):
        run_pipeline(cfg)
    assert not (tmp_path / "out").exists()
