"""A short, bounded run of the tokenizer fuzz harness (the long runs are done by hand)."""
import os
import tempfile
import pathlib
import random
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
from fuzz_tokenizer import make_target  # noqa: E402

from pyllong import _core  # noqa: E402

REPO = HERE.parent.parent


def test_target_on_random_inputs(smollm2_path):
    target = make_target(_core.Tokenizer(smollm2_path))
    rng = random.Random(11)
    for _ in range(2000):
        target(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))


def test_atheris_bounded_run(smollm2_path, tmp_path):
    pytest.importorskip("atheris")
    env = dict(os.environ)  # the pyllong under test: installed, or PYTHONPATH=. in development
    r = subprocess.run([sys.executable, str(HERE / "fuzz_tokenizer.py"), smollm2_path, "-runs=3000", "-max_len=512",
                        "-seed=1", f"-artifact_prefix={tmp_path}/"],
                       capture_output=True, text=True, timeout=600, env=env,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 3000 runs" in r.stderr


def test_target_on_random_inputs_spm(tmp_path_factory):
    pytest.importorskip("sentencepiece")
    sys.path.insert(0, str(HERE.parent))
    from test_tokenizer_spm import sentencepiece_model, write_spm_gguf

    path = write_spm_gguf(sentencepiece_model(tmp_path_factory), tmp_path_factory.mktemp("fuzz") / "spm.gguf")
    target = make_target(_core.Tokenizer(_core.GGUFFile(path)))
    rng = random.Random(12)
    for _ in range(2000):
        target(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
