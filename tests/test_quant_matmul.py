"""matmul / dot kernels of every format on every SIMD path this CPU supports, against a
float64 numpy oracle: gguf-dequantized weights times the 8-bit-quantized activation.

Tolerance: each kernel sums, in float32, one exact integer dot product per block scaled
by float products of the scales (a few roundings each), so by the standard bound on
recursive summation |y - y_ref| <= (n_terms + 4) * 2^-24 * sum_i |w_i a_i| with n_terms
the number of blocks per row (elements for the float formats). The bound is strict
enough that a wrong nibble, scale or sign in any block fails it."""
import os
import subprocess
import tempfile
import sys

import numpy as np
import pytest

from pyllong import _core, InvalidArgumentError
from quant_helpers import ALL_TYPES, geometry, gguf_dequantize, random_blocks, seed_of

PATHS = _core.simd_paths()
EPS32 = 2.0 ** -24


def make_weights(name, n_out, n_in, rng, kind):
    """kind 'quantized': realistic (gaussian rows quantized by us); 'raw': random blocks."""
    if kind == "quantized":
        w = rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.05
        return _core.quantize(name, w)
    bs, ts = geometry(name)
    if bs == 1:  # float formats: random bits would overflow the sums; spread exponents instead
        w = rng.standard_normal(n_out * n_in) * np.exp2(rng.integers(-8, 8, n_out * n_in))
        return _core.quantize(name, w.astype(np.float32).reshape(n_out, n_in))
    return random_blocks(name, n_out * n_in // bs, rng, scale_exp_range=(-12, -4)).ravel()


def oracle(name, raw, n_out, n_in, x):
    wd = gguf_dequantize(name, raw, n_out * n_in).reshape(n_out, n_in).astype(np.float64)
    xa = np.stack([_core.quantize_activation(name, row) for row in x]).astype(np.float64)
    n_terms = n_in // geometry(name)[0]
    return xa @ wd.T, (n_terms + 4) * EPS32 * (np.abs(xa) @ np.abs(wd).T)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("name", ALL_TYPES)
@pytest.mark.parametrize("kind", ["quantized", "raw"])
def test_matmul_matches_float64_oracle(path, name, kind):
    rng = np.random.default_rng(seed_of(path, name, kind))
    n_out, n_in = 37, 768  # odd row count; 3 K-quant super-blocks, 24 legacy blocks
    raw = make_weights(name, n_out, n_in, rng, kind)
    for n_tok in (1, 5, 33):  # GEMV, small batch, more than one token tile
        x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
        x[0, :32] *= 100  # a block of large activations
        y = _core.matmul(name, raw, n_out, n_in, x, n_threads=2, simd=path)
        ref, bound = oracle(name, raw, n_out, n_in, x)
        assert y.shape == (n_tok, n_out)
        err = np.abs(y - ref)
        assert (err <= bound + 1e-30).all(), f"max err/bound {np.max(err / (bound + 1e-30)):.3g}"


# ---- the row-interleaved (repacked) layout of quant/repack.h -------------------------
# Paths with kernels over it and the types they cover ([] on a CPU without AVX2: the
# tests below then have nothing to run).
PACKED = [(p, t) for p in PATHS for t in _core.packed_types(p)]
# Offset subtracted in float by the packed kernels (Q4_0: levels q in [0, 16) with x = d (q - 8);
# Q8_0 on the VNNI path: q + 128 as unsigned bytes): d_w (d_a sum(q a) - off s_a).
PACKED_OFFSET = {"Q4_0": 8, "Q8_0": 128}


def packed_bound(name, raw, n_out, n_in, xa, base_bound):
    """The oracle's bound plus, for the formats whose packed kernels add two float terms that
    may cancel (an offset subtracted, or Q4_1's min added apart from the levels), the rounding
    of those terms: each is at most off * |d_w| * sum|a| + |w a| per block (Q4_1: 15 |d_w| and
    |m_w| times sum|a|), rounded a few times (4 eps)."""
    off = PACKED_OFFSET.get(name)
    if off is None and name != "Q4_1":
        return base_bound
    bs, ts = geometry(name)
    blocks = np.ascontiguousarray(raw).reshape(-1, ts)

    def per_element(col):  # (n_out, n_in): the |fp16 field| at byte col of each element's block
        f = np.abs(blocks[:, col:col + 2].copy().view(np.float16).astype(np.float64))
        return np.repeat(f.reshape(n_out, n_in // bs), bs, axis=1)

    if name == "Q4_1":  # d_w d_a sum(q a) + m_w s_a: two terms up to 15 |d| and |m| per |a|, rounded apart
        return base_bound + 4 * EPS32 * (np.abs(xa) @ (15 * per_element(0) + per_element(2)).T)
    return base_bound + 4 * EPS32 * (2 * off * np.abs(xa) @ per_element(0).T)


@pytest.mark.parametrize("path,name", PACKED)
@pytest.mark.parametrize("kind", ["quantized", "raw"])
def test_packed_matmul_matches_float64_oracle(path, name, kind):
    """Row counts around the 8-row groups (the last group padded), one and several blocks
    per row, 1..33 tokens (every token-tile remainder of the kernels: 8, 4, 2, 1), on 1 and
    2 threads; against gguf's dequantization, independently of the rows kernels."""
    rng = np.random.default_rng(seed_of("packed", path, name, kind))
    bs = geometry(name)[0]
    pool = _core.ThreadPool(2)
    for n_out in (1, 7, 8, 13, 37):
        for n_in in (bs, 3 * bs):
            raw = make_weights(name, n_out, n_in, rng, kind)
            wd = gguf_dequantize(name, raw, n_out * n_in).reshape(n_out, n_in).astype(np.float64)
            for n_tok in (1, 2, 3, 5, 8, 15, 33):
                x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
                x[0, :32] *= 100  # a block of large activations
                xa = np.stack([_core.quantize_activation(name, row) for row in x]).astype(np.float64)
                ref = xa @ wd.T
                bound = packed_bound(name, raw, n_out, n_in, xa,
                                     (n_in // bs + 4) * EPS32 * (np.abs(xa) @ np.abs(wd).T))
                for nt in (1, 2):
                    y = _core.matmul(name, raw, n_out, n_in, x, n_threads=nt, simd=path, pool=pool, repack=True)
                    err = np.abs(y - ref)
                    assert (err <= bound + 1e-30).all(), \
                        f"{n_out}x{n_in} n_tok={n_tok} threads={nt}: max err/bound {np.max(err / (bound + 1e-30)):.3g}"


@pytest.mark.parametrize("path,name", PACKED)
def test_packed_and_rows_layouts_agree(path, name):
    """A model-sized shape (several 8-row groups per work item, 2 threads) through both
    layouts: within the sum of their bounds of each other."""
    rng = np.random.default_rng(seed_of("layouts", path, name))
    n_out, n_in = 203, 2048
    raw = make_weights(name, n_out, n_in, rng, "quantized")
    x = rng.standard_normal((9, n_in)).astype(np.float32)
    _, bound = oracle(name, raw, n_out, n_in, x)
    yr = _core.matmul(name, raw, n_out, n_in, x, n_threads=2, simd=path, repack=False)
    yp = _core.matmul(name, raw, n_out, n_in, x, n_threads=2, simd=path, repack=True)
    assert np.abs(yr - yp).max() <= 8 * bound.max()


def test_packed_types_only_where_kernels_exist():
    assert _core.packed_types("scalar") == []
    for p in PATHS:
        assert set(_core.packed_types(p)) <= {"Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"}


@pytest.mark.parametrize("path", [p for p in PATHS if p != "scalar"])
@pytest.mark.parametrize("name", ALL_TYPES)
def test_simd_path_matches_scalar(path, name):
    rng = np.random.default_rng(11)
    n_out, n_in = 19, 4096
    raw = make_weights(name, n_out, n_in, rng, "quantized")
    x = rng.standard_normal((3, n_in)).astype(np.float32)
    ys = _core.matmul(name, raw, n_out, n_in, x, simd="scalar")
    yp = _core.matmul(name, raw, n_out, n_in, x, simd=path)
    _, bound = oracle(name, raw, n_out, n_in, x)
    assert (np.abs(ys - yp) <= 2 * bound).all()


def test_gemv_vector_shape_and_thread_count_invariance():
    rng = np.random.default_rng(5)
    raw = _core.quantize("Q4_1", rng.standard_normal((200, 576)).astype(np.float32))
    x = rng.standard_normal(576).astype(np.float32)
    pool = _core.ThreadPool(3)
    y1 = _core.matmul("Q4_1", raw, 200, 576, x, n_threads=1, pool=pool)
    for _ in range(20):  # the persistent pool is reused call after call
        y3 = _core.matmul("Q4_1", raw, 200, 576, x, n_threads=3, pool=pool)
        np.testing.assert_array_equal(y1, y3)  # each output is one dot product: exact
    assert y1.shape == (200,)


def test_activation_quantization_is_absmax_int8():
    """Independent check of the activation format the oracle relies on."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal(512).astype(np.float32)
    for name, blk in (("Q4_1", 32), ("Q6_K", 256)):
        xa = _core.quantize_activation(name, x).reshape(-1, blk)
        xb = x.reshape(-1, blk)
        d = np.abs(xb).max(axis=1, keepdims=True) / 127
        q = xa / d
        assert np.allclose(q, np.round(q), atol=1e-3) and np.abs(np.round(q)).max() <= 127
        assert (np.abs(xa - xb) <= d * (0.5 + 1e-5)).all()


@pytest.mark.parametrize("path", PATHS)
def test_activation_quantization_identical_on_every_path(path):
    """The oracle uses the activation values of the default path; every path must produce
    the same bytes (same rounding), so one oracle serves all."""
    rng = np.random.default_rng(9)
    x = (rng.standard_normal(1024) * np.exp2(rng.integers(-20, 20, 1024))).astype(np.float32)
    x[:32] = 0  # an all-zero block
    for name in ("Q8_0", "Q4_K"):
        a = _core.quantize_activation(name, x, simd="scalar")
        b = _core.quantize_activation(name, x, simd=path)
        np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


def test_bad_arguments_raise_typed_errors():
    raw = np.zeros(18 * 2, np.uint8)
    with pytest.raises(InvalidArgumentError):
        _core.matmul("Q4_0", raw, 3, 32, np.zeros(32, np.float32))   # wrong byte count
    with pytest.raises(InvalidArgumentError):
        _core.matmul("Q4_0", raw, 2, 32, np.zeros(31, np.float32))   # wrong x length
    with pytest.raises(InvalidArgumentError):
        _core.matmul("Q4_0", raw, 2, 32, np.zeros(32, np.float32), simd="sse9")


def run_with_env(code, simd):
    env = dict(os.environ, PYLLONG_SIMD=simd)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=tempfile.gettempdir())  # not the source tree: test the installed pyllong


@pytest.mark.parametrize("path", PATHS)
def test_env_override_selects_path(path):
    r = run_with_env("from pyllong import _core; print(_core.simd_path())", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == path


def test_env_override_rejects_unknown_or_unsupported():
    code = ("import numpy as np; from pyllong import _core\n"
            "try:\n _core.matmul('Q8_0', np.zeros(34, np.uint8), 1, 32, np.zeros(32, np.float32))\n"
            "except ValueError as e: print('ERR', e)\n")
    r = run_with_env(code, "sse9")
    assert "ERR" in r.stdout and "sse9" in r.stdout
    unsupported = [p for p in ("avx2", "avx512", "avx512vnni", "neon", "neondot") if p not in PATHS]
    for p in unsupported:  # empty on a CPU that has them all
        r = run_with_env(code, p)
        assert "ERR" in r.stdout


def test_python_face_roundtrip_and_matmul():
    from pyllong import quant
    rng = np.random.default_rng(8)
    w = rng.standard_normal((24, 256)).astype(np.float32)
    raw = quant.quantize(w, "Q6_K")
    assert raw.nbytes == 24 * quant.row_bytes("Q6_K", 256)
    wd = quant.dequantize(bytes(raw), "Q6_K", w.shape)
    assert wd.shape == w.shape and np.abs(wd - w).max() < 0.1
    x = rng.standard_normal((2, 256)).astype(np.float32)
    y = quant.matmul(raw, "Q6_K", w.shape, x, n_threads=2)
    ref, bound = oracle("Q6_K", raw, 24, 256, x)
    assert (np.abs(y - ref) <= bound).all()


def test_pool_survives_mixed_thread_counts():
    """Alternating 1..4 threads on one persistent pool, GEMV and GEMM: results stay
    exact and nothing hangs (run in a subprocess so a deadlock fails instead of hanging)."""
    code = """
import numpy as np
from pyllong import _core
rng = np.random.default_rng(0)
raw = _core.quantize("Q8_0", rng.standard_normal((300, 256)).astype(np.float32))
x = rng.standard_normal((6, 256)).astype(np.float32)
pool = _core.ThreadPool(4)
ref_gemm = _core.matmul("Q8_0", raw, 300, 256, x, n_threads=1)
ref_gemv = _core.matmul("Q8_0", raw, 300, 256, x[0], n_threads=1)  # GEMV may use other kernels
for i in range(3000):
    nt = 1 + (i * 7) % 4
    xs = x if i % 3 else x[0]
    y = _core.matmul("Q8_0", raw, 300, 256, xs, n_threads=nt, pool=pool)
    assert np.array_equal(y, ref_gemm if i % 3 else ref_gemv), i
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=tempfile.gettempdir())
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
