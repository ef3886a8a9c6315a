"""Self-consistency of the float64 numpy reference forward pass (tests/reference/forward.py).

The reference is what pyllong's forward pass is judged against, so it is checked here by
properties that follow from the architectures' definitions: causality, relative positions,
tied embeddings, GQA as repeated KV heads, the sliding window's reach, RoPE's pairing."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `reference`

from pyllong.models import synthetic as syn  # noqa: E402
from reference import forward as ref  # noqa: E402
from reference.forward import reference_logits  # noqa: E402

ARCH_PRESETS = ["tiny-llama-bpe", "tiny-llama-spm", "tiny-mistral", "tiny-phi2", "tiny-phi3"]
TOKENS = [5, 300, 17, 42, 260, 261, 99, 3, 400, 7, 8, 9, 10, 11, 300, 300, 12, 13, 14, 15, 16, 270, 280, 290, 1]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    return {p: syn.build_preset(p, d / f"{p}.gguf") for p in ARCH_PRESETS}


@pytest.mark.parametrize("preset", ARCH_PRESETS)
def test_prefix_logits_equal_first_rows(preset, files):
    full = reference_logits(files[preset], TOKENS)
    assert full.shape == (len(TOKENS), 512) and full.dtype == np.float64
    assert np.isfinite(full).all()
    for k in (1, 7, 20):
        np.testing.assert_allclose(reference_logits(files[preset], TOKENS[:k]), full[:k], rtol=0, atol=1e-11)


@pytest.mark.parametrize("preset", ARCH_PRESETS)
def test_logits_are_not_degenerate(preset, files):
    logits = reference_logits(files[preset], TOKENS)
    assert 0.3 < logits.std() < 5  # O(1) logits: softmax neither flat nor one-hot
    assert len(set(logits.argmax(axis=1))) > 3


@pytest.mark.parametrize("preset", ARCH_PRESETS)
def test_shifting_all_positions_changes_nothing(preset, files):
    # RoPE makes attention depend on position differences only.
    base = reference_logits(files[preset], TOKENS)
    shifted = reference_logits(files[preset], TOKENS, positions=np.arange(len(TOKENS)) + 1000)
    np.testing.assert_allclose(shifted, base, rtol=0, atol=1e-9)


@pytest.mark.parametrize("preset", ARCH_PRESETS)
def test_positions_matter(preset, files):
    base = reference_logits(files[preset], TOKENS)
    spread = reference_logits(files[preset], TOKENS, positions=np.arange(len(TOKENS)) * 3)
    assert np.abs(spread[0] - base[0]).max() < 1e-12       # one token: nothing relative yet
    assert np.abs(spread[1:] - base[1:]).max() > 1e-3


def test_default_positions_are_0_to_n(files):
    a = reference_logits(files["tiny-phi3"], TOKENS)
    b = reference_logits(files["tiny-phi3"], TOKENS, positions=list(range(len(TOKENS))))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_tied_embeddings_equal_an_explicit_output_copy(arch, tmp_path):
    tied = syn.build_model(tmp_path / "tied.gguf", arch=arch, tied_embeddings=True, qtype="Q8_0")
    _, tensors = syn.model_fields(arch=arch, tied_embeddings=True, qtype="Q8_0")
    explicit = syn.build_model(tmp_path / "explicit.gguf", arch=arch, tied_embeddings=True, qtype="Q8_0",
                               override_tensors={"output.weight": tensors["token_embd.weight"]})
    np.testing.assert_array_equal(reference_logits(tied, TOKENS), reference_logits(explicit, TOKENS))
    untied = syn.build_model(tmp_path / "untied.gguf", arch=arch, qtype="Q8_0")
    assert np.abs(reference_logits(untied, TOKENS) - reference_logits(tied, TOKENS)).max() > 1e-3


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_gqa_equals_mha_with_repeated_kv_heads(arch, tmp_path):
    # A GQA model (4 query heads, 2 KV heads) equals the MHA model whose K/V heads are the
    # GQA heads repeated: query head h reads KV head h // 2.
    kw = dict(arch=arch, n_head=4, n_embd=64, qtype="F32")
    gqa = syn.build_model(tmp_path / "gqa.gguf", n_head_kv=2, **kw)
    _, t = syn.model_fields(n_head_kv=2, **kw)
    head_dim, n_layer = 16, 2

    def repeat_heads(w, n_kv):  # (n_kv * head_dim, n_embd) -> (2 * n_kv * head_dim, n_embd)
        return np.repeat(w.reshape(n_kv, head_dim, -1), 2, axis=0).reshape(2 * n_kv * head_dim, -1)

    overrides = {}
    for i in range(n_layer):
        if arch == "llama":
            for name in ("attn_k", "attn_v"):
                overrides[f"blk.{i}.{name}.weight"] = repeat_heads(t[f"blk.{i}.{name}.weight"].data, 2)
        else:
            qkv = t[f"blk.{i}.attn_qkv.weight"].data            # rows: q (64) | k (32) | v (32)
            q, k, v = qkv[:64], qkv[64:96], qkv[96:]
            overrides[f"blk.{i}.attn_qkv.weight"] = np.concatenate([q, repeat_heads(k, 2), repeat_heads(v, 2)])
    mha = syn.build_model(tmp_path / "mha.gguf", n_head_kv=4, override_tensors=overrides, **kw)
    np.testing.assert_allclose(reference_logits(mha, TOKENS), reference_logits(gqa, TOKENS), rtol=0, atol=1e-10)


def test_sliding_window_reach_with_one_layer(tmp_path):
    # With one layer, the last query under window W sees exactly the last W tokens, so its
    # logits equal those of running the last W tokens alone (positions kept).
    window = 5
    path = syn.build_model(tmp_path / "swa.gguf", arch="mistral", vocab="spm", n_layer=1, sliding_window=window)
    full = reference_logits(path, TOKENS)
    n = len(TOKENS)
    for last in (window - 1, 10, n - 1):
        start = max(0, last - window + 1)
        alone = reference_logits(path, TOKENS[start:last + 1], positions=list(range(start, last + 1)))
        np.testing.assert_allclose(alone[-1], full[last], rtol=0, atol=1e-11)


def test_sliding_window_only_affects_far_queries(tmp_path):
    window = 6
    swa = syn.build_model(tmp_path / "swa.gguf", arch="mistral", vocab="spm", sliding_window=window)
    full = syn.build_model(tmp_path / "full.gguf", arch="mistral", vocab="spm", sliding_window=window,
                           drop_metadata=["llama.attention.sliding_window"])
    a, b = reference_logits(swa, TOKENS), reference_logits(full, TOKENS)
    np.testing.assert_allclose(a[:window], b[:window], rtol=0, atol=1e-12)
    assert np.abs(a[window:] - b[window:]).max() > 1e-3
    wide = syn.build_model(tmp_path / "wide.gguf", arch="mistral", vocab="spm", sliding_window=len(TOKENS))
    np.testing.assert_allclose(reference_logits(wide, TOKENS), b, rtol=0, atol=1e-12)


def test_rope_normal_mode_rotates_adjacent_pairs():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 2, 8))                         # (tokens, heads, head_dim)
    angles = ref.rope_angles(np.array([0, 1, 5]), 8, 10000.0)  # (3, 4)
    y = ref.apply_rope(x, angles, 8, ref.ROPE_NORMAL)
    z = (x[..., 0::2] + 1j * x[..., 1::2]) * np.exp(1j * angles)[:, None, :]
    np.testing.assert_allclose(y[..., 0::2], z.real, atol=1e-14)
    np.testing.assert_allclose(y[..., 1::2], z.imag, atol=1e-14)
    np.testing.assert_array_equal(y[0], x[0])                  # position 0: identity
    assert angles[2, 0] == 5.0 and angles[2, 1] == pytest.approx(5.0 * 10000 ** (-2 / 8))


def test_rope_neox_partial_rotates_halves_of_the_first_n_rot_dims():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 1, 16))
    n_rot = 6
    angles = ref.rope_angles(np.array([3, 7]), n_rot, 10000.0)  # (2, 3)
    y = ref.apply_rope(x, angles, n_rot, ref.ROPE_NEOX)
    np.testing.assert_array_equal(y[..., n_rot:], x[..., n_rot:])  # pass-through dims
    z = (x[..., :3] + 1j * x[..., 3:6]) * np.exp(1j * angles)[:, None, :]
    np.testing.assert_allclose(y[..., :3], z.real, atol=1e-14)
    np.testing.assert_allclose(y[..., 3:6], z.imag, atol=1e-14)


def test_linear_rope_scaling_is_compressed_positions(tmp_path):
    # rope.scaling linear factor s: position p rotates like p / s.
    scaled = syn.build_model(tmp_path / "s.gguf", extra_metadata={"llama.rope.scaling.type": "linear",
                                                                   "llama.rope.scaling.factor": 4.0})
    plain = syn.build_model(tmp_path / "p.gguf")
    pos = np.arange(len(TOKENS)) * 4
    np.testing.assert_allclose(reference_logits(scaled, TOKENS, positions=pos),
                               reference_logits(plain, TOKENS), rtol=0, atol=1e-10)


def test_phi2_rotary_dims_matter(tmp_path):
    a = syn.build_preset("tiny-phi2", tmp_path / "a.gguf", n_rot=8)
    b = syn.build_preset("tiny-phi2", tmp_path / "b.gguf", n_rot=16)
    assert np.abs(reference_logits(a, TOKENS) - reference_logits(b, TOKENS)).max() > 1e-3


def test_norms_and_activations():
    x = np.array([[1.0, -2.0, 3.0, 0.5]])
    w = np.array([1.0, 2.0, 0.5, 1.0])
    np.testing.assert_allclose(ref.rms_norm(x, w, 0.0), x / np.sqrt(np.mean(x ** 2)) * w)
    ln = ref.layer_norm(x, np.ones(4), np.zeros(4), 0.0)
    assert abs(ln.mean()) < 1e-15 and ln.std() == pytest.approx(1.0)
    assert ref.gelu_tanh(np.array([0.0]))[0] == 0.0
    assert ref.gelu_tanh(np.array([1.0]))[0] == pytest.approx(0.8411919906, abs=1e-9)
    assert ref.silu(np.array([1.0]))[0] == pytest.approx(1 / (1 + np.exp(-1)))


def test_quantized_model_is_close_to_float(tmp_path):
    f32 = syn.build_preset("tiny-llama-spm", tmp_path / "f.gguf")
    q8 = syn.build_preset("tiny-llama-spm", tmp_path / "q.gguf", qtype="Q8_0")
    a, b = reference_logits(f32, TOKENS), reference_logits(q8, TOKENS)
    assert 0 < np.abs(a - b).max() < 0.05 * np.abs(a).max()


def test_bad_tokens_are_rejected(files):
    with pytest.raises(ValueError):
        reference_logits(files["tiny-phi2"], [512])
    with pytest.raises(ValueError):
        reference_logits(files["tiny-phi2"], [])


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError:
        return None
    return llama_cpp


@pytest.mark.skipif(_llama_cpp() is None, reason="llama-cpp-python not installed")
@pytest.mark.parametrize("preset", ["tiny-llama-bpe", "tiny-llama-spm", "tiny-phi2", "tiny-phi3"])
def test_matches_llama_cpp(preset, files):
    llama_cpp = _llama_cpp()
    llm = llama_cpp.Llama(model_path=str(files[preset]), n_ctx=64, logits_all=True, verbose=False, n_threads=1)
    llm.eval(TOKENS)
    peer = np.array(llm.scores[:len(TOKENS)], dtype=np.float64)
    np.testing.assert_allclose(peer, reference_logits(files[preset], TOKENS), rtol=0, atol=2e-2)


def test_rope_freqs_divide_the_frequencies(tmp_path):
    # LLaMA-3.1-style rope_freqs.weight (n_rot/2,): pair i turns by angle / factor_i.
    plain = syn.build_model(tmp_path / "p.gguf")
    halved = syn.build_model(tmp_path / "h.gguf", override_tensors={"rope_freqs.weight": np.full(8, 0.5, np.float32)})
    np.testing.assert_allclose(reference_logits(halved, TOKENS),
                               reference_logits(plain, TOKENS, positions=np.arange(len(TOKENS)) * 2),
                               rtol=0, atol=1e-10)
