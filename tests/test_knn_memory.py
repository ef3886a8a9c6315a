"""kNN key-value memory (../shared/spec/knn-memory.md): the native attention policy and the
Context's window/flush handling against independent float64 numpy oracles
(tests/reference/fot.py for the whole model; `oracle` below for one attention layer)."""
from __future__ import annotations

import numpy as np
import pytest

import pyllong
from pyllong import _core
from pyllong.models import synthetic as syn
from reference.fot import FotOracle
from test_self_extend import rotate


# --- one attention layer: local (causal, RoPE) + memory (unrotated, no mask), one softmax ---

def oracle(q, k, v, mem_k, mem_v, n_rot, top_k=None, distance=None):
    n, H, D = q.shape
    group = H // k.shape[1]
    out = np.zeros((n, H, D))
    for i in range(n):
        for h in range(H):
            g = h // group
            qi = rotate(q[i, h], i, n_rot, 10000.0, False)
            local = np.array([qi @ rotate(k[j, g], j, n_rot, 10000.0, False) for j in range(i + 1)])
            qm = qi if distance is None else rotate(q[i, h], distance, n_rot, 10000.0, False)
            mem = mem_k[:, g].astype(np.float64) @ qm
            mv = mem_v[:, g].astype(np.float64)
            if top_k is not None and top_k < len(mem):
                top = np.argsort(-mem, kind="stable")[:top_k]
                mem, mv = mem[top], mv[top]
            s = np.concatenate([local, mem]) / np.sqrt(D)
            p = np.exp(s - s.max())
            out[i, h] = p @ np.concatenate([v[: i + 1, g].astype(np.float64), mv]) / p.sum()
    return out


def _arrays(n, n_mem, H, Hkv, D, seed):
    rng = np.random.default_rng(seed)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    # f16-representable memory, so that the oracle sees exactly the stored keys and values
    m16 = lambda *s: f(*s).astype(np.float16).astype(np.float32)  # noqa: E731
    return f(n, H, D), f(n, Hkv, D), f(n, Hkv, D), m16(n_mem, Hkv, D), m16(n_mem, Hkv, D)


PROBE_CASES = [  # n, n_mem, H, Hkv, D
    (20, 37, 2, 2, 16),
    (24, 50, 4, 2, 16),    # GQA
    (18, 70, 2, 1, 100),   # LongLLaMA-3B's head dim (not a multiple of 32)
    (40, 130, 4, 1, 64),   # more than one memory tile
]


@pytest.mark.parametrize("n,n_mem,H,Hkv,D", PROBE_CASES)
@pytest.mark.parametrize("chunk", [1 << 30, 7, 1])  # tiled prefill, chunked, per-row decode
def test_fot_attention_matches_oracle(n, n_mem, H, Hkv, D, chunk):
    q, k, v, mk, mv = _arrays(n, n_mem, H, Hkv, D, seed=n + D)
    got = _core.attention_probe(q, k, v, D, 10000.0, False, chunk, None, "f16", 2, (mk, mv, "fot", 0))
    np.testing.assert_allclose(got, oracle(q, k, v, mk, mv, D), atol=3e-3, rtol=0)
    plain = _core.attention_probe(q, k, v, D, 10000.0, False, chunk, None, "f16", 2)
    assert np.abs(got - plain).max() > 0.05  # the memory takes part


