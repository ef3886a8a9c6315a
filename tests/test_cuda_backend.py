"""The CUDA backend: every kernel against the CPU path or a float64 oracle, and whole-model
logits on the GPU against the float64 reference forward pass. These run where a GPU is
visible and skip, saying why, everywhere else; the CPU-only checks run everywhere."""
from __future__ import annotations

import os

import gguf
import numpy as np
import pytest

import pyllong
import pyllong.quant
from pyllong import _core
from pyllong.models import synthetic as syn
from quant_helpers import ALL_TYPES, gguf_dequantize, random_blocks, seed_of, geometry
from reference.forward import reference_logits
from test_self_extend import CASES, _qkv, oracle

HAVE_GPU = _core.cuda_built() and _core.cuda_device_count() > 0
needs_gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs a CUDA build (CMAKE_ARGS=-DPYLLONG_CUDA=ON) "
                                                    "and a visible GPU; none here "
                                                    "(tools/cuda_emu.sh runs them on the CPU emulator)")


def test_no_cuda_build_reports_zero_devices_and_a_clear_error():
    if _core.cuda_built():
        pytest.skip("this build includes CUDA; the GPU tests below cover it")
    assert _core.cuda_device_count() == 0
    with pytest.raises(pyllong.InvalidArgumentError, match="PYLLONG_CUDA=ON"):
        _core.cuda_device_name(0)
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    with pytest.raises(pyllong.DeviceError, match="PYLLONG_CUDA=ON"):
        pyllong.Model(path, n_ctx=32, n_gpu_layers=-1)
    with pytest.raises(pyllong.DeviceError):
        _core.cuda_matmul_probe(0, np.zeros(128, np.uint8), 32, np.zeros((1, 32), np.float32))


def test_gpu_options_are_validated_before_any_device_work():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    with pytest.raises(pyllong.InvalidArgumentError, match="n_gpu_layers"):
        pyllong.Model(path, n_ctx=32, n_gpu_layers=-2)
    with pytest.raises(pyllong.InvalidArgumentError, match="f16"):
        _core.Context(_core.ModelFile(path), n_ctx=32, kv_type="q8_0", n_gpu_layers=1)


@needs_gpu
def test_device_names():
    assert _core.cuda_device_name(0)
    with pytest.raises(pyllong.InvalidArgumentError):
        _core.cuda_device_name(_core.cuda_device_count())


