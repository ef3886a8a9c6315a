"""`pyllong convert`: synthetic Hugging Face checkpoints of every supported architecture
convert to GGUF whose logits (pyllong's native forward pass) equal a float64 numpy forward
pass over the *HF* weights in HF conventions (tests/reference/hf_forward.py), whose tokenizer
equals sentencepiece / HF `tokenizers` on a corpus, and which carry the metadata over. Bad
input gives one ConvertError and no output file."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import types
import zipfile

import numpy as np
import pytest

pytest.importorskip("safetensors")

import gguf  # noqa: E402

from hf_checkpoints import PHI3_ADDED, make_checkpoint, spm_model  # noqa: E402
from pyllong import ConvertError, _core  # noqa: E402
from pyllong.convert import convert  # noqa: E402
from reference.hf_forward import hf_logits  # noqa: E402
from tokenizer_corpus import CORPUS  # noqa: E402

# (id, arch, tokenizer, config overrides, checkpoint options)
CASES = [
    ("llama-spm", "llama", "spm", {}, {}),
    ("llama-smollm-tied", "llama", "smollm", {"tie_word_embeddings": True}, {}),
    ("llama3-bpe-rope-scaled", "llama", "llama3",
     {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 32}, "rope_theta": 500000.0}, {}),
    ("llama-linear-rope-f16-sharded", "llama", "spm", {"rope_scaling": {"type": "linear", "factor": 4.0}},
     {"dtype": np.float16, "shards": 3}),
    ("mistral-window", "mistral", "spm", {"sliding_window": 8}, {}),
    ("phi2", "phi2", "gpt2", {}, {}),
    ("phi3", "phi3", "spm", {}, {}),
    ("longllama-head-dim-20", "longllama", "spm", {"hidden_size": 80}, {}),
]
TOL = 2e-3   # f16 KV cache and float32 arithmetic against float64, relative to the largest logit


def _rel_err(got, ref):
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def _tokens(n_vocab, n=24, seed=1):
    return np.random.default_rng(seed).integers(0, n_vocab, n).tolist()


def _logits(path, toks):
    return _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=64).eval(toks, True)


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """id -> (checkpoint dir, F32 GGUF path), built once per module."""
    root = tmp_path_factory.mktemp("convert")
    out = {}
    for case_id, arch, tok, cfg, opts in CASES:
        d = make_checkpoint(root / case_id, arch, tok, **opts, **cfg)
        path = str(root / f"{case_id}.gguf")
        convert(d, path, "F32", log=None)
        out[case_id] = (d, path)
    return out


@pytest.mark.parametrize("case_id", [c[0] for c in CASES])
def test_logits_equal_hf_reference(converted, case_id):
    d, path = converted[case_id]
    with open(os.path.join(d, "config.json")) as f:
        n_vocab = json.load(f)["vocab_size"]
    toks = _tokens(n_vocab, n=40 if "rope" in case_id else 24)
    ref = hf_logits(d, toks)
    got = _logits(path, toks)
    assert got.shape == ref.shape
    assert _rel_err(got, ref) < TOL, case_id


def test_unpermuted_qk_is_what_makes_llama_match(converted, monkeypatch, tmp_path):
    # The same conversion without un-permuting q/k rows must be far off: the reference really
    # checks the rotary layout.
    import pyllong.convert.writer as writer

    d, _ = converted["llama-spm"]
    monkeypatch.setattr(writer, "rope_row_order", lambda heads, dim: np.arange(heads * dim))
    convert(d, str(tmp_path / "wrong.gguf"), "F32", log=None)
    toks = _tokens(300)
    assert _rel_err(_logits(str(tmp_path / "wrong.gguf"), toks), hf_logits(d, toks)) > 0.1


@pytest.mark.parametrize("outtype,tol", [("F16", 5e-3), ("BF16", 3e-2), ("Q8_0", 5e-2), ("Q4_K_M", 0.25)])
def test_output_types(converted, tmp_path, outtype, tol):
    d, _ = converted["llama-spm"]
    path = str(tmp_path / f"m-{outtype}.gguf")
    types_ = convert(d, path, outtype, log=None)["types"]
    reader = gguf.GGUFReader(path)
    stored = {t.name: t.tensor_type.name for t in reader.tensors}
    assert stored == types_
    assert stored["blk.0.attn_norm.weight"] == "F32"
    want = {"Q4_K_M": {"Q4_K", "Q6_K", "Q5_0", "Q8_0"}}.get(outtype, {outtype})  # 64-wide rows fall back
    assert {t for n, t in stored.items() if n.endswith("attn_q.weight")} <= want | {"Q5_0"}
    toks = _tokens(300)
    assert _rel_err(_logits(path, toks), hf_logits(d, toks)) < tol


@pytest.mark.parametrize("outtype", ["F32", "Q8_0"])
def test_small_row_chunks_write_the_same_file(converted, tmp_path, monkeypatch, outtype):
    # Large tensors are converted a chunk of rows at a time (whole heads for q/k): chunks much
    # smaller than a tensor, ending mid-tensor, must give the same bytes as one chunk.
    import pyllong.convert.writer as writer

    d, _ = converted["llama-linear-rope-f16-sharded"]
    convert(d, str(tmp_path / "one.gguf"), outtype, log=None)
    monkeypatch.setattr(writer, "CHUNK_ELEMS", 64 * 20)  # 20 rows of 64, 16 for q/k (head_dim 16)
    convert(d, str(tmp_path / "many.gguf"), outtype, log=None)
    assert (tmp_path / "one.gguf").read_bytes() == (tmp_path / "many.gguf").read_bytes()


def test_bf16_source_is_read_exactly(tmp_path):
    # safetensors.numpy cannot write bfloat16: write the file by hand (format: u64 header
    # length, JSON header, little-endian data) from float32 values that are exact in bf16.
    d = make_checkpoint(tmp_path / "ck", "llama", "spm")
    from safetensors.numpy import load_file

    tensors = load_file(os.path.join(d, "model.safetensors"))
    header, blobs, offset = {}, [], 0
    for name, v in tensors.items():
        bits = (v.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)  # truncate to bf16
        tensors[name] = (bits.astype(np.uint32) << 16).view(np.float32)
        header[name] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [offset, offset + bits.nbytes]}
        blobs.append(bits.tobytes())
        offset += bits.nbytes
    raw = json.dumps(header).encode()
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(len(raw).to_bytes(8, "little") + raw + b"".join(blobs))
    path = str(tmp_path / "bf16.gguf")
    convert(d, path, "F32", log=None)
    got = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}
    np.testing.assert_array_equal(got["token_embd.weight"], tensors["model.embed_tokens.weight"])
    np.testing.assert_array_equal(got["blk.1.ffn_down.weight"], tensors["model.layers.1.mlp.down_proj.weight"])


# ---------------------------------------------------------------------------------------------
# Tokenizers

def test_spm_tokenizer_equals_sentencepiece(converted):
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_proto=spm_model())
    ours = _core.Tokenizer(_core.ModelFile(converted["llama-spm"][1]))
    bad = [t for t in CORPUS if ours.encode(t, add_special=True, parse_special=False) != [sp.bos_id()] + sp.encode(t)]
    assert not bad, f"{len(bad)}/{len(CORPUS)} differ, first: {bad[:3]}"


@pytest.mark.parametrize("case_id,pre", [("llama-smollm-tied", "smollm"), ("phi2", "phi-2"),
                                         ("llama3-bpe-rope-scaled", "llama-bpe")])
def test_bpe_tokenizer_equals_hf_tokenizers(converted, case_id, pre):
    import tokenizers

    d, path = converted[case_id]
    hf = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    ours = _core.Tokenizer(_core.ModelFile(path))
    assert ours.pre == pre
    texts = CORPUS + ["<|im_start|>user\nhi there<|im_end|>", "<|begin_of_text|>x<|eot_id|>"]
    bad = [t for t in texts if ours.encode(t, add_special=True, parse_special=True) != hf.encode(t).ids]
    assert not bad, f"{len(bad)}/{len(texts)} differ, first: {bad[:3]}"


def _fields(path):
    return {k: f.contents() for k, f in gguf.GGUFReader(path).fields.items() if not k.startswith("GGUF.")}


def test_metadata_carried_over(converted):
    from hf_checkpoints import CHATML

    m = _fields(converted["llama-spm"][1])
    assert m["general.architecture"] == "llama" and m["llama.context_length"] == 256
    assert m["tokenizer.chat_template"] == CHATML
    assert (m["tokenizer.ggml.bos_token_id"], m["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert m["tokenizer.ggml.add_bos_token"] is True and m["tokenizer.ggml.add_space_prefix"] is True
    assert m["tokenizer.ggml.tokens"][-1].startswith("[PAD")

    m = _fields(converted["llama3-bpe-rope-scaled"][1])
    assert m["llama.rope.freq_base"] == 500000.0 and m["tokenizer.ggml.pre"] == "llama-bpe"
    assert m["tokenizer.ggml.add_bos_token"] is True
    assert m["tokenizer.ggml.tokens"][m["tokenizer.ggml.eos_token_id"]] == "<|eot_id|>"
    m = _fields(converted["llama-linear-rope-f16-sharded"][1])
    assert (m["llama.rope.scaling.type"], m["llama.rope.scaling.factor"]) == ("linear", 4.0)
    assert _fields(converted["mistral-window"][1])["llama.attention.sliding_window"] == 8

    m = _fields(converted["phi3"][1])
    ids = [m["tokenizer.ggml.tokens"].index(t) for t in PHI3_ADDED]
    assert all(m["tokenizer.ggml.token_type"][i] == 3 for i in ids)           # CONTROL
    assert m["tokenizer.ggml.tokens"][m["tokenizer.ggml.eos_token_id"]] == "<|endoftext|>"
    ours = _core.Tokenizer(_core.ModelFile(converted["phi3"][1]))
    assert ours.encode("<|user|>", add_special=False, parse_special=True) == [ids[4]]

    m = _fields(converted["longllama-head-dim-20"][1])
    assert m["general.architecture"] == "llama"
    assert list(m["llama.memory.layers"]) == [1]
    assert (m["llama.memory.window"], m["llama.memory.last_context_length"]) == (64, 32)
    assert m["llama.memory.positionals"] is True and m["llama.memory.dtype"] == "bfloat16"


# ---------------------------------------------------------------------------------------------
# PyTorch .bin, read without torch

def _fake_torch_modules():
    """Stand-ins named like torch's, so pickle records the same global names torch.save does."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while pickling")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    for cls in ("FloatStorage", "HalfStorage"):
        setattr(torch, cls, type(cls, (), {"__module__": "torch"}))
    torch._utils = utils
    return torch, utils


