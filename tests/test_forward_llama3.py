"""A LLaMA-3-shaped synthetic model (arch `llama`, byte-level BPE vocab with
tokenizer.ggml.pre = "llama-bpe", rope freq base 500000, LLaMA-3.1 `rope_freqs.weight`
factors, GQA 8:2) through the native forward pass, against the independent float64 numpy
reference (tests/reference/forward.py): prefill, chunked prefill and decode."""
from __future__ import annotations

import math

import numpy as np
import pytest

from pyllong import _core
from pyllong.models import synthetic as syn
from reference.forward import reference_logits

N_HEAD, N_HEAD_KV, N_EMBD = 8, 2, 128          # head_dim 16, GQA 8:2
HEAD_DIM = N_EMBD // N_HEAD
ROPE_BASE = 500000.0
N_TOKENS = 160
TOL = 2e-3                                        # of the largest |logit|, as tests/test_forward.py


def llama31_rope_factors(n_rot: int, base: float, factor: float = 8.0, low_freq_factor: float = 1.0,
                         high_freq_factor: float = 4.0, old_context_len: int = 64) -> np.ndarray:
    """The divisors convert_hf_to_gguf.py writes as rope_freqs.weight for LLaMA-3.1 ("llama3"
    rope scaling). old_context_len is scaled down from 8192 so that, with a 16-dim head and a
    few hundred positions, the factors change the rotation by whole radians."""
    low_wavelen = old_context_len / low_freq_factor
    high_wavelen = old_context_len / high_freq_factor
    out = []
    for i in range(0, n_rot, 2):
        freq = 1.0 / base ** (i / n_rot)
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)


FACTORS = llama31_rope_factors(HEAD_DIM, ROPE_BASE)


def _params(with_factors: bool = True, **overrides) -> dict:
    params = dict(arch="llama", vocab="bpe", pre_tokenizer="llama-bpe", n_layer=2, n_embd=N_EMBD,
                  n_head=N_HEAD, n_head_kv=N_HEAD_KV, n_ff=256, n_ctx_train=8192, rope_freq_base=ROPE_BASE,
                  name="tiny-llama3", seed=3,
                  extra_metadata={"tokenizer.ggml.add_bos_token": True})  # as Meta-Llama-3 GGUFs have it
    if with_factors:
        params["override_tensors"] = {"rope_freqs.weight": FACTORS}
    params.update(overrides)
    return params


def _rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


@pytest.fixture(scope="module")
def llama3():
    path = syn.cached_model(**_params())
    mf = _core.ModelFile(path)
    toks = np.random.default_rng(7).integers(0, mf.hparams["n_vocab"], N_TOKENS).tolist()
    return path, mf, toks, reference_logits(path, toks)


def test_model_is_llama3_shaped(llama3):
    path, mf, _, _ = llama3
    hp = mf.hparams
    assert (hp["n_head"], hp["n_head_kv"], hp["n_embd"]) == (N_HEAD, N_HEAD_KV, N_EMBD)
    assert hp["rope_freq_base"] == pytest.approx(ROPE_BASE)
    assert mf.vocab["add_bos"] and mf.vocab["bos"] >= 0
    f = _core.GGUFFile(path)
    assert f.metadata["tokenizer.ggml.model"] == "gpt2" and f.metadata["tokenizer.ggml.pre"] == "llama-bpe"
    assert "rope_freqs.weight" in f.tensors and tuple(f.tensors["rope_freqs.weight"].shape) == (HEAD_DIM // 2,)
    # the factors are not all 1, and matter: without them the reference logits move far past TOL
    assert FACTORS.min() == 1.0 and FACTORS.max() == 8.0


def test_rope_factors_change_the_logits(llama3):
    path, _, toks, ref = llama3
    plain = reference_logits(syn.cached_model(**_params(with_factors=False)), toks)
    assert _rel_err(plain, ref) > 50 * TOL


@pytest.mark.parametrize("n_batch,n_threads", [(256, 1), (32, 2), (7, 2)])
def test_prefill_matches_reference(llama3, n_batch, n_threads):
    _, mf, toks, ref = llama3
    got = _core.Context(mf, n_ctx=256, n_threads=n_threads, n_batch=n_batch).eval(toks, True)
    assert got.shape == ref.shape
    assert _rel_err(got, ref) < TOL


def test_decode_token_by_token_matches_reference(llama3):
    _, mf, toks, ref = llama3
    ctx = _core.Context(mf, n_ctx=256, n_threads=2, n_batch=16)
    got = np.concatenate([ctx.eval(toks[:20], True)] + [ctx.eval([t], False) for t in toks[20:]])
    assert _rel_err(got, ref) < TOL


def test_quantized_llama3_matches_reference():
    path = syn.cached_model(**_params(qtype="Q8_0"))
    toks = list(range(3, 120))
    ref = reference_logits(path, toks)
    got = _core.Context(_core.ModelFile(path), n_ctx=256, n_threads=2, n_batch=32).eval(toks, True)
    assert _rel_err(got, ref) < 0.05  # 8-bit activations, as in tests/test_forward.py


def test_llama_bpe_tokenizer_adds_bos_and_round_trips(llama3):
    import pyllong

    path = llama3[0]
    with pyllong.Model(path, n_ctx=64, n_threads=1) as m:
        ids = m.tokenize("Hello world, 12345 don't")
        assert ids[0] == m.bos
        assert m.detokenize(ids[1:]) == "Hello world, 12345 don't"