def _weights(name, n_out, n_in, rng):
    if name in ("F32", "F16", "BF16"):  # random bytes would be huge or NaN floats: encode normals
        w32 = rng.standard_normal((n_out, n_in)).astype(np.float32)
        raw = {"F32": w32.view(np.uint8), "F16": w32.astype(np.float16).view(np.uint8),
               "BF16": (w32.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)}[name]
        return raw, np.stack([gguf_dequantize(name, raw[r], n_in) for r in range(n_out)]).astype(np.float64)
    bs, ts = geometry(name)
    raw = random_blocks(name, n_out * n_in // bs, rng, scale_exp_range=(-8, 2)).reshape(n_out, -1)
    w = np.stack([gguf_dequantize(name, raw[r], n_in) for r in range(n_out)]).astype(np.float64)
    return raw, w


PACKED = ("Q4_0", "Q4_1", "Q8_0")  # repacked on upload; decode reads 8-bit activations


@needs_gpu
@pytest.mark.parametrize("name", ALL_TYPES)
def test_matmul_matches_float64_oracle(name):
    rng = np.random.default_rng(seed_of("cuda", name))
    n_out, n_in = 70, 512  # a partial 64-row tile; two K-quant super-blocks
    raw, w = _weights(name, n_out, n_in, rng)
    for n_tok in (1, 3, 8, 9, 70):  # decode kernel (1..8 tokens), tiled kernel, partial token tiles
        x = rng.standard_normal((n_tok, n_in)).astype(np.float32)
        got = _core.cuda_matmul_probe(int(gguf.GGMLQuantizationType[name]), raw.reshape(-1), n_in, x)
        ref = x.astype(np.float64) @ w.T
        bound = (n_in + 4) * np.finfo(np.float32).eps * (np.abs(x) @ np.abs(w).T)
        if name in PACKED and n_tok <= 8:
            # Decode multiplies these formats with x rounded to 8 bits per 32-block (scale
            # amax/127, as llama.cpp's q8_1): each element is then off by at most half a step.
            half_step = np.abs(x.astype(np.float64)).reshape(n_tok, -1, 32).max(-1) / 127 / 2
            q_err = np.repeat(half_step, 32, axis=1) * (1 + 1e-6)
            bound = bound * 1.01 + q_err @ np.abs(w).T
        assert got.shape == (n_tok, n_out)
        err = np.abs(got - ref)
        assert (err <= bound + 1e-30).all(), f"{name} n_tok={n_tok}: max err/bound {np.max(err / (bound + 1e-30)):.3g}"


@needs_gpu
@pytest.mark.parametrize("n,H,Hkv,D,n_rot,neox,G,W", CASES)
@pytest.mark.parametrize("chunk", [1 << 30, 7, 1])
def test_attention_self_extend_matches_oracle(n, H, Hkv, D, n_rot, neox, G, W, chunk):
    q, k, v = _qkv(n, H, Hkv, D, seed=n + G)
    ref = oracle(q, k, v, n_rot, 10000.0, neox, G, W)
    got = _core.cuda_attention_probe(q, k, v, n_rot, 10000.0, neox, chunk, (G, W))
    np.testing.assert_allclose(got, ref, atol=3e-3, rtol=0)  # f16 keys and values
    plain = _core.cuda_attention_probe(q, k, v, n_rot, 10000.0, neox, chunk, None)
    np.testing.assert_allclose(plain, oracle(q, k, v, n_rot, 10000.0, neox), atol=3e-3, rtol=0)


@needs_gpu
@pytest.mark.parametrize("chunk", [1 << 30, 512, 1])
def test_attention_long_matches_cpu(chunk):
    # Past one key tile (128) and past one split (512 keys): the split merge and the tiles.
    n = 1500 if chunk > 1 else 1100
    q, k, v = _qkv(n, 6, 2, 64, seed=chunk % 97)
    for se in (None, (4, 256)):
        cpu = _core.attention_probe(q, k, v, 64, 10000.0, False, chunk, se, "f16", 2)
        gpu = _core.cuda_attention_probe(q, k, v, 64, 10000.0, False, chunk, se)
        np.testing.assert_allclose(gpu, cpu, atol=2e-3, rtol=0)


def native_quantize(values, qtype):
    """K-quants for the synthetic builder, by pyllong's quantizer (the dequantizer is gguf's)."""
    return pyllong.quant.quantize(values.reshape(values.shape[0], -1) if values.ndim > 1 else values[None],
                                  qtype.name).reshape(values.shape[0] if values.ndim > 1 else 1, -1)


def _rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


MODELS = [("tiny-llama-bpe", {}), ("tiny-llama-spm", {}), ("tiny-mistral", {}), ("tiny-phi2", {}),
          ("tiny-phi3", {}), ("tiny-llama-k", {"qtype": "Q4_K"}), ("tiny-llama-k", {"qtype": "Q6_K"}),
          ("tiny-llama-bpe", {"qtype": "Q4_0"}), ("tiny-llama-bpe", {"qtype": "Q8_0"}),
          ("tiny-llama-bpe", {"qtype": "Q4_1"}), ("tiny-llama-bpe", {"qtype": "F16"})]


@needs_gpu
@pytest.mark.parametrize("preset,over", MODELS, ids=[f"{p}-{o.get('qtype', 'F32')}" for p, o in MODELS])
@pytest.mark.parametrize("n_gpu_layers", [-1, 1])
def test_model_logits_match_reference(preset, over, n_gpu_layers):
    if over.get("qtype", "").endswith("_K"):
        over = dict(over, quantize_fn=native_quantize)
    path = syn.cached_model(**syn.preset_params(preset, **over))
    toks = np.random.default_rng(1).integers(0, _core.ModelFile(path).hparams["n_vocab"], 40).tolist()
    ref = reference_logits(path, toks)
    # f32 activations on the device (the CPU path quantizes them to 8 bits): f16 KV is the error —
    # except for the packed formats, whose decode kernels (chunks of <= 8 tokens) read 8-bit ones.
    exact = "qtype" not in over or (n_gpu_layers == -1 and over["qtype"] not in PACKED)
    tol = 2e-3 if exact else 0.05
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=16, n_gpu_layers=n_gpu_layers)
    assert _rel_err(ctx.eval(toks, True), ref) < tol
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=7, n_gpu_layers=n_gpu_layers)
    got = np.concatenate([ctx.eval(toks[:9], True)] + [ctx.eval([t], False) for t in toks[9:]])
    assert _rel_err(got, ref) < tol


