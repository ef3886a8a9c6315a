"""Peak memory of `pyllong convert` on a multi-GB synthetic checkpoint.

Writes a TinyLlama-1.1B-shaped Hugging Face checkpoint (22 layers, hidden 2048, ffn 5632,
32 heads / 4 kv heads, vocab 32000; random BF16 weights, 2 safetensors shards + index, about
2.2 GB) one tensor at a time, then runs the converter in a child process per output type and
reports its peak resident set (VmHWM of the child) against the checkpoint size and the
largest tensor. Also reports the baseline: the same child converting a tiny checkpoint.

    PYTHONPATH=. python tools/bench_convert.py [--dir /tmp/bench-convert] [--types F16,Q8_0]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

SHAPE = dict(hidden_size=2048, num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
             intermediate_size=5632, vocab_size=32000, max_position_embeddings=2048)


def hf_shapes(c: dict) -> dict[str, tuple[int, ...]]:
    E, F, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    D = E // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * D
    out = {"model.embed_tokens.weight": (V, E)}
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out.update({p + "input_layernorm.weight": (E,), p + "self_attn.q_proj.weight": (E, E),
                    p + "self_attn.k_proj.weight": (kv, E), p + "self_attn.v_proj.weight": (kv, E),
                    p + "self_attn.o_proj.weight": (E, E), p + "post_attention_layernorm.weight": (E,),
                    p + "mlp.gate_proj.weight": (F, E), p + "mlp.up_proj.weight": (F, E),
                    p + "mlp.down_proj.weight": (E, F)})
    out.update({"model.norm.weight": (E,), "lm_head.weight": (V, E)})
    return out


def write_bf16_shards(directory: str, shapes: dict, n_shards: int = 2) -> int:
    """Hand-written safetensors (u64 header length, JSON header, data), one tensor in memory
    at a time. Returns total bytes."""
    rng = np.random.default_rng(0)
    names = list(shapes)
    per = (len(names) + n_shards - 1) // n_shards
    weight_map, total = {}, 0
    for s in range(n_shards):
        fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
        part = names[s * per:(s + 1) * per]
        header, off = {}, 0
        for n in part:
            nbytes = 2 * int(np.prod(shapes[n]))
            header[n] = {"dtype": "BF16", "shape": list(shapes[n]), "data_offsets": [off, off + nbytes]}
            off += nbytes
        raw = json.dumps(header).encode()
        with open(os.path.join(directory, fname), "wb") as f:
            f.write(len(raw).to_bytes(8, "little") + raw)
            for n in part:
                x = rng.standard_normal(shapes[n], dtype=np.float32) * np.float32(0.02)
                f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())
                total += x.size * 2
        weight_map.update({n: fname for n in part})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f)
    return total


# VmHWM, the peak resident set of this process's own address space (ru_maxrss would also
# count the parent's peak from before the fork: Linux carries it across exec).
CHILD = """
import sys, time
from pyllong.convert import convert
t = time.time()
convert(sys.argv[1], sys.argv[2], sys.argv[3], log=None)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(time.time() - t, hwm)
"""


def run_child(src: str, dst: str, outtype: str) -> tuple[float, float]:
    """(seconds, peak RSS MiB) of a fresh process converting src -> dst."""
    r = subprocess.run([sys.executable, "-c", CHILD, src, dst, outtype], capture_output=True, text=True, check=True)
    secs, kib = r.stdout.split()
    return float(secs), int(kib) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/bench-convert")
    ap.add_argument("--types", default="F16,Q8_0")
    ap.add_argument("--keep", action="store_true", help="keep the checkpoint and outputs")
    a = ap.parse_args()

    from hf_checkpoints import make_checkpoint

    src = os.path.join(a.dir, "tinyllama-shaped")
    os.makedirs(src, exist_ok=True)
    # config, tokenizer (SentencePiece padded to 32000) and the small-model baseline
    tiny = make_checkpoint(os.path.join(a.dir, "tiny"), "llama", "spm")
    for f in ("tokenizer.model", "tokenizer_config.json"):
        with open(os.path.join(tiny, f), "rb") as i, open(os.path.join(src, f), "wb") as o:
            o.write(i.read())
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": False, **SHAPE}
    with open(os.path.join(src, "config.json"), "w") as f:
        json.dump(config, f)
    shapes = hf_shapes(config)
    t = time.time()
    total = write_bf16_shards(src, shapes)
    largest = max(shapes, key=lambda n: int(np.prod(shapes[n])))
    n_largest = int(np.prod(shapes[largest]))
    print(f"checkpoint: {total / 2**30:.2f} GiB BF16 in 2 shards (written in {time.time() - t:.0f} s); largest tensor "
          f"{largest} {list(shapes[largest])}: {2 * n_largest / 2**20:.0f} MiB BF16, "
          f"{4 * n_largest / 2**20:.0f} MiB as f32")
    secs, base = run_child(tiny, os.path.join(a.dir, "tiny.gguf"), "F16")
    print(f"baseline (tiny checkpoint, same process setup): peak RSS {base:.0f} MiB")
    print("| output | file size | time | peak RSS | peak RSS - baseline |")
    print("|---|---:|---:|---:|---:|")
    for outtype in a.types.split(","):
        dst = os.path.join(a.dir, f"out-{outtype}.gguf")
        secs, peak = run_child(src, dst, outtype)
        print(f"| {outtype} | {os.path.getsize(dst) / 2**30:.2f} GiB | {secs:.0f} s | {peak:.0f} MiB | "
              f"{peak - base:.0f} MiB |", flush=True)
        if not a.keep:
            os.remove(dst)
    if not a.keep:
        import shutil
        shutil.rmtree(a.dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
