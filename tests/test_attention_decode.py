"""Decode attention over a long cache (csrc/attention/attention_decode.cpp): the key range of
each (token, kv head) is split across threads and the partial softmaxes merged. Checked
against a vectorized float64 numpy reference (plain causal attention), and against the
prefill (tiled) path for the q8_0 cache and SelfExtend, whose own oracle tests are in
test_self_extend.py. Decode is probed one token per step (chunk=1), so every row from
position 512 on (2 * kMinKeysPerSplit keys) goes through the split path."""
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
    assert _core.attention_decode_splits(3, 4096, 2) == 3          # 9 items for 2 threads
    assert _core.attention_decode_splits(3, 600, 2) == 2            # capped: >= 256 keys per split
    assert _core.attention_decode_splits(3, 100, 2) == 1
    assert _core.attention_decode_splits(32, 16384, 2) == 1         # enough pairs already


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
