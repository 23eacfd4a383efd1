"""The public API: what `mixtune` exports, and that importing it stays light."""

import subprocess
import sys

import mixtune


def test_exports_resolve_and_match_all():
    assert set(mixtune.__all__) == {*mixtune._EXPORTS, "__version__"}
    for name in mixtune._EXPORTS:
        assert getattr(mixtune, name).__name__ == name


def test_import_does_not_load_torch():
    code = "import sys, mixtune; assert 'torch' not in sys.modules; mixtune.DoReMi; " \
           "assert 'torch' not in sys.modules"  # DoReMi itself imports torch only when used
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
