"""A short soak (tools/soak.py): random options and random-byte prompts, no crash, no untyped
error, RSS flat. The long run is recorded in BENCHMARKS.md."""
import json
import os
import subprocess
import sys

import pytest

from pyllong import _core

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.skipif(not hasattr(_core, "Context"), reason="native forward pass not built")
def test_short_soak():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak.py"), "--calls", "600", "--seed", "3",
                          "--warmup", "100", "--every", "50", "--max-growth-mb", "16"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["calls"] == 600 and summary["ok"] > 300 and summary["tokens"] > 1000
    assert summary["state_round_trips"] > 0
