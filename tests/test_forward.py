"""The native forward pass against the independent float64 numpy reference
(tests/reference/forward.py), for every architecture, one-shot, chunked and token by token."""
from __future__ import annotations

import numpy as np
import pytest

import pyllong
import pyllong.quant
from pyllong import _core
from pyllong.models import synthetic as syn
from reference.forward import reference_logits

PRESETS = ["tiny-llama-bpe", "tiny-llama-spm", "tiny-mistral", "tiny-phi2", "tiny-phi3"]


def _rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module", params=PRESETS)
def preset(request):
    path = syn.cached_model(**syn.preset_params(request.param))
    toks = np.random.default_rng(1).integers(0, _core.ModelFile(path).hparams["n_vocab"], 40).tolist()
    return request.param, path, toks, reference_logits(path, toks)


# f16 KV cache and float32 arithmetic against float64: 2e-3 of the largest logit.
TOL = 2e-3


@pytest.mark.parametrize("n_batch,n_threads", [(64, 1), (16, 2), (7, 2)])
def test_prefill_matches_reference(preset, n_batch, n_threads):
    name, path, toks, ref = preset
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=n_threads, n_batch=n_batch)
    got = ctx.eval(toks, True)
    assert got.shape == ref.shape and _rel_err(got, ref) < TOL, name
    assert ctx.n_past == len(toks)


def test_decode_token_by_token_matches_reference(preset):
    name, path, toks, ref = preset
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=8)
    got = np.concatenate([ctx.eval(toks[:5], True)] + [ctx.eval([t], False) for t in toks[5:]])
    assert _rel_err(got, ref) < TOL, name


def test_last_logits_only(preset):
    name, path, toks, ref = preset
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=16)
    got = ctx.eval(toks, False)
    assert got.shape == (1, ref.shape[1]) and _rel_err(got[0], ref[-1]) < TOL


@pytest.mark.parametrize("qtype,tol", [("Q8_0", 0.05), ("Q4_0", 0.05), ("Q4_1", 0.05), ("F16", 0.01)])
def test_quantized_weights_match_reference(qtype, tol):
    # The reference dequantizes with gguf-py; the native path also quantizes activations
    # to 8 bits (as ggml does), which is the tolerance here.
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe", qtype=qtype))
    toks = list(range(3, 35))
    ref = reference_logits(path, toks)
    got = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=16).eval(toks, True)
    assert _rel_err(got, ref) < tol


def native_quantize(values, qtype):
    """K-quants for the synthetic builder, by pyllong's quantizer (the dequantizer is gguf's)."""
    return pyllong.quant.quantize(values.reshape(values.shape[0], -1) if values.ndim > 1 else values[None],
                                  qtype.name).reshape(values.shape[0] if values.ndim > 1 else 1, -1)


@pytest.mark.parametrize("qtype", ["Q4_K", "Q6_K", "Q4_0", "Q8_0"])
@pytest.mark.parametrize("repack,simd", [("1", None), ("1", "avx2"), ("0", None)])
def test_repacked_weights_match_reference(qtype, repack, simd):
    """The formats repacked at load for the x86 kernels (quant/repack.h), on the default path
    and on AVX2 (CPUs without VNNI), and the same with PYLLONG_REPACK=0 (the file's rows):
    prefill (GEMM, 16-token chunks) and decode (GEMV) against the reference. A subprocess
    reads the variables (they are read once per process)."""
    if simd and simd not in _core.simd_paths():
        pytest.skip(f"{simd} not supported here")
    import subprocess, sys, json
    over = {"qtype": qtype}
    if qtype.endswith("_K"):
        over["quantize_fn"] = native_quantize
    path = syn.cached_model(**syn.preset_params("tiny-llama-k", **over))
    toks = np.random.default_rng(2).integers(0, _core.ModelFile(path).hparams["n_vocab"], 24).tolist()
    ref = reference_logits(path, toks)
    code = (
        "import json, sys, numpy as np\n"
        "from pyllong import _core\n"
        "path, toks = sys.argv[1], json.loads(sys.argv[2])\n"
        "ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=16)\n"
        "a = ctx.eval(toks, True)\n"
        "ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=16)\n"
        "b = np.concatenate([ctx.eval(toks[:5], True)] + [ctx.eval([t], False) for t in toks[5:]])\n"
        "np.save(sys.argv[3], np.stack([a, b]))\n")
    import tempfile, os
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "y.npy")
        env = dict(os.environ, PYLLONG_REPACK=repack)
        if simd:
            env["PYLLONG_SIMD"] = simd
        # cwd outside the source tree: an installed pyllong, not the unbuilt sources, is imported
        r = subprocess.run([sys.executable, "-c", code, path, json.dumps(toks), out], env=env,
                           capture_output=True, text=True, cwd=d)
        assert r.returncode == 0, r.stderr
        got = np.load(out)
    for g in got:  # 8-bit activations: the tolerance of test_quantized_weights_match_reference
        assert _rel_err(g, ref) < 0.05