def write_torch_bin(path, tensors, transposed=()):
    """A zip archive laid out as torch.save writes it (archive/data.pkl + archive/data/<key>).
    Tensors named in `transposed` are stored as a column-major view (stride (1, rows)), as
    torch saves a `.t()` of a contiguous tensor."""
    import collections

    torch, utils = _fake_torch_modules()
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        class T:
            def __init__(self, key, shape, dtype, column_major):
                self.key, self.shape, self.dtype, self.column_major = key, shape, dtype, column_major

            def __reduce__(self):
                stride = tuple(int(np.prod(self.shape[i + 1:])) for i in range(len(self.shape)))
                if self.column_major:
                    stride = (1, self.shape[0])
                return (utils._rebuild_tensor_v2, (("storage", self, self.key), 0, self.shape, stride, False,
                                                   collections.OrderedDict()))

        class P(pickle.Pickler):
            def persistent_id(self, obj):
                if isinstance(obj, tuple) and len(obj) == 3 and obj[0] == "storage":
                    t = obj[1]
                    cls = torch.FloatStorage if t.dtype == np.float32 else torch.HalfStorage
                    return ("storage", cls, t.key, "cpu", int(np.prod(t.shape)))
                return None

        import io
        buf = io.BytesIO()
        state = collections.OrderedDict((n, T(str(i), v.shape, v.dtype, n in transposed))
                                        for i, (n, v) in enumerate(tensors.items()))
        P(buf, protocol=2).dump(state)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        for i, (n, v) in enumerate(tensors.items()):
            z.writestr(f"archive/data/{i}", np.ascontiguousarray(v.T if n in transposed else v).tobytes())


