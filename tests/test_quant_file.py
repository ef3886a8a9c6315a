"""`pyllong quantize` (pyllong.quantize_model): metadata kept, norms kept F32, the
Q4_K_M mix's per-tensor types, values close to the source, requantize guarded."""
import numpy as np
import pytest
import gguf

from pyllong import InvalidArgumentError
from pyllong.quantize_model import quantize_file

N_LAYERS, N_EMBD, N_FF, N_VOCAB = 8, 256, 512, 96


def write_source(path, rng):
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(N_LAYERS)
    w.add_context_length(128)
    w.add_string("test.marker", "kept")
    w.add_array("test.array", [1, 2, 3])
    tensors = {"token_embd.weight": rng.standard_normal((N_VOCAB, N_EMBD)).astype(np.float32),
               "output_norm.weight": np.ones(N_EMBD, np.float32),
               "output.weight": rng.standard_normal((N_VOCAB, N_EMBD)).astype(np.float32)}
    for i in range(N_LAYERS):
        tensors[f"blk.{i}.attn_norm.weight"] = rng.random(N_EMBD).astype(np.float32)
        tensors[f"blk.{i}.attn_v.weight"] = rng.standard_normal((N_EMBD, N_EMBD)).astype(np.float32)
        tensors[f"blk.{i}.ffn_down.weight"] = rng.standard_normal((N_EMBD, N_FF)).astype(np.float16)
        tensors[f"blk.{i}.ffn_odd.weight"] = rng.standard_normal((8, 96)).astype(np.float32)  # 96: not 256-blocks
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


def test_q4_k_m_mix(tmp_path):
    src, dst = tmp_path / "src.gguf", tmp_path / "dst.gguf"
    tensors = write_source(src, np.random.default_rng(0))
    chosen = quantize_file(str(src), str(dst), "Q4_K_M", log=None)
    r = gguf.GGUFReader(str(dst))
    assert r.fields["test.marker"].contents() == "kept"
    assert r.fields["test.array"].contents() == [1, 2, 3]
    assert r.fields["llama.block_count"].contents() == N_LAYERS
    types = {t.name: t.tensor_type.name for t in r.tensors}
    assert types == chosen
    assert types["output_norm.weight"] == "F32" and types["blk.3.attn_norm.weight"] == "F32"
    assert types["output.weight"] == "Q6_K" and types["token_embd.weight"] == "Q4_K"
    more_bits = [i for i in range(N_LAYERS) if types[f"blk.{i}.attn_v.weight"] == "Q6_K"]
    assert more_bits == [0, 3, 6, 7]  # first/last eighth and every third layer between
    assert all(types[f"blk.{i}.ffn_down.weight"] == ("Q6_K" if i in more_bits else "Q4_K") for i in range(N_LAYERS))
    assert types["blk.0.ffn_odd.weight"] == "Q5_0"  # 96 is not a multiple of 256
    for t in r.tensors:
        ref = tensors[t.name].astype(np.float32)
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(ref.shape)
        rel = np.sqrt(np.mean((got - ref) ** 2) / np.mean(ref ** 2))
        assert rel < 0.1, (t.name, rel)


def test_requantize_needs_flag(tmp_path):
    src, mid, dst = tmp_path / "src.gguf", tmp_path / "mid.gguf", tmp_path / "dst.gguf"
    write_source(src, np.random.default_rng(1))
    quantize_file(str(src), str(mid), "Q8_0", log=None)
    with pytest.raises(InvalidArgumentError):
        quantize_file(str(mid), str(dst), "Q4_K", log=None)
    chosen = quantize_file(str(mid), str(dst), "Q4_K", allow_requantize=True, log=None)
    assert chosen["blk.0.attn_v.weight"] == "Q4_K"
    with pytest.raises(InvalidArgumentError):
        quantize_file(str(src), str(dst), "Q7_X", log=None)
