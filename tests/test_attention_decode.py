"""Decode attention over a long cache (csrc/attention/attention_decode.cpp): the keys of each
token are split into ranges across threads, each range covering all kv heads, and the
partial softmaxes merged. Checked against vectorized float64 numpy references (causal,
sliding window, SelfExtend's pair rule; several head layouts), and against the prefill
(tiled) path for the q8_0 cache. Decode is probed one token per step (chunk=1), so every
row from position 512 on (2 * kMinKeysPerSplit keys) goes through the split path."""
from __future__ import annotations

import numpy as np
import pytest

from pyllong import _core

N, H, HKV, D = 700, 6, 2, 64
SPLIT_FROM = 512  # rows with at least this many keys take the split path


def rope_all(x: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Normal (adjacent-pair) RoPE of x (n, heads, D) at positions 0..n-1, float64."""
    n = x.shape[0]
    theta = np.arange(n)[:, None] * base ** (-2.0 * np.arange(D // 2) / D)  # (n, D/2)
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x = x.astype(np.float64)
    out = x.copy()
    out[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
    out[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
    return out


def reference(q, k, v) -> np.ndarray:
    """softmax((RoPE q)(RoPE k)^T / sqrt(D), causal) v, with K and V rounded to f16 as the cache stores them."""
    qr = rope_all(q)
    kr = rope_all(k).astype(np.float16).astype(np.float64)
    vr = v.astype(np.float16).astype(np.float64)
    out = np.empty((N, H, D))
    mask = np.tril(np.ones((N, N), dtype=bool))
    for h in range(H):
        g = h // (H // HKV)
        sc = qr[:, h, :] @ kr[:, g, :].T / np.sqrt(D)
        sc[~mask] = -np.inf
        sc -= sc.max(axis=1, keepdims=True)
        w = np.exp(sc)
        w /= w.sum(axis=1, keepdims=True)
        out[:, h, :] = w @ vr[:, g, :]
    return out


@pytest.fixture(scope="module")
def qkv():
    rng = np.random.default_rng(7)
    q = rng.standard_normal((N, H, D)).astype(np.float32)
    k = rng.standard_normal((N, HKV, D)).astype(np.float32)
    v = rng.standard_normal((N, HKV, D)).astype(np.float32)
    return q, k, v


def test_split_count():
    assert _core.attention_decode_splits(1, 4096, 2) == 8           # one token: 8 ranges for 2 threads
    assert _core.attention_decode_splits(1, 600, 2) == 2            # capped: >= 256 keys per split
    assert _core.attention_decode_splits(1, 100, 2) == 1
    assert _core.attention_decode_splits(32, 16384, 2) == 1         # enough tokens already


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_decode_matches_float64_reference(qkv, threads):
    q, k, v = qkv
    out = _core.attention_probe(q, k, v, D, chunk=1, n_threads=threads)
    ref = reference(q, k, v)
    np.testing.assert_allclose(out[SPLIT_FROM:], ref[SPLIT_FROM:], atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(out[:SPLIT_FROM], ref[:SPLIT_FROM], atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("kv_type,self_extend", [("q8_0", None), ("f16", (4, 64)), ("q8_0", (8, 128))])
def test_decode_matches_prefill_path(qkv, kv_type, self_extend):
    q, k, v = qkv
    dec = _core.attention_probe(q, k, v, D, chunk=1, kv_type=kv_type, self_extend=self_extend, n_threads=2)
    pre = _core.attention_probe(q, k, v, D, chunk=N, kv_type=kv_type, self_extend=self_extend, n_threads=2)
    np.testing.assert_allclose(dec[SPLIT_FROM:], pre[SPLIT_FROM:], atol=1e-4, rtol=1e-4)


def rope_at(x: np.ndarray, pos: np.ndarray, base: float = 10000.0) -> np.ndarray:
    """Normal (adjacent-pair) RoPE of x (n, heads, d) at positions pos (n,), float64."""
    d = x.shape[-1]
    theta = pos.astype(np.float64)[:, None] * base ** (-2.0 * np.arange(d // 2) / d)  # (n, d/2)
    c, s = np.cos(theta)[:, None, :], np.sin(theta)[:, None, :]
    x = x.astype(np.float64)
    out = x.copy()
    out[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
    out[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
    return out


def reference_general(q, k, v, window: int = 0, self_extend=None) -> np.ndarray:
    """float64 softmax attention written from the definitions: causal mask, Mistral's sliding
    window (key visible iff 0 <= i - j < window), and SelfExtend (G, W): pairs with i - j < W
    use positions (i, j), the others (i // G + W - W // G, j // G); keys (and grouped keys)
    rounded to f16 as the cache stores them."""
    n, H, d = q.shape
    hkv = k.shape[1]
    idx = np.arange(n)
    qr, kr = rope_at(q, idx), rope_at(k, idx).astype(np.float16).astype(np.float64)
    vr = v.astype(np.float16).astype(np.float64)
    dist = idx[:, None] - idx[None, :]  # (n, n) i - j
    mask = dist >= 0
    if window:
        mask &= dist < window
    if self_extend:
        G, W = self_extend
        qg = rope_at(q, idx // G + W - W // G)
        kg = rope_at(k, idx // G).astype(np.float16).astype(np.float64)
        grouped = dist >= W
    out = np.empty((n, H, d))
    for h in range(H):
        g = h // (H // hkv)
        sc = qr[:, h, :] @ kr[:, g, :].T
        if self_extend:
            sc = np.where(grouped, qg[:, h, :] @ kg[:, g, :].T, sc)
        sc = sc / np.sqrt(d)
        sc[~mask] = -np.inf
        sc -= sc.max(axis=1, keepdims=True)
        w = np.exp(sc)
        w /= w.sum(axis=1, keepdims=True)
        out[:, h, :] = w @ vr[:, g, :]
    return out


def random_qkv(n, h, hkv, d, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, h, d)).astype(np.float32), rng.standard_normal((n, hkv, d)).astype(np.float32),
            rng.standard_normal((n, hkv, d)).astype(np.float32))


# Head layouts: SmolLM2's (9 query heads on 3 kv heads), multi-head (group 1), and 128/80-wide heads.
@pytest.mark.parametrize("h,hkv,d", [(9, 3, 64), (4, 4, 80), (8, 2, 128), (6, 3, 40)])
@pytest.mark.parametrize("threads", [1, 2])
def test_decode_head_layouts_match_float64_reference(h, hkv, d, threads):
    q, k, v = random_qkv(640, h, hkv, d, seed=h * 1000 + d)
    out = _core.attention_probe(q, k, v, d, chunk=1, n_threads=threads)
    np.testing.assert_allclose(out, reference_general(q, k, v), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("window", [100, 333, 600])
def test_decode_sliding_window_matches_float64_reference(qkv, window):
    q, k, v = qkv
    out = _core.attention_probe(q, k, v, D, chunk=1, n_threads=2, sliding_window=window)
    np.testing.assert_allclose(out, reference_general(q, k, v, window=window), atol=2e-3, rtol=2e-3)


# Window edges inside and on tile boundaries (tiles are multiples of 8 keys).
@pytest.mark.parametrize("se", [(4, 64), (8, 128), (2, 100), (3, 333)])
@pytest.mark.parametrize("threads", [1, 3])
def test_decode_self_extend_matches_float64_reference(qkv, se, threads):
    q, k, v = qkv
    out = _core.attention_probe(q, k, v, D, chunk=1, n_threads=threads, self_extend=se)
    np.testing.assert_allclose(out, reference_general(q, k, v, self_extend=se), atol=2e-3, rtol=2e-3)
