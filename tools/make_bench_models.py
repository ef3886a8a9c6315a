"""Synthetic 1B-shaped llama models for speed comparisons (issue 9): Q4_0, Q8_0, Q4_K_M.

    PYTHONPATH=. python tools/make_bench_models.py [--out DIR] [--types Q4_0,Q8_0,Q4_K_M]

Shape: models/synthetic.py's PRESETS["llama-1b"] (TinyLlama-1.1B: 22 layers, 2048 wide, 32 heads,
4 kv heads, n_ff 5632, SentencePiece vocabulary of 32000). Weights are random bytes with sane
scales (`random_raw_tensor`): the files build in seconds and both runtimes load them; what they
would say is noise, so they are for speed only.

- Q4_0 / Q8_0: every matrix in that type, token embedding and output head in Q8_0 (the preset's).
- Q4_K_M: llama.cpp's Q4_K_M mix, written directly as raw blocks (not via `pyllong quantize`):
  Q4_K everywhere, Q6_K for attn_v and ffn_down of the layers llama.cpp gives "more bits"
  (first and last eighth, every third between) and for output.weight; token_embd in Q4_K.
  The per-tensor choice is `pyllong.quantize_model.target_type`, the function `pyllong quantize`
  uses, so the mix is the one our quantizer would write; file_type says Q4_K_M (15).
Prints the paths.
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from models import synthetic as syn  # noqa: E402
from pyllong.quantize_model import target_type  # noqa: E402


def build(path: str, ftype: str) -> str:
    params = syn.preset_params("llama-1b", name=f"llama-1b-{ftype}")
    if ftype == "Q4_K_M":
        params.update(qtype="Q4_K", embd_qtype="Q4_K", output_qtype="Q6_K")
    else:
        params.update(qtype=ftype)
    spec = syn.ModelSpec(**params).resolved()
    tensors = {}
    for t in syn.tensor_specs(spec):
        qtype = t.qtype
        if ftype == "Q4_K_M" and len(t.shape) == 2 and t.name != "token_embd.weight":
            qtype = target_type(t.name, 2, t.shape[0], "Q4_K_M", spec.n_layer)
        tensors[t.name] = syn.random_raw_tensor(t, qtype, spec.seed)
    meta = syn._metadata(spec, syn.make_vocab(spec))
    tmp = path + ".tmp"
    syn.write_gguf(tmp, meta, tensors)
    os.replace(tmp, path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(syn.cache_dir(), "bench"), help="output folder")
    ap.add_argument("--types", default="Q4_0,Q8_0,Q4_K_M", help="comma-separated: Q4_0, Q8_0, Q4_K_M")
    ap.add_argument("--force", action="store_true", help="rebuild files that exist")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for ftype in a.types.split(","):
        path = os.path.join(a.out, f"llama-1b-{ftype}.gguf")
        if a.force or not os.path.exists(path):
            build(path, ftype)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
