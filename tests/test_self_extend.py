"""SelfExtend's per-pair rule (../shared/spec/self-extend.md) in the native attention loop
against an independent float64 numpy oracle written from the formula."""
from __future__ import annotations

import numpy as np
import pytest

import pyllong
from pyllong import _core


def rotate(x: np.ndarray, pos: int, n_rot: int, base: float, neox: bool) -> np.ndarray:
    """RoPE of one head vector x (D,) at position pos, float64."""
    x = x.astype(np.float64).copy()
    half = n_rot // 2
    theta = pos * base ** (-2.0 * np.arange(half) / n_rot)
    c, s = np.cos(theta), np.sin(theta)
    a = np.arange(half) if neox else 2 * np.arange(half)
    b = a + half if neox else a + 1
    x0, x1 = x[a].copy(), x[b].copy()
    x[a], x[b] = x0 * c - x1 * s, x0 * s + x1 * c
    return x


def oracle(q, k, v, n_rot, base, neox, G=None, W=None):
    """out[i, h] = softmax_j(<RoPE(q_i, a), RoPE(k_j, b)> / sqrt(D)) @ v_j, with (a, b) = (i, j) for
    neighbours and (i//G + W - W//G, j//G) for pairs at distance >= W."""
    n, H, D = q.shape
    group = H // k.shape[1]
    out = np.zeros((n, H, D))
    for i in range(n):
        for h in range(H):
            g = h // group
            scores = np.empty(i + 1)
            for j in range(i + 1):
                if G is None or i - j < W:
                    a, b = i, j
                else:
                    a, b = i // G + W - W // G, j // G
                scores[j] = rotate(q[i, h], a, n_rot, base, neox) @ rotate(k[j, g], b, n_rot, base, neox)
            p = np.exp((scores - scores.max()) / np.sqrt(D))
            p /= p.sum()
            out[i, h] = p @ v[: i + 1, g].astype(np.float64)
    return out


def _qkv(n, H, Hkv, D, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, H, D)).astype(np.float32), rng.standard_normal((n, Hkv, D)).astype(np.float32),
            rng.standard_normal((n, Hkv, D)).astype(np.float32))


CASES = [  # n, H, Hkv, D, n_rot, neox, G, W
    (40, 2, 2, 16, 16, False, 4, 8),
    (40, 4, 2, 16, 16, False, 2, 6),   # GQA
    (33, 2, 1, 32, 16, True, 3, 9),    # partial rotary (phi2-style), NeoX
    (20, 2, 2, 16, 16, False, 4, 32),  # W never reached: plain attention
    (16, 2, 2, 16, 16, False, 4, 16),  # N = W
    (50, 3, 3, 8, 8, True, 5, 5),      # W = G
]


@pytest.mark.parametrize("n,H,Hkv,D,n_rot,neox,G,W", CASES)
@pytest.mark.parametrize("chunk", [1 << 30, 7, 1])  # one shot, chunked prefill, token-by-token decode
def test_self_extend_matches_oracle(n, H, Hkv, D, n_rot, neox, G, W, chunk):
    q, k, v = _qkv(n, H, Hkv, D, seed=n + G)
    ref = oracle(q, k, v, n_rot, 10000.0, neox, G, W)
    got = _core.attention_probe(q, k, v, n_rot, 10000.0, neox, chunk, (G, W), "f16", 2)
    np.testing.assert_allclose(got, ref, atol=3e-3, rtol=0)  # f16 keys and values


def test_group_one_is_plain_attention_exactly():
    q, k, v = _qkv(30, 2, 2, 16, seed=3)
    plain = _core.attention_probe(q, k, v, 16, 10000.0, False, 5, None, "f16", 1)
    for W in (1, 4, 30):
        np.testing.assert_array_equal(_core.attention_probe(q, k, v, 16, 10000.0, False, 5, (1, W), "f16", 1), plain)


def test_window_not_reached_is_plain_attention_exactly():
    q, k, v = _qkv(24, 2, 1, 16, seed=4)
    plain = _core.attention_probe(q, k, v, 16, 10000.0, False, 24, None, "f16", 1)
    np.testing.assert_array_equal(_core.attention_probe(q, k, v, 16, 10000.0, False, 24, (4, 24), "f16", 1), plain)


def test_plain_attention_matches_oracle():
    q, k, v = _qkv(25, 4, 2, 16, seed=5)
    np.testing.assert_allclose(_core.attention_probe(q, k, v, 16, 10000.0, False, 6, None, "f16", 2),
                               oracle(q, k, v, 16, 10000.0, False), atol=3e-3, rtol=0)


