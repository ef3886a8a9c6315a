"""Fuzz target for the native GGUF parser and model validator (atheris).

    python tests/fuzz/fuzz_gguf.py tests/fuzz/corpus/gguf -runs=20000
    python tests/fuzz/fuzz_gguf.py tests/fuzz/corpus/gguf -max_total_time=3600   # a long run

The native parser is not coverage-instrumented (gcc cannot emit libFuzzer's
counters), so a coverage-blind libFuzzer would shrink every input to one byte and stop
at the magic check. A structure-aware custom mutator keeps inputs near valid files:
it starts from a seed and overwrites integer fields with boundary values, flips bits,
truncates, splices and duplicates chunks.

Only pyllong.GGUFError (and the ModelFile's typed errors) may escape the parser; anything
else — another exception, a crash, an abort, a hang — is a finding.
"""
import os
import random
import struct
import sys

import atheris

with atheris.instrument_imports():
    import pyllong


def one_input(data: bytes) -> None:
    try:
        f = pyllong.GGUFFile.from_bytes(data)
    except pyllong.GGUFError:
        return
    # A file that parses must be fully readable through the Python face.
    md = f.metadata
    for v in md.values():
        if hasattr(v, "__len__") and not isinstance(v, (str, bytes)) and len(v):
            v[len(v) - 1]
    for t in f.tensors.values():
        t.data[-1:].tobytes()
    try:
        pyllong.ModelFile.from_bytes(data)
    except pyllong.GGUFError:
        pass


_SEEDS: list = []
_INTERESTING = [0, 1, 2, 3, 4, 7, 8, 13, 31, 32, 63, 64, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000,
                0xFFFFFFFF, 2**32, 2**40, 2**62, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]


def _load_seeds(argv) -> None:
    for a in argv[1:]:
        if not a.startswith("-") and os.path.isdir(a):
            for name in sorted(os.listdir(a)):
                with open(os.path.join(a, name), "rb") as f:
                    _SEEDS.append(f.read())


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if _SEEDS and (len(data) < 24 or rng.random() < 0.3):
        data = rng.choice(_SEEDS)
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            break
        op = rng.random()
        pos = rng.randrange(len(buf))
        if op < 0.45:  # an integer field gets a boundary value
            width = rng.choice([1, 4, 4, 8, 8])
            val = rng.choice(_INTERESTING) + rng.choice([0, 0, -1, 1])
            enc = struct.pack("<Q", val % 2**64)[:width]
            buf[pos:pos + width] = enc
        elif op < 0.65:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op < 0.75:
            del buf[rng.randrange(len(buf)):]
        elif op < 0.85:
            n = rng.randint(1, 64)
            del buf[pos:pos + n]
        elif op < 0.95:
            n = rng.randint(1, 64)
            buf[pos:pos] = buf[pos:pos + n]
        else:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    return bytes(buf[:max_size])


def main() -> None:
    _load_seeds(sys.argv)
    atheris.Setup(sys.argv, one_input, custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
