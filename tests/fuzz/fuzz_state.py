"""Fuzz target for the state-file loader (Model.load_state_bytes: the native check_state and
the Python sampler section), on the tiny synthetic model (atheris).

    python tests/fuzz/fuzz_state.py tests/fuzz/corpus/state -runs=20000
    python tests/fuzz/fuzz_state.py tests/fuzz/corpus/state -max_total_time=600   # a long run

Input: one flag byte, then the candidate file. Flag bit 2 writes this model's fingerprint at
offset 16 and bit 1 re-stamps the SHA-256 trailer, so that mutated files get past the
fingerprint and checksum gates and reach the field checks behind them (a real attacker can
compute a checksum too). The native code is not coverage-instrumented (see README.md), so a
structure-aware mutator starts from the seeds and hits header fields with boundary values.

Only StateError may escape, and a refused file must leave the model unchanged; an accepted
one must leave it consistent (mirror == cache, n_past <= n_ctx) and able to evaluate. Anything
else — another exception, a crash, a hang — is a finding.
"""
import hashlib
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
N_CTX = 16
HEADER_FIELDS = [8, 12, 16, 48, 56, 64, 72, 80, 88]  # csrc/model/state.h


def make_model():
    import pyllong
    from pyllong.models.synthetic import cached_preset

    return pyllong.Model(cached_preset("tiny-llama-bpe"), n_ctx=N_CTX, n_threads=1, seed=0)


def make_target(model):
    """The function libFuzzer calls with each input; also callable directly from tests."""
    from pyllong import _core
    from pyllong.errors import StateError

    fp = _core.model_fingerprint(model.model_file)

    def one_input(data: bytes) -> None:
        if not data:
            return
        flags, body = data[0], data[1:]
        if flags & 2 and len(body) >= 48:
            body = body[:16] + fp + body[48:]
        if flags & 1 and len(body) >= 32:
            body = body[:-32] + hashlib.sha256(body[:-32]).digest()
        before = (model.cached_tokens, model.ctx.n_past, model._rng.bit_generator.state)
        try:
            model.load_state_bytes(body)
        except StateError:
            after = (model.cached_tokens, model.ctx.n_past, model._rng.bit_generator.state)
            if after != before:
                raise AssertionError("a refused state changed the model")
            return
        if not model.ctx.n_past == model.n_past <= N_CTX:
            raise AssertionError(f"inconsistent after load: cache {model.ctx.n_past}, mirror {model.n_past}")
        if model.n_past < N_CTX:
            if model.eval([1]).shape != (1, model.n_vocab):
                raise AssertionError("bad logits shape")
            model.ctx.truncate(model.n_past - 1)
            del model._tokens[-1]

    return one_input


_SEEDS: list = []
_INTERESTING = [0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 63, 64, 255, 256, 511, 512, 0x7C00, 0x7E00, 0xFFFF,
                0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2**32, 2**40, 2**63 - 1, 2**63, 2**64 - 1, 16 << 20]


def load_seeds(folder: str) -> list:
    seeds = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            seeds.append(f.read())
    return seeds


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    rng = random.Random(seed)
    if _SEEDS and (len(data) < 2 or rng.random() < 0.3):
        data = rng.choice(_SEEDS)
    flags, buf = data[0] if data else 3, bytearray(data[1:])
    if rng.random() < 0.1:
        flags = rng.randrange(4)
    for _ in range(rng.randint(1, 3)):
        if not buf:
            break
        op = rng.random()
        if op < 0.4:  # a header field (or any offset) gets a boundary value
            pos = rng.choice(HEADER_FIELDS) if rng.random() < 0.6 else rng.randrange(len(buf))
            width = rng.choice([1, 2, 4, 8])
            val = rng.choice(_INTERESTING) + rng.choice([0, 0, -1, 1])
            buf[pos:pos + width] = struct.pack("<Q", val % 2**64)[:width]
        elif op < 0.6:
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
        elif op < 0.7:
            del buf[rng.randrange(len(buf)):]
        elif op < 0.8:  # edit the JSON sampler section near the end
            pos = max(0, len(buf) - 32 - rng.randint(1, 200))
            buf[pos:pos + 1] = bytes([rng.choice(b'{}[]",:0123456789-e.truefalsnul ')])
        elif op < 0.9:
            pos, n = rng.randrange(len(buf)), rng.randint(1, 64)
            buf[pos:pos] = buf[pos:pos + n]
        else:
            pos = rng.randrange(len(buf))
            del buf[pos:pos + rng.randint(1, 64)]
    return bytes([flags]) + bytes(buf[:max(0, max_size - 1)])


def main() -> None:
    import atheris

    for a in sys.argv[1:]:
        if not a.startswith("-") and os.path.isdir(a):
            _SEEDS.extend(load_seeds(a))
    target = make_target(make_model())
    atheris.Setup(sys.argv, target, custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
