"""Does llama.cpp load what `pyllong convert` writes, and agree with pyllong on it?

For every architecture the converter supports, builds a synthetic Hugging Face checkpoint
(tests/hf_checkpoints.py: random weights, a trained SentencePiece or BPE tokenizer), converts it
to each output type, and compares three sets of logits on the same tokens: llama.cpp's
(`dump_logits`, tools/peer/dump_logits.cpp linked against the peer build), pyllong's, and the
float64 numpy forward pass over the HF weights (tests/reference/hf_forward.py).

    PYTHONPATH=. python tools/peer/compare_convert.py [--dump-logits ~/.cache/pyllong-peer/dump_logits]

Prints a markdown table: max |difference| / max |logit| for each pair.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests"))

DEFAULT_BIN = os.path.expanduser("~/.cache/pyllong-peer/dump_logits")
CASES = [  # (name, arch, tokenizer, config overrides)
    ("llama (SPM)", "llama", "spm", {}),
    ("llama (SmolLM BPE, tied)", "llama", "smollm", {"tie_word_embeddings": True}),
    ("llama-3 BPE + llama3 rope scaling", "llama", "llama3",
     {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                       "original_max_position_embeddings": 32}, "rope_theta": 500000.0}),
    ("llama linear rope x4", "llama", "spm", {"rope_scaling": {"type": "linear", "factor": 4.0}}),
    ("Mistral (window 8)", "mistral", "spm", {"sliding_window": 8}),
    ("phi2", "phi2", "gpt2", {}),
    ("phi3", "phi3", "spm", {}),
    ("LongLLaMA (head dim 20)", "longllama", "spm", {"hidden_size": 80}),
]


def peer_logits(binary: str, model: str, tokens: list[int], workdir: str) -> np.ndarray:
    """llama.cpp's logits for `tokens` as one batch: (n_tokens, n_vocab) float32."""
    out = os.path.join(workdir, "peer_logits.bin")
    r = subprocess.run([binary, model, out, *map(str, tokens)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"llama.cpp failed on {model}: {r.stderr[-2000:]}")
    return np.fromfile(out, dtype=np.float32).reshape(len(tokens), -1)


def rel(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def compare_checkpoint(a) -> int:
    from pyllong import _core
    from pyllong.convert import convert

    print("| checkpoint | type | llama.cpp vs pyllong | same argmax |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(a.checkpoint))) as tmp:
        for t in a.types.split(","):
            path = os.path.join(tmp, f"m-{t}.gguf")
            convert(a.checkpoint, path, t, log=None)
            mf = _core.ModelFile(path)
            toks = np.random.default_rng(1).integers(0, mf.hparams["n_vocab"], a.tokens).tolist()
            ours = _core.Context(mf, n_ctx=256, n_threads=2, n_batch=64).eval(toks, True)
            theirs = peer_logits(a.dump_logits, path, toks, tmp)
            same = int((ours.argmax(-1) == theirs.argmax(-1)).sum())
            print(f"| {os.path.basename(a.checkpoint.rstrip('/'))} | {t} | {rel(theirs, ours):.2e} | "
                  f"{same}/{len(toks)} |", flush=True)
            os.remove(path)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump-logits", default=DEFAULT_BIN, help="dump_logits binary (see BENCHMARKS.md)")
    ap.add_argument("--types", default="F32,F16,Q8_0,Q4_K_M")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--checkpoint", default=None,
                    help="instead of the synthetic cases, convert this checkpoint folder and compare llama.cpp "
                         "with pyllong only (no float64 reference: it would need 8 bytes per weight)")
    a = ap.parse_args()
    if a.checkpoint:
        return compare_checkpoint(a)

    from hf_checkpoints import make_checkpoint
    from reference.hf_forward import hf_logits

    from pyllong import _core
    from pyllong.convert import convert

    print("| checkpoint | type | llama.cpp vs pyllong | pyllong vs HF f64 | llama.cpp vs HF f64 |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, arch, tok, cfg in CASES:
            d = make_checkpoint(os.path.join(tmp, arch + tok + str(len(cfg))), arch, tok, **cfg)
            toks = np.random.default_rng(1).integers(0, 300, a.tokens).tolist()
            ref = hf_logits(d, toks)
            for t in a.types.split(","):
                path = os.path.join(tmp, f"m-{t}.gguf")
                convert(d, path, t, log=None)
                ours = _core.Context(_core.ModelFile(path), n_ctx=64, n_threads=2, n_batch=64).eval(toks, True)
                theirs = peer_logits(a.dump_logits, path, toks, tmp)
                print(f"| {name} | {t} | {rel(theirs, ours):.2e} | {rel(ours, ref):.2e} | {rel(theirs, ref):.2e} |",
                      flush=True)
                w = cfg.get("sliding_window")
                if w:  # llama.cpp's llama ignores the window: agreement before it matters
                    print(f"| {name}, first {w} positions | {t} | {rel(theirs[:w], ours[:w]):.2e} | "
                          f"{rel(ours[:w], ref[:w]):.2e} | {rel(theirs[:w], ref[:w]):.2e} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
