"""The sampler chain against direct numpy implementations written here from the definitions
(llama.cpp's semantics), not from pyllong/sampling.py."""
import math

import numpy as np
import pytest

from pyllong.errors import InvalidArgumentError
from pyllong.sampling import (Sampler, SamplingParams, apply_penalties, min_p, top_k, top_p, typical)

V = 300


def probs_of(logits):
    e = np.exp(logits - logits.max())
    return e / e.sum()


def logits_for(seed, n=V):
    return np.random.default_rng(seed).normal(0, 2, n).astype(np.float32)


# -- references --------------------------------------------------------------------------------

def ref_top_k_mask(logits, k):
    if k <= 0 or k >= len(logits):
        return np.ones(len(logits), bool)
    kth = np.sort(logits)[::-1][k - 1]
    return logits >= kth


def ref_top_p_mask(logits, p):
    """Smallest set of most probable tokens whose total probability is >= p."""
    if p >= 1:
        return np.ones(len(logits), bool)
    pr = probs_of(logits.astype(np.float64))
    mask = np.zeros(len(logits), bool)
    total = 0.0
    for i in sorted(range(len(logits)), key=lambda i: -pr[i]):
        mask[i] = True
        total += pr[i]
        if total >= p:
            break
    return mask


def ref_min_p_mask(logits, p):
    pr = probs_of(logits.astype(np.float64))
    return pr >= p * pr.max() * (1 - 1e-9)


def ref_typical_mask(logits, p):
    pr = probs_of(logits.astype(np.float64))
    entropy = -sum(q * math.log(q) for q in pr if q > 0)
    order = sorted(range(len(pr)), key=lambda i: abs(-math.log(pr[i]) - entropy))
    mask = np.zeros(len(pr), bool)
    total = 0.0
    for i in order:
        mask[i] = True
        total += pr[i]
        if total > p:
            break
    return mask


def ref_penalties(logits, window, rp, fp, pp):
    out = logits.astype(np.float64).copy()
    counts = {}
    for t in window:
        counts[t] = counts.get(t, 0) + 1
    for t, c in counts.items():
        out[t] = out[t] / rp if out[t] > 0 else out[t] * rp
        out[t] -= c * fp + (1 if c > 0 else 0) * pp
    return out


def as_mask(ids, n=V):
    m = np.zeros(n, bool)
    m[ids] = True
    return m


# -- filters -----------------------------------------------------------------------------------

ALL = np.arange(V)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [0, 1, 5, 40, V - 1, V, V + 10])
def test_top_k(seed, k):
    lg = logits_for(seed)
    ids, vals = top_k(ALL, lg, k)
    assert np.array_equal(as_mask(ids), ref_top_k_mask(lg, k))
    assert np.array_equal(vals, lg[ids])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [0.01, 0.3, 0.9, 0.95, 0.999, 1.0])
def test_top_p(seed, p):
    lg = logits_for(seed)
    ids, vals = top_p(ALL, lg, p)
    assert np.array_equal(as_mask(ids), ref_top_p_mask(lg, p))
    assert p >= 1 or np.all(np.diff(vals) <= 0)  # sorted, most probable first (p = 1 is a no-op)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [0.0, 0.01, 0.05, 0.3, 1.0])
def test_min_p(seed, p):
    lg = logits_for(seed)
    ids, _ = min_p(ALL, lg, p)
    assert np.array_equal(as_mask(ids), ref_min_p_mask(lg, p) if p > 0 else np.ones(V, bool))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9, 1.0])
def test_typical(seed, p):
    lg = logits_for(seed)
    ids, _ = typical(ALL, lg, p)
    assert np.array_equal(as_mask(ids), ref_typical_mask(lg, p) if p < 1 else np.ones(V, bool))


@pytest.mark.parametrize("rp,fp,pp", [(1.1, 0, 0), (1.5, 0.2, 0.3), (0.8, -0.5, 1.0), (1.0, 0, 0)])
def test_penalties_llama_formula(rp, fp, pp):
    lg = logits_for(7)
    window = np.random.default_rng(3).integers(0, 30, 64)  # repeats guaranteed
    got = lg.copy()
    apply_penalties(got, window, rp, fp, pp)
    np.testing.assert_allclose(got, ref_penalties(lg, window, rp, fp, pp), rtol=1e-6, atol=1e-6)


def test_penalty_window_is_the_last_n_tokens():
    lg = np.full(V, 2.0, np.float32)
    history = np.array([5] * 10 + [6] * 3, np.int32)
    s = Sampler(SamplingParams(temperature=0, repeat_penalty=2.0, repeat_last_n=3), V, np.random.default_rng(0))
    out = s.prepare(lg, history)
    assert out[6] == 1.0 and out[5] == 2.0  # 5 is outside the window of 3
    s0 = Sampler(SamplingParams(temperature=0, repeat_penalty=2.0, repeat_last_n=0), V, np.random.default_rng(0))
    assert np.all(s0.prepare(lg, history) == 2.0)
    sall = Sampler(SamplingParams(temperature=0, repeat_penalty=2.0, repeat_last_n=-1), V, np.random.default_rng(0))
    out = sall.prepare(lg, history)
    assert out[5] == 1.0 and out[6] == 1.0