def test_pytorch_bin_converts_like_safetensors(converted, tmp_path, monkeypatch):
    from safetensors.numpy import load_file

    src, ref_path = converted["llama-spm"]
    d = tmp_path / "bin"
    shutil.copytree(src, d)
    os.remove(d / "model.safetensors")
    write_torch_bin(d / "pytorch_model.bin", load_file(os.path.join(src, "model.safetensors")),
                    transposed={"lm_head.weight", "model.layers.0.self_attn.q_proj.weight"})
    path = str(tmp_path / "bin.gguf")
    convert(str(d), path, "F32", log=None)
    a = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(path).tensors}
    b = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(ref_path).tensors}
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    # Row chunks of the column-major tensors gather the right strided elements too.
    import pyllong.convert.writer as writer

    monkeypatch.setattr(writer, "CHUNK_ELEMS", 64 * 20)
    convert(str(d), str(tmp_path / "chunked.gguf"), "F32", log=None)
    assert (tmp_path / "chunked.gguf").read_bytes() == open(path, "rb").read()


def test_hostile_pickle_is_refused_without_running_it(converted, tmp_path):
    src, _ = converted["llama-spm"]
    d = tmp_path / "evil"
    shutil.copytree(src, d)
    os.remove(d / "model.safetensors")
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with zipfile.ZipFile(d / "pytorch_model.bin", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"x": Evil()}, protocol=2))
    out = tmp_path / "evil.gguf"
    with pytest.raises(ConvertError, match="refusing"):
        convert(str(d), str(out), "F32", log=None)
    assert not marker.exists() and not out.exists()


