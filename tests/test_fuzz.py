"""A short, bounded fuzz run over the GGUF parser in CI (the long run is recorded in tests/fuzz/README.md)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(__file__)


def test_fuzz_gguf_parser_bounded(tmp_path):
    pytest.importorskip("atheris", reason="atheris is a test dependency (pip install .[test]); Linux only")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in os.listdir(os.path.join(HERE, "fuzz", "corpus", "gguf")):
        (corpus / name).write_bytes(open(os.path.join(HERE, "fuzz", "corpus", "gguf", name), "rb").read())
    env = dict(os.environ)  # the pyllong under test: installed, or PYTHONPATH=. in development
    res = subprocess.run(
        [sys.executable, os.path.join(HERE, "fuzz", "fuzz_gguf.py"), str(corpus), "-runs=20000", "-max_len=65536",
         "-timeout=10", "-seed=12345", f"-artifact_prefix={tmp_path}/"],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    tail = (res.stdout + res.stderr)[-3000:]
    assert res.returncode == 0, tail
    assert "Done 20000 runs" in tail or "DONE" in tail, tail