# -- the chain ---------------------------------------------------------------------------------

def ref_chain_distribution(lg, history, sp):
    """The final sampling distribution, from the reference pieces in llama.cpp's order."""
    x = lg.astype(np.float64).copy()
    for t, b in sp.logit_bias.items():
        x[t] += b
    window = history[-sp.repeat_last_n:] if sp.repeat_last_n > 0 else history
    x = ref_penalties(x, window, sp.repeat_penalty, sp.frequency_penalty, sp.presence_penalty)
    alive = np.ones(V, bool)
    for fn, arg in ((ref_top_k_mask, sp.top_k), (ref_typical_mask, sp.typical_p), (ref_top_p_mask, sp.top_p),
                    (ref_min_p_mask, sp.min_p)):
        if (fn is ref_typical_mask and arg >= 1) or (fn is ref_min_p_mask and arg <= 0):
            continue
        sub = np.where(alive)[0]
        m = fn(x[sub], arg)
        alive[:] = False
        alive[sub[m]] = True
    out = np.zeros(V)
    out[alive] = probs_of(x[alive] / sp.temperature)
    return out


@pytest.mark.parametrize("params", [
    dict(),
    dict(top_k=0, top_p=0.5, min_p=0.0),
    dict(top_k=10, top_p=1.0, min_p=0.2, temperature=1.5),
    dict(typical_p=0.7, top_k=0),
    dict(logit_bias={3: 5.0, 4: -math.inf}, repeat_penalty=1.3, frequency_penalty=0.1, presence_penalty=0.2),
    dict(top_k=0, top_p=1.0, min_p=0.1, repeat_last_n=-1, frequency_penalty=-0.5),
])
@pytest.mark.parametrize("native", [True, False])  # the native chain (_core.Sampler) and the numpy one
def test_chain_samples_the_reference_distribution(params, native):
    lg = logits_for(11)
    history = np.random.default_rng(2).integers(0, V, 40).astype(np.int32)
    sp = SamplingParams(**params).validate(V)
    expected = ref_chain_distribution(lg, history, sp)
    s = Sampler(sp, V, np.random.default_rng(123), native=native)
    assert (s._native is not None) == (native and sp.typical_p >= 1.0)
    n = 4000
    counts = np.bincount([s.sample(lg, history) for _ in range(n)], minlength=V)
    assert np.all(counts[expected == 0] == 0), "sampled a token the chain filters out"
    # every frequency within 5 sigma of its expectation
    sigma = np.sqrt(n * expected * (1 - expected)) + 1
    assert np.all(np.abs(counts - n * expected) <= 5 * sigma)


@pytest.mark.parametrize("native", [True, False])
def test_greedy_is_argmax_after_bias_and_penalties(native):
    lg = logits_for(4)
    top = int(np.argmax(lg))
    s = Sampler(SamplingParams(temperature=0, repeat_penalty=1.0), V, np.random.default_rng(0), native=native)
    assert s.sample(lg, np.array([], np.int32)) == top
    # a repeat penalty on the top token: argmax of the reference formula
    hist = np.array([top, top], np.int32)
    s = Sampler(SamplingParams(temperature=0, repeat_penalty=50.0, presence_penalty=2.0), V, np.random.default_rng(0),
                native=native)
    assert s.sample(lg, hist) == int(np.argmax(ref_penalties(lg, hist, 50.0, 0.0, 2.0)))
    s = Sampler(SamplingParams(temperature=0, logit_bias={top: -math.inf}, repeat_penalty=1.0), V, np.random.default_rng(0),
                native=native)
    lg2 = lg.copy()
    lg2[top] = -np.inf
    assert s.sample(lg, np.array([], np.int32)) == int(np.argmax(lg2))