# ---------------------------------------------------------------------------------------------
# Bad input: one ConvertError, nothing written

def _write_json(d, name, obj):
    with open(os.path.join(d, name), "w") as f:
        json.dump(obj, f)


def _edit_config(d, **changes):
    p = os.path.join(d, "config.json")
    with open(p) as f:
        c = json.load(f)
    c.update(changes)
    with open(p, "w") as f:
        json.dump(c, f)


@pytest.mark.parametrize("breaker,message", [
    (lambda d: os.remove(os.path.join(d, "config.json")), "config.json is missing"),
    (lambda d: _edit_config(d, architectures=["GPTBigCodeForCausalLM"], model_type="gpt_bigcode"),
     "unknown architecture"),
    (lambda d: _edit_config(d, intermediate_size=96), "config.json implies"),
    (lambda d: _edit_config(d, num_hidden_layers=3), "missing from the checkpoint"),
    (lambda d: _edit_config(d, num_hidden_layers=1), "not part of a llama model"),
    (lambda d: os.remove(os.path.join(d, "tokenizer.model")), "no tokenizer"),
    (lambda d: os.remove(os.path.join(d, "model-00002-of-00003.safetensors")), "missing"),
    (lambda d: _edit_config(d, rope_scaling={"type": "yarn", "factor": 4.0}), "rope_scaling"),
    (lambda d: open(os.path.join(d, "model-00001-of-00003.safetensors"), "r+b").truncate(5000), "truncated"),
    (lambda d: _edit_config(d, rope_scaling={"type": "linear"}), "malformed or missing setting"),
    (lambda d: _write_json(d, "tokenizer_config.json", {"added_tokens_decoder": {"5": {}}}), "malformed tokenizer"),
    (lambda d: _write_json(d, "tokenizer_config.json", {"bos_token": "<nope>"}), "not in the vocabulary"),
], ids=["no-config", "unknown-arch", "shape-mismatch", "missing-tensor", "extra-tensor", "no-tokenizer",
        "missing-shard", "unsupported-rope", "truncated-shard", "malformed-config", "malformed-tokenizer",
        "unknown-special-token"])
def test_bad_input_raises_convert_error_and_writes_nothing(converted, tmp_path, breaker, message):
    src, _ = converted["llama-linear-rope-f16-sharded"]
    d = str(tmp_path / "ck")
    shutil.copytree(src, d)
    breaker(d)
    out = tmp_path / "out.gguf"
    with pytest.raises(ConvertError, match=message):
        convert(d, str(out), "F16", log=None)
    assert os.listdir(tmp_path) == ["ck"]  # no output, no temporary file


