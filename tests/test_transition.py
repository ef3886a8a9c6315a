"""Attention Transition (../shared/spec/attention-transition.md) in the native attention loop
against an independent numpy oracle written from the spec's steps 1-5."""
from __future__ import annotations

import numpy as np
import pytest

import pyllong
from pyllong import _core
from pyllong.models import synthetic as syn


# --- the oracle, steps 1-4, written from the spec's text ----------------------------------

def oracle_bands(N, n_layer, layer, m):
    """Steps 1-3: I and the layer's bands [(s, e)] (rows clipped to N later), or None."""
    if N < 400:
        return None
    T = (n_layer - 1) + m
    I = (N // T) // 5 * 5
    if I == 0 or not 1 <= layer <= n_layer - 3:
        return None
    t = layer - 1
    return I, [((t + b + 2) * I, (t + b + 3) * I) for b in range(m)]


def oracle_edit(p, s, e, I, alpha, beta):
    """Step 4 on one row p (keys after the row are 0), float64 except the threshold test."""
    p = p.astype(np.float64).copy()
    tau = np.float32(alpha) / np.float32(e)
    keys = np.arange(len(p)) < e
    p[keys & (p.astype(np.float32) < tau)] = 0.0
    p[0] /= 2
    E = 1.0 - p[:e].sum()
    if s != I:
        M = np.where(p[s - 2 * I:e - I].astype(np.float32) >= tau, 1.0, 0.01)  # keys [s-2I, e-I)
        a = beta * E / M.sum()
        p[s - I:e - I] += 7 * a * M[I:]        # keys [s-I, e-I) are M's second half
        p[s - 2 * I:e - 2 * I] += 3 * a * M[:I]
    else:
        M = np.where(p[:e - I].astype(np.float32) >= tau, 1.0, 0.001)
        a = beta * E / M.sum()
        p[s - I:e - I] += 10 * a * M
    return p


def oracle_edit_matrix(P, N, n_layer, layer, m, alpha, beta):
    """P (N, N) causal probabilities of one head; returns the edited copy."""
    P = P.astype(np.float64).copy()
    bands = oracle_bands(N, n_layer, layer, m)
    if bands is None:
        return P
    I, spans = bands
    for s, e in spans:
        for r in range(s, min(e, N)):
            P[r] = oracle_edit(P[r], s, e, I, alpha, beta)
    return P


def causal_rows(rng, r, n_keys, conc=0.3):
    """Random probability rows over keys 0..r (Dirichlet, so many weights fall below tau)."""
    out = np.zeros((len(r), n_keys), np.float32)
    for i, ri in enumerate(r):
        out[i, :ri + 1] = rng.dirichlet(np.full(ri + 1, conc))
    return out


# --- the row edit ---------------------------------------------------------------------------

GRID = [  # N, n_layer, m, alpha, beta
    (400, 4, 2, 0.5, 0.1), (777, 24, 2, 0.5, 0.1), (2048, 32, 2, 0.5, 0.1), (2048, 32, 3, 1.0, 0.3),
    (1500, 30, 1, 2.0, 0.5), (5000, 12, 4, 0.25, 1.0), (999, 6, 2, 0.5, 0.1), (399, 32, 2, 0.5, 0.1),
    (450, 32, 2, 0.5, 0.1),  # I = floor(450 / 33) = 13 -> 10
    (160, 3, 2, 0.5, 0.1),   # N < 400: untouched
]


@pytest.mark.parametrize("N,n_layer,m,alpha,beta", GRID)
def test_row_edit_matches_oracle(N, n_layer, m, alpha, beta):
    rng = np.random.default_rng(N + n_layer)
    n_edited = 0
    for layer in range(n_layer):
        bands = oracle_bands(N, n_layer, layer, m)
        r = rng.choice(N, size=min(N, 24), replace=False)  # rows anywhere in the prompt ...
        if bands:
            I, spans = bands
            lo, hi = spans[0][0], min(spans[-1][1], N)
            r = np.concatenate([r, np.arange(lo, hi)[rng.permutation(hi - lo)[:24]], [lo, hi - 1]])  # ... and in bands
        rows = causal_rows(rng, r, N)
        got, (I_got, lo_got, hi_got) = _core.transition_probe(rows, r.astype(np.int64), N, n_layer, layer, alpha, beta, m)
        if bands is None:
            assert lo_got == hi_got
            np.testing.assert_array_equal(got, rows)
            continue
        I, spans = bands
        assert (I_got, lo_got, hi_got) == (I, min(spans[0][0], N), min(spans[-1][1], N))
        for i, ri in enumerate(r):
            band = [(s, e) for s, e in spans if s <= ri < min(e, N)]
            want = oracle_edit(rows[i], *band[0], I, alpha, beta) if band else rows[i]
            n_edited += bool(band)
            np.testing.assert_allclose(got[i], want, rtol=2e-5, atol=2e-7, err_msg=f"layer {layer} row {ri}")
    if oracle_bands(N, n_layer, 1, m):
        assert n_edited > 0


def test_row_edit_moves_mass_as_the_spec_says():
    """Independent of the oracle: mass below tau is gone, the kept mass plus beta*E partly returns
    to the two I-wide spans before the band, and nothing is renormalized."""
    rng = np.random.default_rng(1)
    N, n_layer, layer = 2000, 8, 2
    I = (N // 9) // 5 * 5
    s = (layer - 1 + 2) * I
    r = np.array([s + 3])
    rows = causal_rows(rng, r, N)
    got = _core.transition_probe(rows, r, N, n_layer, layer, 0.5, 0.1, 2)[0][0]
    assert got[s:].max() <= rows[0, s:].max() and got.sum() < 1.0
    assert (got[s - 2 * I:s] >= np.where(rows[0, s - 2 * I:s] >= 0.5 / (s + I), rows[0, s - 2 * I:s], 0)).all()


# --- inside the attention loop: one-shot, chunked (tiled and per-row paths), decode -------

def full_attention(q, k, v):
    """Causal softmax(q k^T / sqrt(D)) per head in float64 with f16-rounded k and v (the cache's
    storage), n_rot = 0. Returns the probabilities (H, n, n) and v per head."""
    n, H, D = q.shape
    group = H // k.shape[1]
    k16, v16 = k.astype(np.float16).astype(np.float64), v.astype(np.float16).astype(np.float64)
    P = np.zeros((H, n, n))
    for h in range(H):
        sc = q[:, h].astype(np.float64) @ k16[:, h // group].T / np.sqrt(D)
        sc[np.triu_indices(n, 1)] = -np.inf
        e = np.exp(sc - sc.max(1, keepdims=True))
        P[h] = e / e.sum(1, keepdims=True)
    return P, [v16[:, h // group] for h in range(H)]


@pytest.mark.parametrize("n,n_layer,layer,m,alpha,beta", [
    (420, 4, 1, 2, 0.5, 0.1), (600, 8, 3, 2, 0.5, 0.1), (700, 10, 2, 3, 1.0, 0.4), (500, 5, 2, 1, 0.5, 0.1),
    # bands at rows 680-1020: small chunks there see more keys than the split decode kernel's
    # threshold (512), which has no edit; they must stay on the per-row path
    (1200, 6, 3, 2, 0.5, 0.1)])
@pytest.mark.parametrize("chunk", [1 << 30, 64, 5])  # one shot, tiled chunks, per-row chunks (5 * 2 < 16 rows)
def test_attention_loop_matches_oracle(n, n_layer, layer, m, alpha, beta, chunk):
    H, Hkv, D = 4, 2, 16
    rng = np.random.default_rng(n + chunk)
    q, k, v = (rng.standard_normal((n, h, D)).astype(np.float32) * 2 for h in (H, Hkv, Hkv))
    P, vh = full_attention(q, k, v)
    want = np.stack([oracle_edit_matrix(P[h], n, n_layer, layer, m, alpha, beta) @ vh[h] for h in range(H)], 1)
    got = _core.attention_probe(q, k, v, 0, 10000.0, False, chunk, None, "f16", 2, transition=(alpha, beta, m, n_layer, layer))
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=0)
    plain = _core.attention_probe(q, k, v, 0, 10000.0, False, chunk, None, "f16", 2)
    I, spans = oracle_bands(n, n_layer, layer, m)
    banded = np.zeros(n, bool)
    banded[spans[0][0]:min(spans[-1][1], n)] = True
    np.testing.assert_array_equal(got[~banded], plain[~banded])  # rows outside the bands: untouched, bit for bit
    assert np.abs(got[banded] - plain[banded]).max() > 1e-2       # and the edit does something


def test_probe_layers_outside_the_edit_are_plain_exactly():
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((450, h, 16)).astype(np.float32) for h in (2, 1, 1))
    plain = _core.attention_probe(q, k, v, 16, 10000.0, False, 64, None, "f16", 1)
    for layer in (0, 5, 6):  # first layer, last two of 7
        got = _core.attention_probe(q, k, v, 16, 10000.0, False, 64, None, "f16", 1, transition=(0.5, 0.1, 2, 7, layer))
        np.testing.assert_array_equal(got, plain)


# --- whole model ----------------------------------------------------------------------------

def _model_path():
    return syn.cached_model(**syn.preset_params("tiny-llama-bpe", n_layer=5, n_ctx_train=1024))


def _tokens(n, seed=0):
    return np.random.default_rng(seed).integers(5, 500, n).tolist()


def test_off_is_bit_identical_and_on_changes_the_prompt_pass():
    mf = _core.ModelFile(_model_path())
    toks = _tokens(480)
    plain = _core.Context(mf, n_ctx=512, n_threads=2).eval(toks, True)
    off = _core.Context(mf, n_ctx=512, n_threads=2, transition=None).eval(toks, True)
    np.testing.assert_array_equal(off, plain)
    on = _core.Context(mf, n_ctx=512, n_threads=2, transition=(0.5, 0.1, 2)).eval(toks, True)
    # layers 1..2 of 5 are edited, bands start at 2I (I = 480 // 6 // 5 * 5 = 80): rows before 160 see no edit
    np.testing.assert_array_equal(on[:160], plain[:160])
    assert np.abs(on[160:] - plain[160:]).max() > 1e-3
    short = _tokens(300)  # N < 400: nothing to edit
    np.testing.assert_array_equal(_core.Context(mf, n_ctx=512, n_threads=2, transition=(0.5, 0.1, 2)).eval(short, True),
                                  _core.Context(mf, n_ctx=512, n_threads=2).eval(short, True))


def test_chunked_prefill_uses_absolute_bands():
    mf = _core.ModelFile(_model_path())
    toks = _tokens(480, seed=1)
    one = _core.Context(mf, n_ctx=512, n_threads=2, n_batch=512, transition=(0.5, 0.1, 2)).eval(toks, True)
    chunked = _core.Context(mf, n_ctx=512, n_threads=2, n_batch=37, transition=(0.5, 0.1, 2)).eval(toks, True)
    np.testing.assert_allclose(chunked, one, atol=1e-4, rtol=0)
    # a caller that feeds the prompt in pieces names N itself
    ctx = _core.Context(mf, n_ctx=512, n_threads=2, transition=(0.5, 0.1, 2))
    pieces = [ctx.eval(toks[a:a + 100], True, prompt_len=480) for a in range(0, 480, 100)]
    np.testing.assert_allclose(np.concatenate(pieces), one, atol=1e-4, rtol=0)


def test_model_option_forms():
    path = _model_path()
    assert pyllong.Model(path, n_ctx=512).transition is None
    assert pyllong.Model(path, n_ctx=512, transition=False).transition is None
    m = pyllong.Model(path, n_ctx=512, transition=True)
    assert m.transition == pyllong.Transition(0.5, 0.1, 2) and m.ctx.transition == pytest.approx((0.5, 0.1, 2))
    m = pyllong.Model(path, n_ctx=512, transition=pyllong.Transition(alpha=1.0, beta=0.2, bands=3))
    assert m.ctx.transition == pytest.approx((1.0, 0.2, 3))
    toks = _tokens(450, seed=2)
    a = pyllong.Model(path, n_ctx=512, n_threads=2, transition=None)
    b = pyllong.Model(path, n_ctx=512, n_threads=2)
    np.testing.assert_array_equal(a.eval(toks), b.eval(toks))


@pytest.mark.parametrize("bad,frag", [
    (dict(transition="yes"), "transition must be"), (dict(transition=pyllong.Transition), "transition must be"),
])
def test_model_rejects_bad_options(bad, frag):
    with pytest.raises(pyllong.InvalidArgumentError, match=frag):
        pyllong.Model(_model_path(), n_ctx=512, **bad)


@pytest.mark.parametrize("kw,frag", [(dict(alpha=-1), "alpha"), (dict(beta=float("nan")), "beta"),
                                     (dict(bands=0), "bands"), (dict(bands=2.5), "bands")])
def test_transition_validates(kw, frag):
    with pytest.raises(pyllong.InvalidArgumentError, match=frag):
        pyllong.Transition(**kw)


def test_native_validates():
    mf = _core.ModelFile(_model_path())
    with pytest.raises(pyllong.InvalidArgumentError, match="bands"):
        _core.Context(mf, n_ctx=512, transition=(0.5, 0.1, 0))
    with pytest.raises(pyllong.InvalidArgumentError, match="alpha"):
        _core.Context(mf, n_ctx=512, transition=(-0.5, 0.1, 2))


def test_cli_parse():
    from pyllong.transition import parse_transition
    assert parse_transition("on") == pyllong.Transition()
    assert parse_transition("1,0.2,3") == pyllong.Transition(1.0, 0.2, 3)
    with pytest.raises(pyllong.InvalidArgumentError, match="ALPHA,BETA"):
        parse_transition("x")


# --- pyllong-chat: the same edit through the C++ generator's chunked prefill ---------------

def test_pyllong_chat_transition_equals_python(chat_bin):
    import subprocess

    path = _model_path()
    prompt = " ".join(f"word{i % 37}" for i in range(130))  # about 500 tokens: bands exist
    m = pyllong.Model(path, n_ctx=1024)
    assert 400 <= len(m.tokenize_chat(m.render_chat([{"role": "user", "content": prompt}]))) < 1000
    for flag, tr in (("--transition", True), (None, None)):
        want = str(pyllong.Model(path, n_ctx=1024, transition=tr).chat([{"role": "user", "content": prompt}],
                                                                         temperature=0, max_tokens=24))
        args = [str(chat_bin), "-m", path, "-c", "1024", "-b", "50", "-n", "24", "--temp", "0", "-p", prompt]
        res = subprocess.run(args + ([flag] if flag else []), capture_output=True, timeout=300)
        assert res.returncode == 0, res.stderr.decode()
        assert res.stdout.decode() == want + "\n"
    bad = subprocess.run([str(chat_bin), "--transition=1", "-p", "x"], capture_output=True, timeout=60)
    assert bad.returncode != 0 and b"ALPHA,BETA" in bad.stderr


def test_model_chunked_in_python_keeps_the_whole_prompt_length():
    """Model feeds a long prompt to the native loop in n_batch pieces (Ctrl-C lands between
    them): the bands must still follow the whole prompt, whose last piece may be one token."""
    path = _model_path()
    toks = _tokens(482, seed=4)  # 482 = 13 * 37 + 1: the last piece is a single token
    one = pyllong.Model(path, n_ctx=512, n_threads=2, n_batch=512, transition=True).eval(toks)
    pieces = pyllong.Model(path, n_ctx=512, n_threads=2, n_batch=37, transition=True).eval(toks)
    np.testing.assert_allclose(pieces, one, atol=1e-4, rtol=0)
    plain = pyllong.Model(path, n_ctx=512, n_threads=2, n_batch=37).eval(toks)
    assert np.abs(pieces - plain).max() > 1e-3


def test_transition_refuses_memory():
    with pytest.raises(pyllong.InvalidArgumentError, match="cannot be combined"):
        pyllong.Model(_model_path(), n_ctx=512, transition=True, memory=True)
