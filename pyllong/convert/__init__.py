"""Convert a Hugging Face checkpoint directory to GGUF: `pyllong convert DIR OUT.gguf [--outtype T]`
(also `python tools/convert_hf_to_gguf.py`).

    from pyllong.convert import convert
    convert("path/to/hf-model", "model.gguf", outtype="Q8_0")

Input: config.json, weights as safetensors (`model.safetensors` or shards with
`model.safetensors.index.json`) or PyTorch zip `.bin` shards (read by a restricted unpickler that
never runs pickled code), and `tokenizer.model` (SentencePiece) or `tokenizer.json` (byte-level
BPE), plus the optional `tokenizer_config.json` (special tokens, add_bos/eos, chat template).

Architectures (config.json `architectures`):
  LlamaForCausalLM      -> llama   (q/k rows un-permuted from HF rotate_half to GGUF pair order)
  MistralForCausalLM    -> llama   + llama.attention.sliding_window when config sets one
  PhiForCausalLM        -> phi2    (q/k/v and their biases fused into attn_qkv)
  Phi3ForCausalLM       -> phi3
  LongLlamaForCausalLM  -> llama   + the memory keys below
Rope: `rope_theta`, linear `rope_scaling` (llama.rope.scaling.type/factor), LLaMA-3.1 `llama3`
scaling (rope_freqs.weight), Phi-3 `longrope` (rope_factors_long/short, for llama.cpp);
context length from max_position_embeddings.

LongLLaMA memory metadata (FoT memory layers; read by pyllong's memory attention):
  llama.memory.layers               uint32[]  config mem_layers: layer indices with memory attention
  llama.memory.window               uint32    W, the local context window = max_position_embeddings
  llama.memory.last_context_length  uint32    config last_context_length: tokens kept as local cache
                                              when a long prompt is split into windows of W
  llama.memory.positionals          bool      config mem_positionals: rotary positions in memory layers
  llama.memory.dtype                string    config mem_dtype: dtype the reference stores memory in

Output types: F32, F16, BF16, any type of pyllong.quant (Q4_0 ... Q6_K) or the Q4_K_M / Q5_K_M
mixes (per-tensor choices as `pyllong quantize`); norms and biases stay F32.

Memory: tensors are read one at a time with positioned reads and encoded in row chunks, so
peak memory is about the largest tensor (stored + encoded), not the model. Errors — missing
files, unknown architecture, shapes that disagree with config.json, unsupported settings —
raise pyllong.ConvertError before anything is written, and the output appears only when
complete (written to a temporary file, then renamed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..errors import ConvertError
from .archs import build_plan, model_name
from .checkpoint import Checkpoint
from .vocab import load_tokenizer
from .writer import OUT_TYPES, write_gguf


def load_config(directory: str) -> dict:
    if not os.path.isdir(directory):
        raise ConvertError(f"{directory} is not a directory (give the checkpoint folder with config.json)")
    path = os.path.join(directory, "config.json")
    if not os.path.isfile(path):
        raise ConvertError(f"{path} is missing; a Hugging Face checkpoint needs its config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    return config


def convert(directory: str, output: str, outtype: str = "F16", log=print) -> dict:
    """Convert the checkpoint in `directory` to the GGUF file `output`.
    Returns a summary: architecture, tensor types, warnings."""
    outtype = outtype.upper()
    if outtype not in OUT_TYPES:
        raise ConvertError(f"unknown output type {outtype!r}; choose one of {', '.join(OUT_TYPES)}")
    config = load_config(directory)
    ckpt = Checkpoint(directory)
    plan = build_plan(config, {n: ckpt.shape(n) for n in ckpt.names()}, model_name(config, directory))
    tok = load_tokenizer(directory, plan.n_vocab, plan.arch, config)
    for w in plan.warnings:
        if log:
            log(f"warning: {w}")
    types = write_gguf(output, plan, tok, ckpt, outtype, log=log)
    return {"arch": plan.arch, "gguf_arch": plan.gguf_arch, "types": types, "warnings": plan.warnings,
            "tokenizer": tok.model, "pre": tok.pre}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", help="Hugging Face checkpoint folder (config.json, weights, tokenizer)")
    p.add_argument("output", help="GGUF file to write")
    p.add_argument("--outtype", default="F16", help=f"{' '.join(OUT_TYPES)} (default: F16)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-tensor log")


def run(args) -> int:
    convert(args.model_dir, args.output, args.outtype, log=None if args.quiet else print)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="convert_hf_to_gguf", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


__all__ = ["convert", "ConvertError", "main"]