def test_failure_mid_write_leaves_no_file(converted, tmp_path, monkeypatch):
    import pyllong.convert.writer as writer

    d, _ = converted["llama-spm"]
    real = writer.tensor_chunks

    def failing(ckpt, t, qtype):
        if t.name == "blk.1.ffn_down.weight":
            raise OSError("disk full (simulated)")
        return real(ckpt, t, qtype)

    monkeypatch.setattr(writer, "tensor_chunks", failing)
    with pytest.raises(ConvertError, match="disk full"):
        convert(d, str(tmp_path / "out.gguf"), "F16", log=None)
    assert os.listdir(tmp_path) == []


def test_cli_convert_and_error_exit(converted, tmp_path):
    d, _ = converted["phi2"]
    env = dict(os.environ)
    # cwd elsewhere: from the repository root, `-m pyllong.cli` would import the source tree,
    # which has no built module when the package under test is the installed one.
    ok = subprocess.run([sys.executable, "-m", "pyllong.cli", "convert", d, str(tmp_path / "p.gguf"),
                         "--outtype", "Q8_0", "-q"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert _core.ModelFile(str(tmp_path / "p.gguf")).hparams["n_layer"] == 2
    tool = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "tools", "convert_hf_to_gguf.py"))
    bad = subprocess.run([sys.executable, tool, str(tmp_path / "nowhere"), str(tmp_path / "x.gguf")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "not a directory" in bad.stderr and not (tmp_path / "x.gguf").exists()


# ---------------------------------------------------------------------------------------------
# llama.cpp loads the converted files and agrees (optional: needs the peer build)

PEER_BIN = os.environ.get("PYLLONG_DUMP_LOGITS", os.path.expanduser("~/.cache/pyllong-peer/dump_logits"))


@pytest.mark.skipif(not os.access(PEER_BIN, os.X_OK),
                    reason=f"llama.cpp peer program {PEER_BIN} is not built (build command: BENCHMARKS.md, 'Convert')")
@pytest.mark.parametrize("case_id", ["llama-spm", "llama-smollm-tied", "llama3-bpe-rope-scaled",
                                     "llama-linear-rope-f16-sharded", "mistral-window", "phi2", "phi3",
                                     "longllama-head-dim-20"])
def test_llamacpp_agrees_on_converted_files(converted, case_id, tmp_path):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools", "peer"))
    from compare_convert import peer_logits

    _, path = converted[case_id]
    toks = _tokens(300, 16)
    theirs = peer_logits(PEER_BIN, path, toks, str(tmp_path))
    ours = _logits(path, toks)
    # llama.cpp's `llama` ignores llama.attention.sliding_window: compare Mistral only on the
    # positions the window does not reach yet (there both attend to every earlier token).
    n = 8 if case_id == "mistral-window" else len(toks)
    assert _rel_err(ours[:n], theirs[:n]) < 5e-3


@pytest.mark.parametrize("case_id", ["llama-spm", "llama-smollm-tied", "llama3-bpe-rope-scaled", "phi2", "phi3"])
def test_llamacpp_tokenizes_converted_files_like_hf(converted, case_id):
    import sentencepiece
    import tokenizers
    from test_tokenizer_llamacpp import peer_env

    env = peer_env()
    if env is None:
        pytest.skip("llama.cpp peer not available: no llama_cpp module and no build from "
                    "../shared/peer/build_llamacpp.sh")
    d, path = converted[case_id]
    texts = CORPUS
    if os.path.exists(os.path.join(d, "tokenizer.model")):
        sp = sentencepiece.SentencePieceProcessor(model_file=os.path.join(d, "tokenizer.model"))
        expected, special = [[sp.bos_id()] + sp.encode(t) for t in texts], False
    else:
        hf = tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        expected, special = [hf.encode(t).ids for t in texts], True
    add_bos = bool(_fields(path)["tokenizer.ggml.add_bos_token"])
    req = {"model": path, "encode": [[t.encode().hex(), add_bos, special] for t in texts], "decode": []}
    r = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "peer_llamacpp_tokenize.py")],
                       input=json.dumps(req), capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout)["encode"]
    bad = [(t, g, e) for t, g, e in zip(texts, got, expected) if g != e]
    assert not bad, f"{len(bad)}/{len(texts)} differ, first: {bad[:3]}"
