"""Every ```python block of README.md runs as written.

Each block runs, its text unchanged, in a fresh Python process in an empty folder that holds what
the README says the block starts from: a prepared dataset at `data/` and a finished reference run
at `runs/reference/`. Here they are the tests' generated dataset (5 domains, sequences of 32) and a
6-step `tiny` reference run on it (conftest's `synthetic_dataset` and `cli_proxy`), linked in, so a
block's steps take milliseconds. The blocks propose mixtures: every `domain_weights.json` they
write must be in the layout `mixtune doremi` writes.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mixtune.data.store import open_dataset

README = Path(__file__).parents[1] / "README.md"
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[tuple[int, str]]:
    """(line of the opening fence, the code) of each ```python block of README.md."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


BLOCKS = python_blocks()


def test_the_readme_has_its_python_blocks():
    # Guards the pattern: were it to match nothing, the test below would pass by running nothing.
    assert len(BLOCKS) >= 2 and all("import" in code for _, code in BLOCKS)


@pytest.mark.slow
@pytest.mark.parametrize("code", [code for _, code in BLOCKS],
                         ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_a_readme_block_runs_as_written(code, synthetic_dataset, cli_proxy, tmp_path):
    reference, _ = cli_proxy
    (tmp_path / "data").symlink_to(synthetic_dataset, target_is_directory=True)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "reference").symlink_to(reference, target_is_directory=True)
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = sorted(tmp_path.rglob("domain_weights.json"))
    assert written, "each block so far ends in a domain_weights.json: one that does not needs " \
                    "its own check here"
    for path in written:
        obj = json.loads(path.read_text())
        assert set(obj) == {"train_domain_weights", "eval_domain_weights"}, path
        assert list(obj["train_domain_weights"]) == open_dataset(synthetic_dataset).domains