def test_context_shift_equals_reference_at_shifted_positions():
    # With one layer, cached K/V depend only on each token and its position, so after a
    # shift the cache must equal a fresh run over the kept tokens at their new positions.
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_layer=1))
    toks = list(range(10, 40))
    ctx = _core.Context(_core.ModelFile(path), n_ctx=32, n_threads=2, n_batch=32)
    ctx.eval(toks, False)
    ctx.shift(4, 10)  # keep 4, drop 10: the last 16 move down to positions 4..19
    assert ctx.n_past == 20
    got = ctx.eval([5], False)[0]
    kept = toks[:4] + toks[14:] + [5]
    ref = reference_logits(path, kept)[-1]
    assert _rel_err(got, ref) < 5e-3  # keys were re-rotated through f16


def test_overflow_and_bad_inputs():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    mf = _core.ModelFile(path)
    ctx = _core.Context(mf, n_ctx=8, n_threads=1, n_batch=4)
    ctx.eval([1, 2, 3, 4, 5], False)
    with pytest.raises(pyllong.ContextOverflowError, match="5 tokens in the cache \\+ 4 new > n_ctx 8"):
        ctx.eval([1, 2, 3, 4], False)
    assert ctx.n_past == 5  # nothing was written
    with pytest.raises(pyllong.InvalidArgumentError, match="outside the vocabulary"):
        ctx.eval([mf.hparams["n_vocab"]], False)
    with pytest.raises(pyllong.InvalidArgumentError, match="outside the vocabulary"):
        ctx.eval([-1], False)
    with pytest.raises(pyllong.InvalidArgumentError):
        ctx.eval([], False)
    for keep, discard in [(-1, 1), (2, -1), (9, 0), (3, 3)]:
        with pytest.raises(pyllong.InvalidArgumentError):
            ctx.shift(keep, discard)
    with pytest.raises(pyllong.InvalidArgumentError):
        _core.Context(mf, n_ctx=0)
    with pytest.raises(pyllong.InvalidArgumentError):
        _core.Context(mf, n_ctx=16, n_batch=0)
    with pytest.raises(pyllong.InvalidArgumentError, match="kv_type"):
        _core.Context(mf, n_ctx=16, kv_type="q4_0")


def test_two_contexts_over_one_model_in_two_threads():
    import threading

    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    mf = _core.ModelFile(path)
    toks = list(range(3, 40))
    alone = _core.Context(mf, n_ctx=64, n_threads=1).eval(toks, True)
    results = [None, None]

    def run(i):
        results[i] = _core.Context(mf, n_ctx=64, n_threads=1).eval(toks, True)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        np.testing.assert_array_equal(r, alone)


def test_q8_0_kv_cache_matches_reference_and_halves_memory():
    path = syn.cached_model(**syn.preset_params("tiny-llama-k", qtype="F32"))  # head_dim 64
    mf = _core.ModelFile(path)
    toks = list(range(3, 43))
    ref = reference_logits(path, toks)
    ctx = _core.Context(mf, n_ctx=64, n_threads=2, n_batch=16, kv_type="q8_0")
    got = np.concatenate([ctx.eval(toks[:20], True)] + [ctx.eval([t], False) for t in toks[20:]])
    # 8-bit keys and values: a looser bound than f16's 2e-3.
    assert ctx.kv_type == "q8_0" and _rel_err(got, ref) < 2e-2
    f16 = _core.Context(mf, n_ctx=64, n_threads=2, kv_type="f16")
    assert ctx.kv_bytes == f16.kv_bytes * 34 // 64


def test_q8_0_kv_cache_context_shift():
    # One layer: after the shift the cache must equal a fresh run over the kept tokens.
    path = syn.cached_model(**syn.preset_params("tiny-llama-k", qtype="F32", n_layer=1))
    toks = list(range(10, 40))
    ctx = _core.Context(_core.ModelFile(path), n_ctx=32, n_threads=2, kv_type="q8_0")
    ctx.eval(toks, False)
    ctx.shift(4, 10)
    got = ctx.eval([5], False)[0]
    ref = reference_logits(path, toks[:4] + toks[14:] + [5])[-1]
    assert _rel_err(got, ref) < 2e-2


def test_q8_0_kv_cache_needs_head_dim_multiple_of_32():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))  # head_dim 16
    with pytest.raises(pyllong.InvalidArgumentError, match="multiple of 32"):
        _core.Context(_core.ModelFile(path), n_ctx=16, kv_type="q8_0")