@needs_gpu
def test_self_extend_model_matches_cpu():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_ctx_train=32))
    toks = np.random.default_rng(2).integers(0, 512, 100).tolist()
    logits = []
    for ngl in (0, -1):
        ctx = _core.Context(_core.ModelFile(path), n_ctx=128, n_threads=2, n_batch=16, self_extend=(4, 8),
                            n_gpu_layers=ngl)
        logits.append(np.concatenate([ctx.eval(toks[:60], True)] + [ctx.eval([t], False) for t in toks[60:]]))
    assert _rel_err(logits[1], logits[0]) < 2e-3


@needs_gpu
@pytest.mark.parametrize("n_gpu_layers", [-1, 2])
@pytest.mark.parametrize("n_batch,self_extend", [(512, None), (37, None), (37, (4, 64))])
def test_transition_model_matches_cpu(n_gpu_layers, n_batch, self_extend):
    # 5 layers: 1 and 2 are edited, bands from row 160 (test_transition.py); n_batch 37 splits
    # the bands across chunks (absolute bands), 512 is one shot; with SelfExtend the banded
    # rows score distant keys at grouped positions.
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_layer=5, n_ctx_train=1024))
    toks = np.random.default_rng(3).integers(5, 500, 480).tolist()
    mf = _core.ModelFile(path)
    cpu = _core.Context(mf, n_ctx=512, n_threads=2, n_batch=512, transition=(0.5, 0.1, 2),
                        self_extend=self_extend).eval(toks, True)
    gpu = _core.Context(mf, n_ctx=512, n_threads=2, n_batch=n_batch, transition=(0.5, 0.1, 2),
                        self_extend=self_extend, n_gpu_layers=n_gpu_layers).eval(toks, True)
    plain = _core.Context(mf, n_ctx=512, n_threads=2, n_batch=n_batch, self_extend=self_extend,
                          n_gpu_layers=n_gpu_layers).eval(toks, True)
    assert _rel_err(gpu, cpu) < 2e-3
    assert _rel_err(plain[160:], cpu[160:]) > 10 * _rel_err(gpu, cpu)  # the edit is there, not lost


@needs_gpu
@pytest.mark.parametrize("mode,k,distance", [("fot", 0, 0), ("knn", 3, 0), ("fot", 0, 6)])
@pytest.mark.parametrize("n_gpu_layers", [-1, 1])
def test_memory_model_matches_cpu(mode, k, distance, n_gpu_layers):
    # Memory layers 0 and 1 of 2: with one layer on the GPU, one memory layer on each side.
    # A prompt into memory, decode across flushes, a long input onto a non-empty window.
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    mem = dict(layers=[0, 1], window=16, last_context_length=8, mode=mode, k=k, cap=0, distance=distance)
    toks = np.random.default_rng(5).integers(0, 512, 110).tolist()
    ctxs = [_core.Context(_core.ModelFile(path), n_ctx=16, n_threads=2, memory=mem, n_gpu_layers=ngl)
            for ngl in (0, n_gpu_layers)]
    cpu, gpu = ([c.eval(toks[:50], True)] for c in ctxs)
    for t in toks[50:82]:
        cpu.append(ctxs[0].eval([t], False))
        gpu.append(ctxs[1].eval([t], False))
    cpu.append(ctxs[0].eval(toks[82:], True))
    gpu.append(ctxs[1].eval(toks[82:], True))
    assert ctxs[1].memory.size == ctxs[0].memory.size > 50 and ctxs[1].n_past == ctxs[0].n_past
    assert _rel_err(np.concatenate(gpu), np.concatenate(cpu)) < 2e-3
    # layer 0's memory matters (on the GPU in both cases): without it the logits differ
    only_1 = _core.Context(_core.ModelFile(path), n_ctx=16, n_threads=2, n_gpu_layers=n_gpu_layers,
                           memory=dict(mem, layers=[1]))
    assert _rel_err(only_1.eval(toks[:50], True), cpu[0]) > 1e-2


