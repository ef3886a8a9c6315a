"""Compare llama.cpp's logits with the numpy reference (tests/reference/forward.py) on the
synthetic presets. A one-off check of the reference itself, not a unit test.

Build the peer library (../shared/peer/build_llamacpp.sh, or just its `llama` target), then:
    L=~/.cache/pyllong-peer/llama-cpp-python-0.3.36/src/vendor/llama.cpp
    g++ -O1 -std=c++17 tools/peer/dump_logits.cpp -I$L/include -I$L/ggml/include -L$L/build/bin \
        -lllama -lggml -lggml-base -Wl,-rpath,$L/build/bin -o /tmp/dump_logits
    PYTHONPATH=. python tools/peer/compare_reference.py /tmp/dump_logits

Measured (llama.cpp 0.3.36, CPU, f16 KV cache): F32/F16 weights agree to < 5e-3 on logits of
std ~1 for llama/phi2/phi3; quantized weights differ by ~0.05-0.15 because llama.cpp also
quantizes the activations (Q8 dot products); tiny-mistral differs past its window because
llama.cpp ignores llama.attention.sliding_window (and disables SWA for phi3).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))

from pyllong.models import synthetic as syn  # noqa: E402
from reference.forward import reference_logits  # noqa: E402

TOKENS = [5, 300, 17, 42, 260, 261, 99, 3, 400, 7, 8, 9, 10, 11, 300, 300, 12, 13, 14, 15, 16, 270, 280, 290, 1]
PRESETS = ["tiny-llama-bpe", "tiny-llama-spm", "tiny-mistral", "tiny-phi2", "tiny-phi3"]


def peer_logits(exe: str, path: str, tokens: list[int]) -> np.ndarray:
    out = path + ".logits"
    subprocess.run([exe, path, out] + [str(t) for t in tokens], check=True, capture_output=True)
    return np.fromfile(out, dtype=np.float32).reshape(len(tokens), -1).astype(np.float64)


def main(exe: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        for preset in PRESETS:
            for qtype in ("F32", "F16", "Q8_0", "Q4_0"):
                path = syn.build_preset(preset, os.path.join(d, f"{preset}-{qtype}.gguf"), qtype=qtype)
                diff = np.abs(peer_logits(exe, path, TOKENS) - reference_logits(path, TOKENS))
                print(f"{preset:15s} {qtype:5s} max |llama.cpp - reference| = {diff.max():.2e}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dump_logits")