def _min_topk_gap(q, mk, top_k):
    """Smallest gap, over query rows, between the k-th and (k+1)-th memory score."""
    n, H, D = q.shape
    group = H // mk.shape[1]
    gaps = []
    for i in range(n):
        for h in range(H):
            s = np.sort(mk[:, h // group].astype(np.float64) @ rotate(q[i, h], i, D, 10000.0, False))[::-1]
            gaps.append(s[top_k - 1] - s[top_k])
    return min(gaps)


@pytest.mark.parametrize("n,n_mem,H,Hkv,D", PROBE_CASES)
@pytest.mark.parametrize("chunk", [1 << 30, 1])
@pytest.mark.parametrize("top_k", [1, 5, 16])
def test_knn_attention_matches_topk_oracle(n, n_mem, H, Hkv, D, chunk, top_k):
    q, k, v, mk, mv = _arrays(n, n_mem, H, Hkv, D, seed=n + D)
    # f32 scores must rank like float64 ones: the selection boundary is not a near-tie.
    assert _min_topk_gap(q, mk, top_k) > 1e-4
    got = _core.attention_probe(q, k, v, D, 10000.0, False, chunk, None, "f16", 2, (mk, mv, "knn", top_k))
    np.testing.assert_allclose(got, oracle(q, k, v, mk, mv, D, top_k), atol=3e-3, rtol=0)


@pytest.mark.parametrize("chunk", [1 << 30, 1])
def test_knn_with_k_at_least_memory_size_is_fot(chunk):
    q, k, v, mk, mv = _arrays(30, 45, 4, 2, 32, seed=11)
    fot = _core.attention_probe(q, k, v, 32, 10000.0, False, chunk, None, "f16", 2, (mk, mv, "fot", 0))
    for top_k in (45, 1000):
        knn = _core.attention_probe(q, k, v, 32, 10000.0, False, chunk, None, "f16", 2, (mk, mv, "knn", top_k))
        np.testing.assert_allclose(knn, fot, atol=1e-5, rtol=0)


# --- the whole model: windows, chunking, flush, decode -------------------------------------

TINY = syn.preset_params("tiny-llama-bpe")                                      # 2 layers, head_dim 16, GQA
HD100 = syn.preset_params("tiny-llama-bpe", n_layer=3, n_head=2, n_head_kv=1, head_dim=100)


def _ctx(path, layers, W, lcl, mode="fot", k=0, cap=0, n_batch=512, n_threads=2):
    mem = dict(layers=layers, window=W, last_context_length=lcl, mode=mode, k=k, cap=cap)
    return _core.Context(_core.ModelFile(path), n_ctx=W, n_threads=n_threads, n_batch=n_batch, memory=mem)


def _tokens(n, seed):
    return np.random.default_rng(seed).integers(0, 512, n).tolist()


def _close(got, ref, tol=2e-3):
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err < tol, f"relative error {err:.2e}"


@pytest.mark.parametrize("params,layers,W,lcl,n_batch", [
    (TINY, [1], 16, 8, 512),
    (TINY, [0, 1], 16, 5, 512),
    (TINY, [0], 12, 12, 5),      # prompt batches smaller than the window
    (HD100, [0, 2], 16, 8, 512),
])
def test_fot_model_matches_oracle_through_windows_and_flushes(params, layers, W, lcl, n_batch):
    path = syn.cached_model(**params)
    ctx, ref = _ctx(path, layers, W, lcl, n_batch=n_batch), FotOracle(path, layers, W, lcl)
    toks = _tokens(110, seed=W + lcl)
    # 1. a long prompt from an empty window: chunks of W into memory, the last lcl tokens local
    _close(ctx.eval(toks[:50], True), ref.eval(toks[:50]))
    assert ctx.memory.size == ref.memory_len == 50 - lcl and ctx.n_past == lcl
    # 2. decode across several flushes (the window fills to W, then restarts at position 0)
    for t in toks[50:50 + 2 * W]:
        _close(ctx.eval([t], False), ref.eval([t])[-1:])
        assert ctx.n_past == ref.window_len
    assert ref.memory_len > 50 - lcl  # flushes happened
    # 3. a long input onto a non-empty window: its chunks follow the window rule
    more = toks[50 + 2 * W:]
    _close(ctx.eval(more, True), ref.eval(more))
    assert ctx.memory.size == ref.memory_len and ctx.n_past == ref.window_len
    # the memory matters: without it the same windows give other logits
    plain = FotOracle(path, [], W, lcl)
    assert np.abs(plain.eval(toks[:50])[-1] - FotOracle(path, layers, W, lcl).eval(toks[:50])[-1]).max() > 1e-2


def test_knn_with_k_at_least_memory_size_equals_fot_in_the_model():
    path = syn.cached_model(**TINY)
    toks = _tokens(90, seed=3)
    fot, knn = _ctx(path, [0, 1], 16, 8), _ctx(path, [0, 1], 16, 8, mode="knn", k=10_000)
    # Same keys, other summation order (top-k order vs memory order): f32 rounding only.
    _close(knn.eval(toks[:60], True), fot.eval(toks[:60], True), 5e-5)
    for t in toks[60:]:
        _close(knn.eval([t], False), fot.eval([t], False), 5e-5)


def test_knn_small_k_in_the_model_differs_from_fot():
    path = syn.cached_model(**TINY)
    toks = _tokens(70, seed=4)
    fot = _ctx(path, [0, 1], 16, 8).eval(toks, True)
    knn = _ctx(path, [0, 1], 16, 8, mode="knn", k=2).eval(toks, True)
    assert np.abs(knn - fot).max() > 1e-3  # k selects: fewer keys, other logits


def test_memory_options_are_checked():
    path = syn.cached_model(**TINY)
    mf = _core.ModelFile(path)
    base = dict(layers=[1], window=16, last_context_length=8, mode="fot", k=0, cap=0)
    for bad, frag in [(dict(layers=[2]), "outside this model's layers"), (dict(layers=[1, 0]), "ascending"),
                      (dict(last_context_length=17), "last_context_length"), (dict(mode="dense"), "fot"),
                      (dict(mode="knn", k=0), "k >= 1"), (dict(window=32), "must fit in n_ctx")]:
        with pytest.raises(pyllong.InvalidArgumentError, match=frag):
            _core.Context(mf, n_ctx=16, n_threads=1, memory={**base, **bad})
    ctx = _core.Context(mf, n_ctx=16, n_threads=1, memory=base)
    ctx.eval(_tokens(10, 0), False)
    with pytest.raises(pyllong.InvalidArgumentError, match="kNN memory"):
        ctx.shift(1, 2)


# --- the approximate index (IVF) -----------------------------------------------------------

def _clustered(n, D, n_clusters, seed):
    """Keys around n_clusters centres (real keys cluster too), f16-representable."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, D)) * 2.0
    x = centres[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, D)) * 0.7
    return x.astype(np.float16)


def _memory_ctx(rows, D, n_probe, ivf_min, cap=0):
    """A Context over a 1-KV-head model shape whose memory holds `rows` (n, D) as keys."""
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_head=2, n_head_kv=1, head_dim=D))
    mem = dict(layers=[0], window=16, last_context_length=8, mode="knn", k=32, cap=cap, ivf=True, n_probe=n_probe,
               ivf_min=ivf_min)
    ctx = _core.Context(_core.ModelFile(path), n_ctx=16, n_threads=1, memory=mem)
    u = rows.view(np.uint16)
    for s in range(0, len(u), 1000):  # grows in steps, as flushes do: trained, then incremental
        ctx.memory.append_f16(0, u[s:s + 1000], u[s:s + 1000])
    return ctx


def _recall(ctx, queries, k):
    hits = 0
    for q in queries:
        exact = set(ctx.memory.search(0, 0, q, k, approximate=False))
        hits += len(exact & set(ctx.memory.search(0, 0, q, k, approximate=True)))
    return hits / (k * len(queries))


def test_ivf_recall_against_exact_top_k():
    D = 64
    rows = _clustered(12_000, D, 200, seed=1)
    queries = _clustered(50, D, 200, seed=1)[:, :].astype(np.float32)  # same centres as the keys
    ctx = _memory_ctx(rows, D, n_probe=8, ivf_min=4000)
    n_list = ctx.memory.index_lists(0, 0)
    assert n_list == int(np.sqrt(4000))  # trained at 4000 rows; 8000 more joined incrementally
    assert _recall(ctx, queries, 32) >= 0.9
    everything = _memory_ctx(rows, D, n_probe=n_list, ivf_min=4000)
    assert _recall(everything, queries, 32) == 1.0  # probing every list is the exact scan


def test_ivf_follows_eviction_and_truncation():
    D = 32
    rows = _clustered(6000, D, 50, seed=2)
    ctx = _memory_ctx(rows, D, n_probe=1000, ivf_min=2000, cap=5000)
    assert ctx.memory.size == 5000 and ctx.memory.evicted == 1000
    q = rows[-1].astype(np.float32)
    got = ctx.memory.search(0, 0, q, 10, approximate=True)
    assert got == ctx.memory.search(0, 0, q, 10, approximate=False) and max(got) < 5000
    ctx.memory.truncate(3000)
    got = ctx.memory.search(0, 0, q, 10, approximate=True)
    assert got == ctx.memory.search(0, 0, q, 10, approximate=False) and max(got) < 3000


@pytest.mark.parametrize("chunk", [1 << 30, 1])
def test_ivf_probing_every_list_equals_exact_knn_in_attention(chunk):
    q, k, v, mk, mv = _arrays(20, 600, 4, 2, 32, seed=5)
    exact = _core.attention_probe(q, k, v, 32, 10000.0, False, chunk, None, "f16", 2, (mk, mv, "knn", 16))
    ivf_all = _core.attention_probe(q, k, v, 32, 10000.0, False, chunk, None, "f16", 2,
                                    (mk, mv, "knn", 16, (10_000, 100)))
    np.testing.assert_allclose(ivf_all, exact, atol=1e-6, rtol=0)
    ivf_few = _core.attention_probe(q, k, v, 32, 10000.0, False, chunk, None, "f16", 2,
                                    (mk, mv, "knn", 16, (1, 100)))
    assert np.abs(ivf_few - exact).max() > 1e-4  # one list of 24: approximate, and it shows


@pytest.mark.parametrize("mode,top_k", [("fot", 0), ("knn", 7), ("knn", 100_000)])
def test_decode_splits_a_large_memory_over_threads(mode, top_k):
    # One KV head and one token per step: fewer items than threads, so the memory scan is
    # split into blocks and merged (fot: log-sum-exp of block states; knn: top-k of block top-k's).
    q, k, v, mk, mv = _arrays(6, 5000, 2, 1, 64, seed=12)
    mem = (mk, mv, mode, top_k)
    split = _core.attention_probe(q, k, v, 64, 10000.0, False, 1, None, "f16", 4, mem)
    whole = _core.attention_probe(q, k, v, 64, 10000.0, False, 1, None, "f16", 1, mem)
    np.testing.assert_allclose(split, whole, atol=1e-5, rtol=0)
    if mode == "knn" and top_k < 5000:
        assert _min_topk_gap(q, mk, top_k) > 1e-4
    np.testing.assert_allclose(split, oracle(q, k, v, mk, mv, 64, top_k if mode == "knn" else None), atol=3e-3, rtol=0)


@pytest.mark.parametrize("mode,top_k", [("fot", 0), ("knn", 5)])
@pytest.mark.parametrize("chunk", [1 << 30, 1])
def test_memory_at_a_fixed_distance_matches_oracle(mode, top_k, chunk):
    q, k, v, mk, mv = _arrays(24, 50, 4, 2, 16, seed=13)
    got = _core.attention_probe(q, k, v, 16, 10000.0, False, chunk, None, "f16", 2, (mk, mv, mode, top_k, None, 40))
    want = oracle(q, k, v, mk, mv, 16, top_k if mode == "knn" else None, distance=40)
    np.testing.assert_allclose(got, want, atol=3e-3, rtol=0)
    lla = _core.attention_probe(q, k, v, 16, 10000.0, False, chunk, None, "f16", 2, (mk, mv, mode, top_k))
    assert np.abs(got - lla).max() > 1e-2  # the distance changes the memory scores


def test_fot_model_at_a_fixed_distance_matches_oracle():
    path = syn.cached_model(**TINY)
    mem = dict(layers=[0, 1], window=16, last_context_length=8, mode="fot", k=0, cap=0, distance=16)
    ctx = _core.Context(_core.ModelFile(path), n_ctx=16, n_threads=2, memory=mem)
    ref = FotOracle(path, [0, 1], 16, 8, distance=16)
    toks = _tokens(60, seed=21)
    _close(ctx.eval(toks[:40], True), ref.eval(toks[:40]))
    for t in toks[40:]:
        _close(ctx.eval([t], False), ref.eval([t])[-1:])
