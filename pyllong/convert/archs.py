"""Hugging Face architectures -> GGUF: hyper-parameter metadata and a tensor plan.

A plan lists every GGUF tensor with the checkpoint tensors it is made of (`parts`, stacked
along rows) and whether their rows are reordered for llama.cpp's rotary layout. Plans are
built and checked against config.json from tensor names and shapes only; data is read later,
one output tensor at a time.

Rotary layout: Hugging Face LLaMA rotates pairs (x[i], x[i + d/2]) of each head
("rotate_half"); GGUF `llama` rotates adjacent pairs (x[2i], x[2i+1]). The HF q/k projection
rows of each head are therefore interleaved — row 2i <- row i, row 2i+1 <- row i + d/2 — as
llama.cpp's converter does. Phi-2 and Phi-3 use NeoX-mode rotary in GGUF, which is HF's
rotate_half already: their rows are copied as they are.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConvertError

# config.json "architectures" / "model_type" -> our architecture family
HF_ARCHS = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "PhiForCausalLM": "phi2",
            "Phi3ForCausalLM": "phi3", "LongLlamaForCausalLM": "longllama"}
HF_MODEL_TYPES = {"llama": "llama", "mistral": "mistral", "phi": "phi2", "phi3": "phi3", "longllama": "longllama"}
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "longllama": "llama", "phi2": "phi2", "phi3": "phi3"}


@dataclass
class Part:
    """One checkpoint tensor feeding a GGUF tensor; `rope_heads` > 0: interleave the rotary
    halves of that many heads (HF rotate_half -> GGUF adjacent pairs)."""
    source: str
    rope_heads: int = 0


@dataclass
class OutTensor:
    name: str                     # GGUF name
    shape: tuple[int, ...]        # numpy order: (rows, row length) or (n,)
    parts: list[Part] = field(default_factory=list)
    values: np.ndarray | None = None   # computed here instead of read (rope factor tables)


@dataclass
class Plan:
    arch: str                     # our family: llama | mistral | longllama | phi2 | phi3
    gguf_arch: str
    metadata: dict[str, Any]      # key -> value (typed by the writer, see convert.writer)
    tensors: list[OutTensor]
    n_layer: int
    n_vocab: int
    warnings: list[str] = field(default_factory=list)


def rope_row_order(n_heads: int, head_dim: int) -> np.ndarray:
    """perm with gguf_rows = hf_rows[perm]: GGUF row h*d + 2j + s is HF row h*d + s*d/2 + j."""
    half = head_dim // 2
    h, j, s = np.meshgrid(np.arange(n_heads), np.arange(half), np.arange(2), indexing="ij")
    return (h * head_dim + s * half + j).reshape(-1)


def detect_arch(config: dict) -> str:
    for a in config.get("architectures") or []:
        if a in HF_ARCHS:
            return HF_ARCHS[a]
    if config.get("model_type") in HF_MODEL_TYPES:
        return HF_MODEL_TYPES[config["model_type"]]
    found = config.get("architectures") or config.get("model_type")
    raise ConvertError(f"unknown architecture {found!r} in config.json (supported: {', '.join(HF_ARCHS)})")


class _Config:
    """config.json with typed, named errors for missing or bad keys."""

    def __init__(self, config: dict):
        self.c = config

    def int(self, *keys: str, default: int | None = None) -> int:
        for k in keys:
            if self.c.get(k) is not None:
                v = self.c[k]
                if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                    raise ConvertError(f"config.json: {k} = {v!r} is not a non-negative integer")
                return v
        if default is None:
            raise ConvertError(f"config.json: missing {' / '.join(keys)}")
        return default

    def float(self, key: str, default: float) -> float:
        v = self.c.get(key)
        if v is None:
            return default
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConvertError(f"config.json: {key} = {v!r} is not a number")
        return float(v)


def _rope_scaling(cfg: _Config, arch: str, head_dim: int, base: float, meta: dict, tensors: list, warnings: list):
    rs = cfg.c.get("rope_scaling")
    if not rs:
        return
    kind = str(rs.get("rope_type", rs.get("type", ""))).lower()
    a = GGUF_ARCH[arch]
    if kind == "linear" and arch != "phi3":
        meta[f"{a}.rope.scaling.type"] = "linear"
        meta[f"{a}.rope.scaling.factor"] = float(rs["factor"])
    elif kind == "llama3" and a == "llama":
        # LLaMA-3.1: per-frequency divisors, stored as rope_freqs.weight (llama.cpp's convention).
        factor = float(rs.get("factor", 8.0))
        lo, hi = float(rs.get("low_freq_factor", 1.0)), float(rs.get("high_freq_factor", 4.0))
        old_ctx = float(rs.get("original_max_position_embeddings", 8192))
        freqs = base ** -(np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
        wavelen = 2 * math.pi / freqs
        smooth = (old_ctx / wavelen - lo) / (hi - lo)
        divisors = np.where(wavelen < old_ctx / hi, 1.0,
                            np.where(wavelen > old_ctx / lo, factor, 1.0 / ((1 - smooth) / factor + smooth)))
        tensors.append(OutTensor("rope_freqs.weight", (head_dim // 2,), values=divisors.astype(np.float32)))
    elif kind in ("longrope", "su") and arch == "phi3":
        long_f, short_f = rs.get("long_factor"), rs.get("short_factor")
        if not long_f or not short_f or len(long_f) != head_dim // 2 or len(short_f) != head_dim // 2:
            raise ConvertError(f"config.json: rope_scaling {kind} needs long_factor and short_factor "
                               f"of {head_dim // 2} values")
        n_ctx, orig = cfg.int("max_position_embeddings"), cfg.int("original_max_position_embeddings")
        scale = n_ctx / orig
        meta["phi3.rope.scaling.attn_factor"] = math.sqrt(1 + math.log(scale) / math.log(orig)) if scale > 1 else 1.0
        tensors.append(OutTensor("rope_factors_long.weight", (head_dim // 2,), values=np.asarray(long_f, np.float32)))
        tensors.append(OutTensor("rope_factors_short.weight", (head_dim // 2,), values=np.asarray(short_f, np.float32)))
        warnings.append(f"rope_scaling {kind}: factors written for llama.cpp; pyllong does not apply them yet "
                        f"(outputs past {orig} tokens will differ from the reference model)")
    else:
        raise ConvertError(f"config.json: rope_scaling {rs!r} is not supported for {arch} "
                           f"(supported: linear and llama3 for llama, longrope for phi3)")


def build_plan(config: dict, shapes: dict[str, tuple[int, ...]], name: str) -> Plan:
    """The conversion plan for a checkpoint with these tensor shapes (by HF name)."""
    try:
        return _build_plan(config, shapes, name)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        if isinstance(e, ConvertError):
            raise
        raise ConvertError(f"config.json: malformed or missing setting ({type(e).__name__}: {e})") from None


def _build_plan(config: dict, shapes: dict[str, tuple[int, ...]], name: str) -> Plan:
    arch = detect_arch(config)
    cfg = _Config(config)
    a = GGUF_ARCH[arch]
    n_embd = cfg.int("hidden_size", "n_embd")
    n_layer = cfg.int("num_hidden_layers", "n_layer")
    n_head = cfg.int("num_attention_heads", "n_head")
    n_head_kv = cfg.int("num_key_value_heads", default=n_head)
    if n_head == 0 or n_head_kv == 0 or n_head % n_head_kv:
        raise ConvertError(f"config.json: num_attention_heads {n_head} is not a multiple of "
                           f"num_key_value_heads {n_head_kv}")
    head_dim = cfg.int("head_dim", default=n_embd // n_head)
    if head_dim % 2:
        raise ConvertError(f"config.json: head dimension {head_dim} is odd; rotary embeddings need pairs")
    n_ff = cfg.int("intermediate_size", "n_inner", default=4 * n_embd if arch == "phi2" else None)
    n_vocab = cfg.int("vocab_size")
    n_ctx = cfg.int("max_position_embeddings", "n_positions")
    base = cfg.float("rope_theta", 10000.0)
    q_dim, kv_dim = n_head * head_dim, n_head_kv * head_dim

    act = config.get("hidden_act", "gelu_new" if arch == "phi2" else "silu")
    if act not in (("gelu_new", "gelu_pytorch_tanh", "gelu_fast") if arch == "phi2" else ("silu",)):
        raise ConvertError(f"config.json: hidden_act {act!r} is not supported for {arch}")
    for flag in ("attention_bias", "mlp_bias", "qk_layernorm"):
        if config.get(flag):
            raise ConvertError(f"config.json: {flag} = true is not supported for {arch}")

    meta: dict[str, Any] = {
        "general.name": name,
        f"{a}.context_length": n_ctx,
        f"{a}.embedding_length": n_embd,
        f"{a}.feed_forward_length": n_ff,
        f"{a}.block_count": n_layer,
        f"{a}.attention.head_count": n_head,
        f"{a}.attention.head_count_kv": n_head_kv,
        f"{a}.rope.freq_base": base,
        f"{a}.vocab_size": n_vocab,
    }
    if head_dim != n_embd // n_head:
        meta[f"{a}.attention.key_length"] = head_dim
        meta[f"{a}.attention.value_length"] = head_dim
    warnings: list[str] = []
    tensors: list[OutTensor] = []

    def out(gguf_name, shape, *parts):
        tensors.append(OutTensor(gguf_name, tuple(shape), [p if isinstance(p, Part) else Part(p) for p in parts]))

    tied = bool(config.get("tie_word_embeddings", False))
    out("token_embd.weight", (n_vocab, n_embd), "model.embed_tokens.weight")

    if arch == "phi2":
        n_rot = int(cfg.float("partial_rotary_factor", 0.5) * head_dim)
        meta[f"{a}.attention.layer_norm_epsilon"] = cfg.float("layer_norm_eps", 1e-5)
        meta[f"{a}.rope.dimension_count"] = n_rot
        for i in range(n_layer):
            p, b = f"model.layers.{i}.", f"blk.{i}."
            out(b + "attn_norm.weight", (n_embd,), p + "input_layernorm.weight")
            out(b + "attn_norm.bias", (n_embd,), p + "input_layernorm.bias")
            out(b + "attn_qkv.weight", (q_dim + 2 * kv_dim, n_embd), *(p + f"self_attn.{x}_proj.weight" for x in "qkv"))
            out(b + "attn_qkv.bias", (q_dim + 2 * kv_dim,), *(p + f"self_attn.{x}_proj.bias" for x in "qkv"))
            out(b + "attn_output.weight", (n_embd, q_dim), p + "self_attn.dense.weight")
            out(b + "attn_output.bias", (n_embd,), p + "self_attn.dense.bias")
            out(b + "ffn_up.weight", (n_ff, n_embd), p + "mlp.fc1.weight")
            out(b + "ffn_up.bias", (n_ff,), p + "mlp.fc1.bias")
            out(b + "ffn_down.weight", (n_embd, n_ff), p + "mlp.fc2.weight")
            out(b + "ffn_down.bias", (n_embd,), p + "mlp.fc2.bias")
        out("output_norm.weight", (n_embd,), "model.final_layernorm.weight")
        out("output_norm.bias", (n_embd,), "model.final_layernorm.bias")
        out("output.weight", (n_vocab, n_embd), "lm_head.weight")
        out("output.bias", (n_vocab,), "lm_head.bias")
        ignored = ()
    else:
        n_rot = head_dim if arch != "phi3" else int(cfg.float("partial_rotary_factor", 1.0) * n_embd) // n_head
        meta[f"{a}.attention.layer_norm_rms_epsilon"] = cfg.float("rms_norm_eps", 1e-6)
        meta[f"{a}.rope.dimension_count"] = n_rot
        for i in range(n_layer):
            p, b = f"model.layers.{i}.", f"blk.{i}."
            out(b + "attn_norm.weight", (n_embd,), p + "input_layernorm.weight")
            if arch == "phi3":
                out(b + "attn_qkv.weight", (q_dim + 2 * kv_dim, n_embd), p + "self_attn.qkv_proj.weight")
            else:
                out(b + "attn_q.weight", (q_dim, n_embd), Part(p + "self_attn.q_proj.weight", n_head))
                out(b + "attn_k.weight", (kv_dim, n_embd), Part(p + "self_attn.k_proj.weight", n_head_kv))
                out(b + "attn_v.weight", (kv_dim, n_embd), p + "self_attn.v_proj.weight")
            out(b + "attn_output.weight", (n_embd, q_dim), p + "self_attn.o_proj.weight")
            out(b + "ffn_norm.weight", (n_embd,), p + "post_attention_layernorm.weight")
            if arch == "phi3":
                out(b + "ffn_up.weight", (2 * n_ff, n_embd), p + "mlp.gate_up_proj.weight")
            else:
                out(b + "ffn_gate.weight", (n_ff, n_embd), p + "mlp.gate_proj.weight")
                out(b + "ffn_up.weight", (n_ff, n_embd), p + "mlp.up_proj.weight")
            out(b + "ffn_down.weight", (n_embd, n_ff), p + "mlp.down_proj.weight")
        out("output_norm.weight", (n_embd,), "model.norm.weight")
        if not tied:
            out("output.weight", (n_vocab, n_embd), "lm_head.weight")
        # Old checkpoints store the rotary inverse frequencies (recomputed from rope_theta);
        # tied models may still carry a copy of the embedding as lm_head.
        ignored = ("rotary_emb.inv_freq",) + (("lm_head.weight",) if tied else ())
    _rope_scaling(cfg, arch, head_dim, base, meta, tensors, warnings)

    if arch == "mistral" and config.get("sliding_window"):
        meta[f"{a}.attention.sliding_window"] = cfg.int("sliding_window")
    if arch == "phi3":
        meta[f"{a}.attention.sliding_window"] = cfg.int("sliding_window", default=0)
        if config.get("original_max_position_embeddings"):
            meta[f"{a}.rope.scaling.original_context_length"] = cfg.int("original_max_position_embeddings")
    if arch == "longllama":
        mem_layers = config.get("mem_layers") or []
        if not all(isinstance(x, int) and 0 <= x < n_layer for x in mem_layers):
            raise ConvertError(f"config.json: mem_layers {mem_layers!r} must be layer indices in [0, {n_layer})")
        last = cfg.int("last_context_length", default=1024)
        if last > n_ctx:
            raise ConvertError(f"config.json: last_context_length {last} exceeds the window "
                               f"max_position_embeddings {n_ctx}")
        meta["llama.memory.layers"] = [int(x) for x in mem_layers]
        meta["llama.memory.window"] = n_ctx
        meta["llama.memory.last_context_length"] = last
        meta["llama.memory.positionals"] = bool(config.get("mem_positionals", True))
        meta["llama.memory.dtype"] = str(config.get("mem_dtype", "bfloat16"))
    _check_shapes(tensors, shapes, arch, ignored, config)
    return Plan(arch, a, meta, tensors, n_layer, n_vocab, warnings)


def _check_shapes(tensors: list[OutTensor], shapes: dict[str, tuple[int, ...]], arch: str,
                  ignored: tuple[str, ...], config: dict) -> None:
    used = set()
    for t in tensors:
        if t.values is not None:
            continue
        rows = 0
        for part in t.parts:
            if part.source not in shapes:
                raise ConvertError(f"tensor {part.source} is missing from the checkpoint (needed for {t.name} of "
                                   f"{arch}); the download is incomplete or the weights do not belong to this "
                                   f"config.json")
            got = tuple(shapes[part.source])
            want_tail = t.shape[1:]
            if len(got) != len(t.shape) or got[1:] != want_tail:
                raise ConvertError(f"{part.source} has shape {list(got)}, config.json implies [rows, "
                                   f"{', '.join(map(str, want_tail))}]" if want_tail else
                                   f"{part.source} has shape {list(got)}, expected 1-D")
            rows += got[0]
            used.add(part.source)
        if rows != t.shape[0]:
            srcs = " + ".join(p.source for p in t.parts)
            raise ConvertError(f"{srcs} has {rows} rows, config.json implies {t.shape[0]} for {t.name} "
                               f"(shape {list(t.shape)})")
    unknown = [n for n in shapes if n not in used and not n.endswith(ignored)]
    if unknown:
        raise ConvertError(f"{len(unknown)} checkpoint tensor(s) are not part of a {arch} model as config.json "
                           f"describes it, e.g. {', '.join(sorted(unknown)[:3])}; refusing to drop weights silently")


def model_name(config: dict, directory: str) -> str:
    return os.path.basename(str(config.get("_name_or_path") or "").rstrip("/")) or \
        os.path.basename(os.path.abspath(directory))