def test_q8_0_cache_with_self_extend():
    q, k, v = _qkv(40, 2, 2, 32, seed=6)
    got = _core.attention_probe(q, k, v, 32, 10000.0, False, 9, (4, 8), "q8_0", 2)
    np.testing.assert_allclose(got, oracle(q, k, v, 32, 10000.0, False, 4, 8), atol=3e-2, rtol=0)


@pytest.mark.parametrize("gw,frag", [((0, 4), "G must be >= 1"), ((4, 0), "W must be >= 1"),
                                     ((4, 6), "multiple of the group size")])
def test_invalid_parameters(gw, frag):
    q, k, v = _qkv(4, 1, 1, 8, seed=7)
    with pytest.raises(pyllong.InvalidArgumentError, match=frag):
        _core.attention_probe(q, k, v, 8, 10000.0, False, 4, gw, "f16", 1)


# --- whole model ---------------------------------------------------------------------------
from pyllong.models import synthetic as syn  # noqa: E402


@pytest.mark.parametrize("preset", ["tiny-llama-bpe", "tiny-phi2", "tiny-mistral"])
def test_model_prefill_chunked_and_decode_agree(preset):
    path = syn.cached_model(**syn.preset_params(preset))
    mf = _core.ModelFile(path)
    toks = np.random.default_rng(0).integers(0, mf.hparams["n_vocab"], 60).tolist()
    one = _core.Context(mf, n_ctx=64, n_threads=2, n_batch=64, self_extend=(4, 8)).eval(toks, True)
    chunked = _core.Context(mf, n_ctx=64, n_threads=2, n_batch=13, self_extend=(4, 8)).eval(toks, True)
    ctx = _core.Context(mf, n_ctx=64, n_threads=2, n_batch=64, self_extend=(4, 8))
    decoded = np.concatenate([ctx.eval(toks[:10], True)] + [ctx.eval([t], False) for t in toks[10:]])
    np.testing.assert_allclose(chunked, one, atol=1e-4, rtol=0)
    np.testing.assert_allclose(decoded, one, atol=1e-4, rtol=0)
    plain = _core.Context(mf, n_ctx=64, n_threads=2, n_batch=64).eval(toks, True)
    assert np.abs(one - plain).max() > 1e-2  # it does change something past W


def test_model_below_window_is_plain_attention_exactly():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    mf = _core.ModelFile(path)
    toks = list(range(5, 35))
    plain = _core.Context(mf, n_ctx=64, n_threads=1).eval(toks, True)
    np.testing.assert_array_equal(_core.Context(mf, n_ctx=64, n_threads=1, self_extend=(4, 32)).eval(toks, True), plain)
    np.testing.assert_array_equal(_core.Context(mf, n_ctx=64, n_threads=1, self_extend=(1, 4)).eval(toks, True), plain)


def test_self_extend_refuses_context_shift_and_bad_options():
    path = syn.cached_model(**syn.preset_params("tiny-llama-bpe"))
    mf = _core.ModelFile(path)
    ctx = _core.Context(mf, n_ctx=32, n_threads=1, self_extend=(2, 4))
    ctx.eval(list(range(5, 25)), False)
    with pytest.raises(pyllong.InvalidArgumentError, match="not available with SelfExtend"):
        ctx.shift(2, 4)
    with pytest.raises(pyllong.InvalidArgumentError):
        pyllong.Model(path, self_extend=(3, 8))
    with pytest.raises(pyllong.InvalidArgumentError, match="below the training context"):
        pyllong.Model(path, self_extend=(2, 256))
    with pytest.warns(UserWarning, match="reach"):
        pyllong.Model(path, self_extend=(2, 8), n_ctx=1024)  # reach (256 - 8) * 2 + 8 = 504


def test_passkey_prompt_places_the_key():
    from pyllong import passkey

    tok = lambda s: s.split()  # noqa: E731  (a stand-in tokenizer: words)
    for depth in (0.0, 0.5, 1.0):
        p = passkey.build_prompt(tok, 400, depth, 12345)
        assert p.startswith(passkey.PREFIX) and p.endswith(passkey.QUESTION) and p.count("12345") == 2
        before = p[: p.index("The pass key is 12345")].count("The grass is green")
        total = p.count("The grass is green")
        assert abs(before / total - depth) < 0.05
        assert abs(len(tok(p)) - 400) < 25
