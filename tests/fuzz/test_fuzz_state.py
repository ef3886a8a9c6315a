"""A short, bounded run of the state-loader fuzz harness (the long runs are recorded in README.md)."""
import os
import pathlib
import random
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent
sys.path.insert(0, str(HERE))
import fuzz_state  # noqa: E402

CORPUS = HERE / "corpus" / "state"


@pytest.fixture(scope="module")
def target():
    return fuzz_state.make_target(fuzz_state.make_model())


def test_seeds_load(target):
    # The seeds are valid states of the fuzz model (else the fuzzer would start at the gates).
    m = fuzz_state.make_model()
    for seed in fuzz_state.load_seeds(CORPUS):
        data = seed[1:]
        fp = __import__("pyllong")._core.model_fingerprint(m.model_file)
        import hashlib
        data = data[:16] + fp + data[48:]
        data = data[:-32] + hashlib.sha256(data[:-32]).digest()
        m.load_state_bytes(data)
        assert m.ctx.n_past == m.n_past


def test_mutated_seeds_in_process(target):
    fuzz_state._SEEDS[:] = fuzz_state.load_seeds(CORPUS)
    rng = random.Random(21)
    data = fuzz_state._SEEDS[0]
    for i in range(3000):
        data = fuzz_state.mutate(data, 1 << 16, rng.randrange(2**32))
        target(data)
        if i % 50 == 0:
            data = rng.choice(fuzz_state._SEEDS)


def test_random_bytes_in_process(target):
    rng = random.Random(22)
    for _ in range(2000):
        target(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))


def test_atheris_bounded_run(tmp_path):
    pytest.importorskip("atheris", reason="atheris is a test dependency (pip install .[test]); Linux only")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for f in CORPUS.iterdir():
        (corpus / f.name).write_bytes(f.read_bytes())
    res = subprocess.run([sys.executable, str(HERE / "fuzz_state.py"), str(corpus), "-runs=5000", "-max_len=65536",
                          "-timeout=10", "-seed=4242", f"-artifact_prefix={tmp_path}/"],
                         capture_output=True, text=True, timeout=600, env=dict(os.environ), cwd=tmp_path)
    tail = (res.stdout + res.stderr)[-3000:]
    assert res.returncode == 0, tail
    assert "Done 5000 runs" in tail or "DONE" in tail, tail
