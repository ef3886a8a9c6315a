"""Model.save_state / load_state: a restored model continues exactly where the saved one was,
and every damaged or foreign state file is refused with StateError, leaving the model as it was.

The checksum is checked against hashlib (an independent SHA-256); forged files re-stamp it with
hashlib so that the field checks behind the checksum are reached too.
"""
import hashlib
import os
import struct

import numpy as np
import pytest

import pyllong
from pyllong import _core
from pyllong.errors import StateError
from pyllong.models.synthetic import cached_preset

pytestmark = pytest.mark.skipif(not hasattr(_core, "save_state"), reason="native state functions not built")

HEADER = 96  # csrc/model/state.h
PROMPT = "The quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def path():
    return cached_preset("tiny-llama-bpe")


def make(path, **kw):
    kw.setdefault("n_ctx", 64)
    return pyllong.Model(path, n_threads=1, **kw)


def restamp(blob: bytes) -> bytes:
    return blob[:-32] + hashlib.sha256(blob[:-32]).digest()


def patch(blob: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return restamp(bytes(b))


@pytest.fixture(scope="module")
def saved(path):
    """A model after a prompt and a few sampled tokens, and its state."""
    m = make(path, seed=5)
    m.generate(PROMPT, max_tokens=6, temperature=1.0)
    return m, m.state_bytes()


def test_layout_and_checksum(saved):
    m, blob = saved
    assert blob[:8] == b"PYLLSTAT"
    assert struct.unpack_from("<I", blob, 8)[0] == 1
    assert hashlib.sha256(blob[:-32]).digest() == blob[-32:]
    n_used, = struct.unpack_from("<Q", blob, 64)
    assert n_used == m.n_past == len(m.cached_tokens)
    assert list(np.frombuffer(blob, "<i4", n_used, HEADER)) == m.cached_tokens
    assert list(np.frombuffer(blob, "<i4", n_used, HEADER + 4 * n_used)) == list(range(n_used))


def test_restore_gives_identical_next_logits_and_samples(path):
    a = make(path, seed=5)
    a.generate(PROMPT, max_tokens=6, temperature=1.0)
    blob = a.state_bytes()
    b = make(path, seed=123)            # a fresh model with another generator
    b.load_state_bytes(blob)
    assert b.cached_tokens == a.cached_tokens
    nxt = [7, 8, 9]
    la, lb = a.eval(nxt), b.eval(nxt)
    assert np.array_equal(la, lb)
    # Independent of the cache: a third model evaluating the whole sequence from scratch.
    c = make(path)
    lc = c.eval(a.cached_tokens[:-3] + nxt)[-3:]
    np.testing.assert_allclose(la, lc, rtol=1e-4, atol=1e-4)
    # The sampler's generator came back too: unseeded sampling continues identically.
    b.load_state_bytes(blob)
    a.load_state_bytes(blob)
    ga = a.generate(a.detokenize(a.cached_tokens), max_tokens=10, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    gb = b.generate(b.detokenize(b.cached_tokens), max_tokens=10, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0)
    assert ga.tokens == gb.tokens


def test_save_and_load_file_atomically(path, tmp_path, saved):
    m, blob = saved
    f = tmp_path / "s.state"
    f.write_bytes(b"old contents")
    m.save_state(f)
    assert f.read_bytes() == m.state_bytes()
    assert sorted(os.listdir(tmp_path)) == ["s.state"]  # no temporary left behind
    fresh = make(path)
    fresh.load_state(str(f))
    assert fresh.cached_tokens == m.cached_tokens


def test_a_larger_context_accepts_the_state(path, saved):
    m, blob = saved
    big = make(path, n_ctx=200)
    big.load_state_bytes(blob)
    np.testing.assert_allclose(big.eval([3]), make(path).eval(m.cached_tokens + [3])[-1:], rtol=1e-4, atol=1e-4)


def test_empty_state_round_trips(path):
    m = make(path)
    blob = m.state_bytes()
    other = make(path)
    other.eval([1, 2, 3])
    other.load_state_bytes(blob)
    assert other.n_past == 0 and other.ctx.n_past == 0


def _refused(path, blob, match, **kw):
    """blob is refused with StateError matching `match`, and the model is unchanged."""
    m = make(path, **kw)
    m.eval([1, 2, 3, 4])
    rng_before = m._rng.bit_generator.state
    with pytest.raises(StateError, match=match):
        m.load_state_bytes(blob)
    assert m.cached_tokens == [1, 2, 3, 4] and m.ctx.n_past == 4
    assert m._rng.bit_generator.state == rng_before
    ref = make(path, **kw)
    np.testing.assert_allclose(m.eval([5]), ref.eval([1, 2, 3, 4, 5])[-1:], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("cut", [0, 3, 24, HEADER, HEADER + 40, -33, -1])
def test_truncated_is_refused(path, saved, cut):
    _, blob = saved
    _refused(path, blob[:cut], "truncated|at least")


@pytest.mark.parametrize("junk", [b"<!DOCTYPE html><html>" + b" " * 200, b"\xff\xd8\xff\xe0" + bytes(200),
                                  b"GGUF" + bytes(200)])
def test_wrong_magic_is_refused(path, junk):
    _refused(path, junk, "not a pyllong state file")


@pytest.mark.parametrize("version", [0, 2, 0x01000000])
def test_other_versions_are_refused(path, saved, version):
    _refused(path, patch(saved[1], 8, "<I", version), "version")


@pytest.mark.parametrize("where", [20, 70, HEADER + 2, HEADER + 300, -40, -1])
def test_flipped_bit_is_refused(path, saved, where):
    b = bytearray(saved[1])
    b[where] ^= 0x10
    _refused(path, bytes(b), "checksum")


def test_another_model_is_refused(path, saved):
    # Same architecture and shapes, other weights: only the fingerprint tells them apart.
    other = cached_preset("tiny-llama-bpe", seed=1)
    assert _core.model_fingerprint(_core.ModelFile(other)) != _core.model_fingerprint(_core.ModelFile(path))
    _refused(other, saved[1], "another model")


@pytest.fixture(scope="module")
def path32():
    """head_dim 32, which a q8_0 cache needs."""
    return cached_preset("tiny-llama-bpe", n_head=2, n_head_kv=2)


def test_other_kv_type_is_refused(path32):
    a = make(path32)
    a.eval([1, 2, 3])
    _refused(path32, a.state_bytes(), "f16 KV cache.*q8_0", kv_type="q8_0")


def test_more_tokens_than_n_ctx_is_refused(path, saved):
    m, blob = saved
    _refused(path, blob, f"holds {m.n_past} tokens.*n_ctx 8", n_ctx=8)


def test_self_extend_mismatch_is_refused(path, saved):
    _refused(path, saved[1], "self_extend", self_extend=(2, 32))


# Forged files: a valid checksum over a bad field.
def test_forged_fields_are_refused(path, saved):
    m, blob = saved
    n = m.n_past
    _refused(path, patch(blob, 12, "<I", 7), "unknown kv type")
    _refused(path, patch(blob, 48, "<Q", 3), "layers")
    _refused(path, patch(blob, 64, "<Q", n + 1), "size")
    _refused(path, patch(blob, 64, "<Q", 2**63), "n_ctx")
    _refused(path, patch(blob, 88, "<Q", 2**64 - 1), "extra section")
    _refused(path, patch(blob, 88, "<Q", 5), "size")
    _refused(path, patch(blob, HEADER + 4, "<i", -1), "token id -1")
    _refused(path, patch(blob, HEADER + 4, "<i", m.n_vocab), "token id")
    _refused(path, patch(blob, HEADER + 4 * n + 8, "<i", 7), "position")
    _refused(path, patch(blob, HEADER + 8 * n, "<H", 0x7e00), "Inf or NaN")  # an f16 NaN in layer 0's K


@pytest.mark.parametrize("extra, match", [
    (b"not json", "JSON"), (b"\xff\xfe", "JSON"), (b"[]", "unsupported"), (b'{"v": 2}', "unsupported"),
    (b'{"v": 1, "rng": {"bit_generator": "MT19937"}, "prompt_len": 0}', "generator"),
    (b'{"v":1,"rng":{"bit_generator":"PCG64","state":{"state":-1,"inc":1},"has_uint32":0,"uinteger":0},'
     b'"prompt_len":0}', "rng state"),
    (b'{"v":1,"rng":{"bit_generator":"PCG64","state":{"state":1,"inc":1},"has_uint32":0,"uinteger":0},'
     b'"prompt_len":999}', "prompt_len"),
])
def test_forged_sampler_section_is_refused(path, saved, extra, match):
    m, blob = saved
    old_len, = struct.unpack_from("<Q", blob, 88)
    body = blob[:-32 - old_len] + extra
    body = body[:88] + struct.pack("<Q", len(extra)) + body[96:]
    _refused(path, restamp(body + bytes(32)), match)


def test_oversize_and_non_bytes_are_refused(path, tmp_path):
    m = make(path, n_ctx=8)
    with pytest.raises(StateError, match="larger than any"):
        m.load_state_bytes(b"PYLLSTAT" + bytes(_core.state_max_bytes(m.ctx)))
    big = tmp_path / "big.state"
    with open(big, "wb") as f:
        f.truncate(_core.state_max_bytes(m.ctx) + 1)  # sparse: refused before it is read
    with pytest.raises(StateError, match="larger than any"):
        m.load_state(big)
    with pytest.raises(StateError, match="bytes"):
        m.load_state_bytes("PYLLSTAT")


def test_q8_0_and_self_extend_round_trip(path32):
    path = path32
    for kw in ({"kv_type": "q8_0"}, {"self_extend": (2, 32)}):
        a = make(path, **kw)
        a.eval(list(range(1, 40)))
        b = make(path, **kw)
        b.load_state_bytes(a.state_bytes())
        assert np.array_equal(a.eval([41, 42]), b.eval([41, 42])), kw


def test_state_after_reset_round_trips(path):
    # Found by tools/soak.py: the last prompt's length outlived reset() and was saved as
    # longer than the (now empty) cache, so the model refused its own state.
    m = make(path)
    m.generate(PROMPT, max_tokens=2)
    m.reset()
    m.load_state_bytes(m.state_bytes())
    m.eval([1, 2])
    m.load_state_bytes(m.state_bytes())
    assert m.cached_tokens == [1, 2]


def test_llama_compat_save_and_load_state(path):
    # llama-cpp-python's shape: save_state() -> LlamaState, load_state(state).
    a = pyllong.Llama(path, n_ctx=64, n_threads=1, verbose=False)
    a.eval([1, 2, 3])
    st = a.save_state()
    assert st.llama_state_size == len(st.llama_state) > 96
    a.eval([4, 5])
    a.load_state(st)
    assert a.cached_tokens == [1, 2, 3]
    with pytest.raises(StateError):
        a.load_state(pyllong.llama_compat.LlamaState(st.llama_state[:-1]))
