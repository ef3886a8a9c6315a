"""The quant kernels on the real SmolLM2-135M-Instruct Q4_1 file (Q4_1 weights, a Q8_0
embedding, F32 norms): every tensor dequantizes bit-identically to gguf.quants, and matmul
over real weight matrices meets the float64 oracle bound on every SIMD path."""
import numpy as np
import gguf

from pyllong import _core
from quant_helpers import seed_of

EPS32 = 2.0 ** -24


def test_every_tensor_dequantizes_like_gguf(smollm2_path):
    r = gguf.GGUFReader(smollm2_path)
    types = set()
    for t in r.tensors:
        types.add(t.tensor_type.name)
        n = int(np.prod([int(s) for s in t.shape]))
        ours = _core.dequantize(t.tensor_type.name, np.asarray(t.data).view(np.uint8).ravel(), n)
        ref = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).ravel().astype(np.float32)
        np.testing.assert_array_equal(ours.view(np.uint32), ref.view(np.uint32), err_msg=t.name)
    assert {"Q4_1", "Q8_0", "F32"} <= types


def test_matmul_on_real_weights_every_path(smollm2_path):
    r = gguf.GGUFReader(smollm2_path)
    by_name = {t.name: t for t in r.tensors}
    names = ["blk.0.attn_q.weight", "blk.0.ffn_down.weight", "blk.29.ffn_up.weight", "token_embd.weight"]
    rng = np.random.default_rng(seed_of("smollm2"))
    for name in names:
        t = by_name[name]
        ty = t.tensor_type.name
        n_in, n_out = int(t.shape[0]), int(t.shape[1])
        if name == "token_embd.weight":
            n_out = 2048  # the first rows are enough (tied output head: same kernel)
        raw = np.asarray(t.data).view(np.uint8).ravel()[: n_out * _core.row_bytes(ty, n_in)]
        wd = gguf.quants.dequantize(raw.reshape(n_out, -1), t.tensor_type).astype(np.float64)
        x = rng.standard_normal((5, n_in)).astype(np.float32)
        xa = np.stack([_core.quantize_activation(ty, row) for row in x]).astype(np.float64)
        ref = xa @ wd.T
        bound = (n_in // _core.block_elems(ty) + 4) * EPS32 * (np.abs(xa) @ np.abs(wd).T)
        for path in _core.simd_paths():
            for xs, rs, bs in ((x, ref, bound), (x[0], ref[0], bound[0])):  # GEMM and GEMV
                y = _core.matmul(ty, raw, n_out, n_in, xs, n_threads=2, simd=path)
                assert (np.abs(y - rs) <= bs).all(), (name, path)
