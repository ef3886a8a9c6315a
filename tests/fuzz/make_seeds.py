"""Writes the GGUF seed corpus (tests/fuzz/corpus/gguf). Run from the repository root."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from raw_gguf import F32, GGUF, STRING, T_F32, T_Q8_0, U32, Tensor, kv, kv_array, tiny_llama  # noqa: E402

out = os.path.join(os.path.dirname(__file__), "corpus", "gguf")
os.makedirs(out, exist_ok=True)
seeds = {
    "tiny_llama": tiny_llama(n_embd=32, n_head=2, n_head_kv=1, n_ff=32).build(),
    "v2_kvs_only": GGUF(version=2, kvs=[kv("a", U32, 1), kv("b", STRING, "x"), kv_array("c", F32, [1.0, 2.0])]).build(),
    "two_tensors": GGUF(kvs=[kv("general.alignment", U32, 64)], alignment=64,
                        tensors=[Tensor("a", [32], T_Q8_0, b"\0" * 34), Tensor("b", [2, 2], T_F32, b"\0" * 16)]).build(),
    "empty": GGUF().build(),
}
for name, data in seeds.items():
    with open(os.path.join(out, name + ".gguf.seed"), "wb") as f:
        f.write(data)
    print(name, len(data))
