"""Attention capture against the numpy reference forward (tests/reference/forward.py), and the
Ghost-Attention picture built from it."""
from __future__ import annotations

import numpy as np
import pytest

import pyllong
from pyllong import _core
from pyllong.attention_map import capture_chat, capture_prompt, draw, find_span
from pyllong.models.synthetic import cached_preset
from reference import forward as ref


@pytest.fixture(scope="module")
def path():
    return cached_preset("tiny-llama-bpe")


def reference_probs(path, tokens):
    """(n_layer, n_head, n, n) softmax(q k^T / sqrt(d)) of every layer, float64."""
    m = ref.load_model(path)
    c = m.config
    pos = np.arange(len(tokens))
    angles = ref.rope_angles(pos, c.n_rot, c.rope_base, c.rope_freq_scale, m.weights.get("rope_freqs.weight"))
    mask = ref.attention_mask(pos, c.sliding_window)
    x = m.w("token_embd.weight")[np.asarray(tokens)]
    out = []
    for i in range(c.n_layer):
        q, k, _ = ref._qkv(m, i, ref.norm(m, x, f"blk.{i}.attn_norm"))
        q, k = ref.apply_rope(q, angles, c.n_rot, c.rope_mode), ref.apply_rope(k, angles, c.n_rot, c.rope_mode)
        k = np.repeat(k, c.n_head // c.n_head_kv, axis=1)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(c.head_dim)
        s = np.where(mask[None], s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        out.append(p / p.sum(-1, keepdims=True))
        x = ref.transformer_layer(m, i, x, angles, mask)
    return np.stack(out)


@pytest.mark.parametrize("n_batch", [64, 7])
def test_capture_matches_reference(path, n_batch):
    toks = np.random.default_rng(0).integers(5, 500, 40).tolist()
    want = reference_probs(path, toks)  # (2, 4, 40, 40)
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=n_batch)
    ctx.start_capture([0, 1], [0, 1, 2, 3])
    ctx.eval(toks[:30], False)
    for t in toks[30:]:  # decode steps are captured too
        ctx.eval([t], False)
    got = ctx.captured()
    assert got.shape == (2, 4, 40, 40)
    np.testing.assert_allclose(got, want, atol=3e-3, rtol=0)  # f16 keys


def test_capture_subset_and_off(path):
    mf = _core.ModelFile(path)
    toks = list(range(5, 45))
    plain = _core.Context(mf, n_ctx=64, n_threads=1)
    assert plain.captured() is None
    base = plain.eval(toks, True)
    ctx = _core.Context(mf, n_ctx=64, n_threads=1)
    ctx.start_capture([1], [3, 1])
    logits = ctx.eval(toks, True)
    np.testing.assert_allclose(logits, base, atol=1e-4, rtol=0)  # the per-row path, same function
    got = ctx.captured()
    full = reference_probs(path, toks)
    np.testing.assert_allclose(got[0], full[1][[3, 1]], atol=3e-3)  # heads in the order asked for
    ctx.truncate(20)
    assert ctx.captured().shape == (1, 2, 20, 20)
    ctx.stop_capture()
    assert ctx.captured() is None


@pytest.mark.parametrize("layers,heads,frag", [([2], [0], "layer 2"), ([0], [4], "head 4"), ([0, 0], [0], "twice"),
                                               ([], [0], "at least one")])
def test_capture_rejects_bad_choices(path, layers, heads, frag):
    ctx = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=1)
    with pytest.raises(pyllong.InvalidArgumentError, match=frag):
        ctx.start_capture(layers, heads)


def test_capture_chat_spans_and_mass(path, tmp_path):
    m = pyllong.Model(path, n_ctx=256, n_threads=1)
    cap = capture_chat(m, "Always answer in French.", ["hello there", "and now?", "one more"], max_tokens=5,
                       repeat_penalty=1.0)
    n = len(cap.tokens)
    assert cap.probs.shape == (2, 4, n, n)  # default_layers of 2 layers: [0, 1]
    a, b = cap.instruction
    assert "".join(cap.pieces[a:b]).find("Always answer in French.") >= 0
    assert len(cap.turns) == 3 and cap.turns[0][0] >= b and cap.turns[-1][1] == n
    rows = cap.probs.sum(-1)
    np.testing.assert_allclose(rows, 1.0, atol=1e-3)  # every cached row was captured, and is a distribution
    mass = cap.instruction_mass()
    want = [cap.probs[..., s:e, a:b].sum(-1).mean() for s, e in cap.turns]
    np.testing.assert_allclose(mass, want, rtol=1e-6)
    pytest.importorskip("matplotlib")
    out = tmp_path / "map.png"
    draw(cap, str(out), title="test")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    draw(cap, str(tmp_path / "heads.png"), per_head=True)
    assert m.ctx.captured() is None  # the capture ends with the call


def test_capture_prompt_and_missing_instruction(path):
    m = pyllong.Model(path, n_ctx=128, n_threads=1)
    cap = capture_prompt(m, "Rule: be kind. Then some text follows here.", "be kind")
    assert cap.probs.shape[2] == len(cap.tokens)
    with pytest.raises(pyllong.InvalidArgumentError, match="does not occur"):
        find_span(m, cap.tokens, "absent words")


def test_cli_attention_map(path, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import json

    from pyllong.cli import main
    out = tmp_path / "m.png"
    assert main(["attention-map", "-m", path, "-c", "256", "-t", "1", "--instruction", "Answer in French.",
                 "-p", "hi", "-p", "how are you", "-n", "4", "--layers", "1", "--heads", "0,2", "-o", str(out),
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["layers"] == [1] and doc["heads"] == [0, 2] and len(doc["instruction_mass"]) == 2
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["attention-map", "-m", path, "--instruction", "x", "-o", str(out)]) != 0  # no messages
