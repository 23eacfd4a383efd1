"""The examples work from a clone: the local corpus is made from this machine's Python and prepares."""

import subprocess
import sys
from pathlib import Path

from mixtune.data.prepare import PrepareOptions, prepare
from mixtune.data.store import open_dataset

EXAMPLES = Path(__file__).parents[1] / "examples"


def test_local_corpus_is_made_and_prepared(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "make_corpus.py"), str(tmp_path / "corpus"), "--max-mb", "0.05"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ds = open_dataset(prepare(PrepareOptions(
        sources=[str(tmp_path / "corpus")], out=str(tmp_path / "data"), vocab_size=400, seq_len=32)))
    # Licences live under /usr/share/common-licenses or in packages' dist-info: always some here.
    assert {"python_code", "c_headers", "package_docs", "licenses"} <= set(ds.domains)
    assert all(n > 32 for n in ds.counts("train").values())