@needs_gpu
def test_context_shift_on_gpu_matches_reference():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_layer=1))
    toks = list(range(10, 40))
    ctx = _core.Context(_core.ModelFile(path), n_ctx=32, n_threads=2, n_batch=32, n_gpu_layers=-1)
    ctx.eval(toks, False)
    ctx.shift(4, 10)
    got = ctx.eval([5], False)[0]
    ref = reference_logits(path, toks[:4] + toks[14:] + [5])[-1]
    assert _rel_err(got, ref) < 5e-3


@needs_gpu
def test_python_api_generates_the_same_greedy_text_on_gpu():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    cpu = pyllong.Model(path, n_ctx=64, seed=0).generate("hello", max_tokens=16, temperature=0)
    gpu = pyllong.Model(path, n_ctx=64, seed=0, n_gpu_layers=-1).generate("hello", max_tokens=16, temperature=0)
    assert gpu == cpu


@needs_gpu
def test_python_api_memory_and_transition_on_gpu_equal_cpu():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    texts = []
    for ngl in (0, -1):
        m = pyllong.Model(path, n_ctx=64, seed=0, n_gpu_layers=ngl, memory=pyllong.Memory(layers=[0, 1], window=32))
        m.memory.add_document("the pass key is 4711. " * 12)
        fork = pyllong.Model(path, n_ctx=64, seed=0, n_gpu_layers=ngl, memory=m.memory.snapshot())
        texts.append((m.generate("the pass key is", max_tokens=12, temperature=0),
                      fork.generate("the pass key is", max_tokens=12, temperature=0), m.memory.tokens))
    assert texts[1] == texts[0] and texts[0][2] > 100
    prompt = " ".join(f"w{i}" for i in range(150))  # > 400 tokens: the Transition edits
    outs = [pyllong.Model(path, n_ctx=1024, seed=0, n_gpu_layers=ngl, transition=True).generate(
        prompt, max_tokens=6, temperature=0) for ngl in (0, -1)]
    assert outs[1] == outs[0]


@needs_gpu
def test_device_memory_shortfall_is_a_clear_error():
    # 24 layers x 2^24 cells x 128 kv dims x (K + V) f16 = 200 GB: more than any GPU here.
    path = syn.cached_model(**syn.preset_params("tiny-llama-k", n_layer=24))
    with pytest.raises(pyllong.DeviceError, match="MiB"):
        _core.Context(_core.ModelFile(path), n_ctx=1 << 24, n_batch=16, n_gpu_layers=-1)


@needs_gpu
def test_smollm2_logits_match_reference(request):
    # The real SmolLM2 weights; PYLLONG_SMOLLM2_GGUF may name a copy cut to its first layers
    # (tools/gguf_keep_layers.py) where the whole file cannot be carried to the GPU machine.
    path = os.environ.get("PYLLONG_SMOLLM2_GGUF") or request.getfixturevalue("smollm2_path")
    mf = _core.ModelFile(path)
    toks = _core.Tokenizer(mf).encode("The quick brown fox jumps over the lazy dog. " * 6, True, False)
    ref = reference_logits(path, toks)
    gpu = _core.Context(mf, n_ctx=256, n_batch=32, n_gpu_layers=-1).eval(toks, True)
    assert _rel_err(gpu, ref) < 2e-3
    half = _core.Context(mf, n_ctx=256, n_batch=32, n_gpu_layers=mf.hparams["n_layer"] // 2).eval(toks, True)
    # The CPU half quantizes activations to 8 bits, with an error that depends on the host's
    # SIMD path (0.05 on an AVX2 host for all layers on the CPU): half the layers there may
    # err as much as all of them, not more.
    cpu_err = _rel_err(_core.Context(mf, n_ctx=256, n_batch=32).eval(toks, True), ref)
    assert _rel_err(half, ref) < max(3e-2, 1.2 * cpu_err)
    # Token by token (the decode kernels and the captured graph; 8-bit activations for Q4_1).
    ctx = _core.Context(mf, n_ctx=256, n_batch=32, n_gpu_layers=-1)
    dec = np.concatenate([ctx.eval(toks[:8], True)] + [ctx.eval([t], False) for t in toks[8:]])
    assert _rel_err(dec, ref) < max(3e-2, 1.2 * cpu_err)  # 8-bit activations, as the CPU's