def test_logits_processor_sees_history_and_can_ban():
    seen = {}

    def ban_low(input_ids, scores):
        seen["ids"] = input_ids.copy()
        scores = scores.copy()
        scores[:V // 2] = -np.inf
        return scores

    s = Sampler(SamplingParams(logits_processor=[ban_low], top_k=0, top_p=1.0, min_p=0.0),
                V, np.random.default_rng(0))
    hist = np.array([1, 2, 3], np.int32)
    draws = {s.sample(logits_for(1), hist) for _ in range(200)}
    assert min(draws) >= V // 2 and list(seen["ids"]) == [1, 2, 3]


def test_same_seed_same_draws():
    lg = logits_for(9)
    h = np.array([], np.int32)
    a = [Sampler(SamplingParams(), V, np.random.default_rng(42)).sample(lg, h) for _ in range(3)]
    s1, s2 = (Sampler(SamplingParams(), V, np.random.default_rng(42)) for _ in range(2))
    assert [s1.sample(lg, h) for _ in range(50)] == [s2.sample(lg, h) for _ in range(50)]
    assert len(set(a)) == 1


@pytest.mark.parametrize("bad, match", [
    (dict(temperature=-0.1), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=-1), "top_k"), (dict(top_k=2.5), "top_k"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(min_p=-0.1), "min_p"), (dict(min_p=2), "min_p"), (dict(typical_p=0), "typical_p"),
    (dict(repeat_penalty=0), "repeat_penalty"), (dict(repeat_last_n=-2), "repeat_last_n"),
    (dict(frequency_penalty=3), "frequency_penalty"), (dict(presence_penalty="a"), "presence_penalty"),
    (dict(logit_bias={V: 1.0}), "logit_bias"), (dict(logit_bias={-1: 1.0}), "logit_bias"),
    (dict(logit_bias={1: "x"}), "logit_bias"), (dict(logit_bias=[1]), "logit_bias"),
    (dict(logits_processor=[1]), "logits_processor"),
])
def test_invalid_parameters_are_typed_and_named(bad, match):
    with pytest.raises(InvalidArgumentError, match=match):
        SamplingParams(**bad).validate(V)


@pytest.mark.parametrize("native", [True, False])
def test_all_banned_is_an_error(native):
    s = Sampler(SamplingParams(logit_bias={i: -math.inf for i in range(V)}).validate(V), V, np.random.default_rng(0),
                native=native)
    with pytest.raises(InvalidArgumentError, match="nothing can be sampled"):
        s.sample(logits_for(0), np.array([], np.int32))


# -- the fast paths on a real-sized vocabulary ---------------------------------------------------

@pytest.mark.parametrize("n", [49152, 50257, 32000])
@pytest.mark.parametrize("k", [1, 40, 100, 1000])
def test_largest_indices_on_big_vocab(n, k):
    from pyllong.sampling import largest_indices

    rng = np.random.default_rng(n + k)
    for values in (rng.normal(0, 3, n).astype(np.float32),
                   np.round(rng.normal(0, 1, n), 1).astype(np.float32)):  # many ties
        got = largest_indices(values, k)
        assert len(got) == k and len(set(got.tolist())) == k
        kth = np.sort(values)[::-1][k - 1]
        assert np.all(values[got] >= kth) and np.sum(values > kth) <= k


@pytest.mark.parametrize("scale", [1.0, 3.0, 8.0])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95])
def test_top_p_on_big_vocab_matches_full_sort(scale, p):
    n = 49152
    lg = np.random.default_rng(int(scale * 10)).normal(0, scale, n).astype(np.float32)
    ids, _ = top_p(np.arange(n), lg, p)
    pr = probs_of(lg.astype(np.float64))
    order = np.argsort(-pr, kind="stable")
    cut = int(np.searchsorted(np.cumsum(pr[order]), p)) + 1
    assert set(ids.tolist()) == set(order[:cut].tolist())


# -- the native chain against the numpy one, draw for draw -----------------------------------------

@pytest.mark.parametrize("params", [
    dict(),
    dict(temperature=0),
    dict(top_k=0, top_p=0.9, min_p=0.0),
    dict(top_k=0, top_p=1.0, min_p=0.0, temperature=1.3),
    dict(top_k=100, top_p=1.0, min_p=0.0),
    dict(top_k=5, top_p=0.5, min_p=0.3, temperature=0.5),
    dict(repeat_penalty=1.5, frequency_penalty=0.3, presence_penalty=-0.4, repeat_last_n=-1, logit_bias={7: 3.0, 9: -math.inf}),
])
@pytest.mark.parametrize("n_vocab", [V, 49152])
def test_native_chain_draws_what_the_numpy_chain_draws(params, n_vocab):
    """Same seed, same tokens: the native chain is fed the numpy generator's draws and ranks
    candidates the same way (random normal logits have no exact ties)."""
    rng = np.random.default_rng(n_vocab)
    sp = SamplingParams(**params).validate(n_vocab)
    nat = Sampler(sp, n_vocab, np.random.default_rng(5))
    ref = Sampler(sp, n_vocab, np.random.default_rng(5), native=False)
    assert nat._native is not None and ref._native is None
    for step in range(60):
        lg = rng.normal(0, 3, n_vocab).astype(np.float32)
        hist = rng.integers(0, n_vocab, int(rng.integers(0, 100))).astype(np.int32)
        assert nat.sample(lg, hist) == ref.sample(lg, hist), f"step {step}"
