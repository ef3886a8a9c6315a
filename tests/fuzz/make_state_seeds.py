"""Writes the state-file seed corpus (tests/fuzz/corpus/state) from the tiny synthetic model.
Each seed is a flag byte (3: re-stamp fingerprint and checksum, see fuzz_state.py) + a state."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fuzz_state import make_model  # noqa: E402

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "state")
os.makedirs(out, exist_ok=True)
m = make_model()
seeds = {"empty": m.state_bytes()}
m.eval([1, 2, 3])
seeds["three_tokens"] = m.state_bytes()
m.generate("hello world", max_tokens=4, temperature=1.0)
seeds["after_generate"] = m.state_bytes()
for name, data in seeds.items():
    with open(os.path.join(out, name + ".state.seed"), "wb") as f:
        f.write(b"\x03" + data)
    print(name, len(data) + 1)
