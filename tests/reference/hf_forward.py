"""Float64 numpy forward pass of Hugging Face checkpoints, in Hugging Face's own conventions:
weights by their HF names and layouts (q/k rows in rotate_half order, Phi-2's separate
q/k/v, Phi-3's fused qkv and gate_up), read from the safetensors files with the `safetensors`
package. Independent of GGUF and of pyllong's converter: this is what the converted file must
compute.

    logits = hf_logits(checkpoint_dir, tokens)     # (n_tokens, vocab_size) float64

Semantics follow transformers' modeling_llama / modeling_mistral / modeling_phi /
modeling_phi3 (and LongLLaMA, which is LLaMA for prompts within its local window):
* rotary: inv_freq = theta^(-2i/d_rot), angle = pos * inv_freq, duplicated to both halves,
  x * cos + rotate_half(x) * sin with rotate_half(x) = cat(-x2, x1); linear scaling divides
  positions by the factor; llama3 scaling rescales inv_freq by wavelength band.
* attention: softmax(q k^T / sqrt(head_dim)) with the causal mask, keys j allowed for query i
  iff j <= i and (with sliding_window W) i - j < W; GQA repeats each kv head.
"""
from __future__ import annotations

import glob
import json
import math
import os

import numpy as np


def load_checkpoint(directory: str) -> tuple[dict, dict[str, np.ndarray]]:
    from safetensors.numpy import load_file

    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    weights = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.safetensors"))):
        weights.update({k: v.astype(np.float64) for k, v in load_file(path).items()})
    return config, weights


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def silu(x):
    return x / (1 + np.exp(-x))


def gelu_new(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def inv_freq(config: dict, dim: int) -> tuple[np.ndarray, float]:
    """(inv_freq, position divisor) per transformers' rope initialisation."""
    theta = config.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim)
    rs = config.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "linear":
        return inv, float(rs["factor"])
    if kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
        return np.where(medium, smoothed, scaled), 1.0
    assert not kind, f"reference has no rope scaling {kind}"
    return inv, 1.0


def apply_rotary(x, config, dim):
    """x: (n, heads, dim) -> rotated, positions 0..n-1."""
    inv, divisor = inv_freq(config, dim)
    t = np.arange(x.shape[0], dtype=np.float64) / divisor
    freqs = np.outer(t, inv)
    emb = np.concatenate([freqs, freqs], axis=-1)[:, None, :]
    return x * np.cos(emb) + rotate_half(x) * np.sin(emb)


def attend(q, k, v, sliding_window=None):
    n, h, d = q.shape
    rep = h // k.shape[1]
    k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
    s = np.einsum("ihd,jhd->hij", q, k) / math.sqrt(d)
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    allowed = j <= i
    if sliding_window:
        allowed &= (i - j) < sliding_window
    s = np.where(allowed[None], s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hij,jhd->ihd", p, v).reshape(n, h * d)


def hf_logits(directory: str, tokens) -> np.ndarray:
    config, w = load_checkpoint(directory)
    arch = config["architectures"][0]
    n_head = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_head
    d = config.get("head_dim") or config["hidden_size"] // n_head
    x = w["model.embed_tokens.weight"][np.asarray(tokens)]
    n = x.shape[0]
    window = config.get("sliding_window") if arch in ("MistralForCausalLM", "Phi3ForCausalLM") else None
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        if arch == "PhiForCausalLM":
            eps = config["layer_norm_eps"]
            h = layer_norm(x, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], eps)
            q, k, v = (h @ w[p + f"self_attn.{t}_proj.weight"].T + w[p + f"self_attn.{t}_proj.bias"] for t in "qkv")
            q, k, v = q.reshape(n, n_head, d), k.reshape(n, n_kv, d), v.reshape(n, n_kv, d)
            rot = int(d * config["partial_rotary_factor"])
            q = np.concatenate([apply_rotary(q[..., :rot], config, rot), q[..., rot:]], axis=-1)
            k = np.concatenate([apply_rotary(k[..., :rot], config, rot), k[..., rot:]], axis=-1)
            a = attend(q, k, v) @ w[p + "self_attn.dense.weight"].T + w[p + "self_attn.dense.bias"]
            ff = gelu_new(h @ w[p + "mlp.fc1.weight"].T + w[p + "mlp.fc1.bias"]) @ w[p + "mlp.fc2.weight"].T \
                + w[p + "mlp.fc2.bias"]
            x = x + a + ff
            continue
        eps = config["rms_norm_eps"]
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        if arch == "Phi3ForCausalLM":
            qkv = h @ w[p + "self_attn.qkv_proj.weight"].T
            q, k, v = np.split(qkv, [n_head * d, (n_head + n_kv) * d], axis=-1)
        else:
            q, k, v = (h @ w[p + f"self_attn.{t}_proj.weight"].T for t in "qkv")
        q = apply_rotary(q.reshape(n, n_head, d), config, d)
        k = apply_rotary(k.reshape(n, n_kv, d), config, d)
        x = x + attend(q, k, v.reshape(n, n_kv, d), window) @ w[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        if arch == "Phi3ForCausalLM":
            gate, up = np.split(h @ w[p + "mlp.gate_up_proj.weight"].T, 2, axis=-1)
        else:
            gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (up * silu(gate)) @ w[p + "mlp.down_proj.weight"].T
    if arch == "PhiForCausalLM":
        x = layer_norm(x, w["model.final_layernorm.weight"], w["model.final_layernorm.bias"], config["layer_norm_eps"])
        return x @ w["lm_head.weight"].T + w["lm_head.bias"]
    x = rms_norm(x, w["model.norm.weight"], config["rms_norm_eps"])
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else w["lm_head.weight"]
    return x @ head.T
