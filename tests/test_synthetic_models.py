"""The synthetic-model builder writes what it says: checked with gguf.GGUFReader (an
independent reader) and with pyllong's own validating loader."""
import time

import numpy as np
import pytest

import gguf
from gguf import GGUFValueType as VT

import pyllong
from pyllong.models import synthetic as syn
from pyllong.models import synthetic_vocab as sv

TINY_PRESETS = ["tiny-llama-bpe", "tiny-llama-spm", "tiny-mistral", "tiny-phi2", "tiny-phi3", "tiny-llama-k"]
GGUF_QTYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]


def field_value(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.fixture(scope="module")
def preset_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("synth")
    return {p: syn.build_preset(p, d / f"{p}.gguf") for p in TINY_PRESETS}


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_preset_loads_with_requested_hparams(preset, preset_files):
    spec = syn.spec_of(preset)
    m = pyllong.ModelFile(preset_files[preset])
    hp = m.hparams
    assert hp["architecture"] == spec.gguf_arch
    assert (hp["n_layer"], hp["n_embd"], hp["n_ff"], hp["n_ctx_train"]) == \
        (spec.n_layer, spec.n_embd, spec.n_ff, spec.n_ctx_train)
    assert (hp["n_head"], hp["n_head_kv"], hp["head_dim"], hp["n_rot"]) == \
        (spec.n_head, spec.n_head_kv, spec.n_embd_head, spec.n_rot)
    assert hp["n_vocab"] == spec.n_vocab
    assert hp["sliding_window"] == (spec.sliding_window or 0)
    assert hp["norm_eps"] == pytest.approx(spec.norm_eps, rel=1e-6)
    assert m.tied_embeddings == spec.tied_embeddings
    assert m.warnings == []
    assert m.vocab["type"] == ("gpt2" if spec.vocab == "bpe" else "llama")
    assert m.vocab["n_vocab"] == spec.n_vocab


def test_preset_architecture_features():
    assert syn.spec_of("tiny-mistral").sliding_window == 16
    phi2 = syn.spec_of("tiny-phi2")
    assert 0 < phi2.n_rot < phi2.n_embd_head
    assert syn.spec_of("tiny-llama-bpe").tied_embeddings


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_tensor_table_matches_gguf_reader(preset, preset_files):
    spec = syn.spec_of(preset)
    reader = gguf.GGUFReader(preset_files[preset])
    got = {t.name: (tuple(int(x) for x in t.shape), t.tensor_type.name) for t in reader.tensors}
    want = {t.name: (t.shape, t.qtype) for t in syn.tensor_specs(spec)}
    assert got == want
    for name, (shape, qtype) in got.items():
        if name.endswith("norm.weight") or name.endswith("norm.bias") or len(shape) == 1:
            assert qtype == "F32", name


def test_fused_and_partial_shapes(preset_files):
    phi3 = {t.name: tuple(int(x) for x in t.shape) for t in gguf.GGUFReader(preset_files["tiny-phi3"]).tensors}
    s = syn.spec_of("tiny-phi3")
    assert phi3["blk.0.ffn_up.weight"] == (s.n_embd, 2 * s.n_ff)
    assert phi3["blk.0.attn_qkv.weight"] == (s.n_embd, (s.n_head + 2 * s.n_head_kv) * s.n_embd_head)
    phi2 = {t.name: tuple(int(x) for x in t.shape) for t in gguf.GGUFReader(preset_files["tiny-phi2"]).tensors}
    assert phi2["output.bias"] == (syn.spec_of("tiny-phi2").n_vocab,)
    assert "blk.0.attn_qkv.bias" in phi2


@pytest.mark.parametrize("preset", TINY_PRESETS)
def test_metadata_as_real_converters_write_it(preset, preset_files):
    spec = syn.spec_of(preset)
    r = gguf.GGUFReader(preset_files[preset])
    a = spec.gguf_arch
    assert field_value(r, "general.architecture") == a
    assert field_value(r, f"{a}.block_count") == spec.n_layer
    assert r.fields[f"{a}.block_count"].types == [VT.UINT32]
    assert field_value(r, f"{a}.rope.dimension_count") == spec.n_rot
    eps_key = f"{a}.attention.layer_norm_epsilon" if spec.arch == "phi2" else f"{a}.attention.layer_norm_rms_epsilon"
    assert r.fields[eps_key].types == [VT.FLOAT32]
    tokens = field_value(r, "tokenizer.ggml.tokens")
    assert len(tokens) == len(set(tokens)) == spec.n_vocab
    assert r.fields["tokenizer.ggml.token_type"].types == [VT.ARRAY, VT.INT32]
    if spec.vocab == "spm":
        assert r.fields["tokenizer.ggml.scores"].types == [VT.ARRAY, VT.FLOAT32]
        assert {f"<0x{b:02X}>" for b in range(256)} <= set(tokens)
    else:
        ids = set(tokens)
        for line in field_value(r, "tokenizer.ggml.merges"):
            left, right = line.split(" ")
            assert left in ids and right in ids
        assert {"<|endoftext|>", "<|im_start|>", "<|im_end|>"} <= ids


def test_tiny_builds_are_fast_and_small(tmp_path):
    for preset in ["tiny-llama-bpe", "tiny-llama-spm", "tiny-phi2", "tiny-phi3"]:
        syn.build_preset(preset, tmp_path / "warm.gguf")  # vocab caches warm
        t0 = time.perf_counter()
        path = syn.build_preset(preset, tmp_path / f"{preset}.gguf", seed=7)
        assert time.perf_counter() - t0 < 0.5
        assert (tmp_path / f"{preset}.gguf").stat().st_size < 1_000_000, path


def test_deterministic_in_seed(tmp_path):
    a = syn.build_preset("tiny-phi2", tmp_path / "a.gguf", seed=3)
    b = syn.build_preset("tiny-phi2", tmp_path / "b.gguf", seed=3)
    c = syn.build_preset("tiny-phi2", tmp_path / "c.gguf", seed=4)
    assert open(a, "rb").read() == open(b, "rb").read()
    assert open(a, "rb").read() != open(c, "rb").read()


@pytest.mark.parametrize("qtype", GGUF_QTYPES)
def test_quant_types_load_and_dequantize_close(qtype, tmp_path):
    path = syn.build_preset("tiny-llama-spm", tmp_path / "m.gguf", qtype=qtype)
    m = pyllong.ModelFile(path)
    assert qtype in m.quant_mix
    spec = syn.spec_of("tiny-llama-spm", qtype=qtype)
    want = {t.name: t for t in syn.tensor_specs(spec)}
    t = next(t for t in gguf.GGUFReader(path).tensors if t.name == "blk.0.attn_q.weight")
    assert t.tensor_type.name == qtype
    values = gguf.quants.dequantize(t.data, t.tensor_type)
    exact = syn.random_values(want[t.name], spec.seed)
    tol = {"F32": 0, "F16": 1e-3, "BF16": 1e-2, "Q8_0": 0.02, "Q5_0": 0.1, "Q5_1": 0.1}.get(qtype, 0.3)
    assert values.shape == exact.shape
    assert np.abs(values - exact).max() <= tol * np.abs(exact).max() + 1e-12


def test_embd_and_output_qtypes(tmp_path):
    path = syn.build_model(tmp_path / "m.gguf", qtype="Q4_0", embd_qtype="Q8_0", output_qtype="F16")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types["token_embd.weight"] == "Q8_0"
    assert types["output.weight"] == "F16"
    assert types["blk.0.ffn_up.weight"] == "Q4_0"
    pyllong.ModelFile(path)


def test_k_quants_need_a_hook(tmp_path):
    with pytest.raises(NotImplementedError, match="quantize_fn"):
        syn.build_preset("tiny-llama-k", tmp_path / "k.gguf", qtype="Q4_K")

    def zero_quantize(values, qtype):  # all-zero blocks: a valid (if silent) Q4_K tensor
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        return np.zeros((*values.shape[:-1], values.shape[-1] // block * size), np.uint8)

    path = syn.build_preset("tiny-llama-k", tmp_path / "k.gguf", qtype="Q4_K", quantize_fn=zero_quantize)
    assert "Q4_K" in pyllong.ModelFile(path).quant_mix


def test_rows_must_fit_the_block_size(tmp_path):
    with pytest.raises(ValueError, match="block size"):
        syn.build_model(tmp_path / "m.gguf", qtype="Q6_K")


HARDENING_CASES = {
    "missing tensor": (dict(drop_tensors=["blk.1.attn_k.weight"]), "is missing"),
    "wrong shape": (dict(override_tensors={"blk.0.attn_q.weight": np.zeros((64, 32), np.float32)}), "does not match"),
    "f16 norm": (dict(tensor_qtypes={"blk.0.attn_norm.weight": "F16"}), "must be F32"),
    "nan scale": (dict(qtype="Q8_0", mutate_tensors={"blk.0.attn_q.weight": syn.nan_first_scale}), "NaN"),
    "bad special id": (dict(extra_metadata={"tokenizer.ggml.eos_token_id": 99999}), "outside the vocabulary"),
    "int scores": (dict(vocab="spm", extra_metadata={
        "tokenizer.ggml.scores": syn.Meta(list(range(512)), VT.ARRAY, VT.INT32)}), "FLOAT32"),
    "no architecture": (dict(drop_metadata=["general.architecture"]), "general.architecture"),
    "unknown pre-tokenizer": (dict(pre_tokenizer="qwen2"), "pre-tokenizer"),
    "vocab_size disagrees": (dict(extra_metadata={"llama.vocab_size": 513}), "vocab_size"),
}


@pytest.mark.parametrize("case", list(HARDENING_CASES))
def test_one_thing_wrong_is_rejected(case, tmp_path):
    kwargs, message = HARDENING_CASES[case]
    path = syn.build_preset("tiny-llama-bpe", tmp_path / "bad.gguf", **kwargs)
    with pytest.raises(pyllong.GGUFError, match=message):
        pyllong.ModelFile(path)


def test_write_gguf_escape_hatch(tmp_path):
    metadata, tensors = syn.model_fields(arch="phi3", vocab="spm")
    metadata["phi3.attention.sliding_window"] = 8
    del tensors["output.weight"]  # phi3 may tie
    path = syn.write_gguf(tmp_path / "m.gguf", metadata, tensors)
    m = pyllong.ModelFile(path)
    assert m.hparams["sliding_window"] == 8 and m.tied_embeddings


def test_cached_preset_reuses_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PYLLONG_SYNTH_CACHE", str(tmp_path))
    a = syn.cached_preset("tiny-mistral")
    mtime = (tmp_path / a.split("/")[-1]).stat().st_mtime_ns
    assert syn.cached_preset("tiny-mistral") == a
    assert (tmp_path / a.split("/")[-1]).stat().st_mtime_ns == mtime
    assert syn.cached_preset("tiny-mistral", seed=1) != a


@pytest.mark.skipif(not sv.have_sentencepiece(), reason="sentencepiece not installed")
def test_spm_vocab_is_the_sentencepiece_model():
    sp = sv.sentencepiece_processor(512)
    v = sv.spm_vocab(512)
    assert v.trained_with == "sentencepiece"
    n = sp.get_piece_size()
    assert v.tokens[:n] == [sp.id_to_piece(i) for i in range(n)]
    assert v.scores[:n] == pytest.approx([sp.get_score(i) for i in range(n)])


def test_builtin_spm_fallback_is_valid(tmp_path):
    v = sv.spm_vocab(400, use_sentencepiece=False)
    assert len(v) == len(set(v.tokens)) == 400
    assert sum(t == sv.BYTE for t in v.types) == 256


@pytest.mark.skipif(not sv.have_sentencepiece(), reason="sentencepiece not installed")
@pytest.mark.parametrize("preset", ["tiny-llama-spm", "tiny-phi3"])
def test_sentencepiece_processor_for_matches_the_gguf_pieces(preset, preset_files):
    sp = syn.sentencepiece_processor_for(preset)
    tokens = field_value(gguf.GGUFReader(preset_files[preset]), "tokenizer.ggml.tokens")
    assert [sp.id_to_piece(i) for i in range(sp.get_piece_size())] == tokens[:sp.get_piece_size()]
    ids = sp.encode("Hello world, the pass key is 68217.")
    assert all(0 <= i < len(tokens) for i in ids)
