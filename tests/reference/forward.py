"""An independent float64 numpy forward pass for the architectures pyllong runs.

Written from each architecture's definition (and llama.cpp's documented conventions), not
from pyllong's C++: weights come from `gguf.GGUFReader` and `gguf.quants.dequantize`, every
operation is plain numpy in float64.

    logits = reference_logits(path, tokens)              # (n_tokens, n_vocab) float64
    logits = reference_logits(path, tokens, positions)   # explicit rotary positions

Conventions (matching llama.cpp):
* llama / mistral: RMSNorm, RoPE "normal" mode (rotates adjacent pairs x[2i], x[2i+1]),
  SwiGLU FFN silu(gate x) * (up x), sequential residual.
* phi2: LayerNorm with bias, fused qkv with bias, RoPE NeoX mode (pairs x[i], x[i + n_rot/2])
  over the first n_rot dims only, GELU (tanh approximation) MLP with biases, parallel
  residual x + attn(ln(x)) + mlp(ln(x)), output with bias.
* phi3: RMSNorm, fused qkv (q | k | v rows), RoPE NeoX, fused gate/up: silu(first half) *
  second half.
* Rotation angle of pair i at position p: p * freq_scale * base^(-2i/n_rot) / freq_factor[i]
  (freq_factor from `rope_freqs.weight` when present, else 1).
* Attention: softmax(q.k / sqrt(head_dim)) v, GQA query head h reads kv head h // (n_head /
  n_head_kv); query i sees key j iff j <= i (sequence order) and, with a sliding window W,
  pos[i] - pos[j] < W (Mistral semantics).
* Tied embeddings: no `output.weight` means logits use `token_embd.weight`.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

import gguf

ROPE_NORMAL, ROPE_NEOX = "normal", "neox"


# ---------------------------------------------------------------------------------------------
# Reading the model

@dataclass
class Config:
    arch: str              # general.architecture: llama | phi2 | phi3
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_rot: int
    n_vocab: int
    norm_eps: float
    rope_base: float
    rope_freq_scale: float
    sliding_window: int    # 0 = full attention

    @property
    def rope_mode(self) -> str:
        return ROPE_NORMAL if self.arch == "llama" else ROPE_NEOX


def _field(reader: gguf.GGUFReader, key: str, default=None):
    f = reader.fields.get(key)
    return default if f is None else f.contents()


def read_config(reader: gguf.GGUFReader) -> Config:
    arch = _field(reader, "general.architecture")
    if arch not in ("llama", "phi2", "phi3"):
        raise ValueError(f"reference forward does not know architecture {arch!r}")

    def key(k, default=None):
        return _field(reader, f"{arch}.{k}", default)

    n_embd, n_head = int(key("embedding_length")), int(key("attention.head_count"))
    head_dim = int(key("attention.key_length", n_embd // n_head))
    eps_key = "attention.layer_norm_epsilon" if arch == "phi2" else "attention.layer_norm_rms_epsilon"
    freq_scale = 1.0
    if key("rope.scaling.type") == "linear" and key("rope.scaling.factor"):
        freq_scale = 1.0 / float(key("rope.scaling.factor"))
    return Config(
        arch=arch, n_layer=int(key("block_count")), n_embd=n_embd, n_head=n_head,
        n_head_kv=int(key("attention.head_count_kv", n_head)), head_dim=head_dim,
        n_rot=int(key("rope.dimension_count", head_dim)),
        n_vocab=len(reader.fields["tokenizer.ggml.tokens"].data),
        norm_eps=float(key(eps_key)), rope_base=float(key("rope.freq_base", 10000.0)),
        rope_freq_scale=freq_scale, sliding_window=int(key("attention.sliding_window", 0) or 0),
    )


def read_weights(reader: gguf.GGUFReader) -> dict[str, np.ndarray]:
    """name -> float64 array in numpy order: a (ne1, ne0) matrix maps x (ne0,) to W @ x (ne1,)."""
    weights = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        shape = tuple(int(n) for n in reversed(t.shape))  # ggml ne order -> numpy order
        weights[t.name] = np.asarray(values, dtype=np.float64).reshape(shape)
    return weights


@dataclass
class Model:
    config: Config
    weights: dict[str, np.ndarray]

    def w(self, name: str) -> np.ndarray:
        return self.weights[name]

    def layer(self, i: int, name: str) -> np.ndarray | None:
        return self.weights.get(f"blk.{i}.{name}")

    @property
    def output(self) -> np.ndarray:   # (n_vocab, n_embd)
        return self.weights.get("output.weight", self.weights["token_embd.weight"])


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> Model:
    reader = gguf.GGUFReader(path)
    return Model(read_config(reader), read_weights(reader))


def load_model(path: str | os.PathLike) -> Model:
    path = os.fspath(path)
    st = os.stat(path)
    return _load_cached(path, st.st_mtime_ns, st.st_size)


# ---------------------------------------------------------------------------------------------
# Operations (x: (n_tokens, n) float64)

def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    centered = x - x.mean(axis=-1, keepdims=True)
    return centered / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + eps) * weight + bias


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """x (n_tokens, n_in) @ weight (n_out, n_in).T + bias -> (n_tokens, n_out)."""
    y = x @ weight.T
    return y if bias is None else y + bias


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def rope_angles(positions: np.ndarray, n_rot: int, base: float, freq_scale: float = 1.0,
                freq_factors: np.ndarray | None = None) -> np.ndarray:
    """(n_tokens, n_rot/2) angles: pair i at position p turns by p*scale*base^(-2i/n_rot)/factor_i."""
    inv_freq = base ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)  # (n_rot/2,)
    if freq_factors is not None:
        inv_freq = inv_freq / freq_factors
    return np.outer(np.asarray(positions, dtype=np.float64) * freq_scale, inv_freq)


def apply_rope(x: np.ndarray, angles: np.ndarray, n_rot: int, mode: str) -> np.ndarray:
    """x (n_tokens, n_heads, head_dim); rotates the first n_rot dims of every head."""
    cos = np.cos(angles)[:, None, :]   # (n_tokens, 1, n_rot/2)
    sin = np.sin(angles)[:, None, :]
    out = x.copy()
    if mode == ROPE_NORMAL:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    elif mode == ROPE_NEOX:
        half = n_rot // 2
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        raise ValueError(f"unknown rope mode {mode!r}")
    return out


def attention_mask(positions: np.ndarray, sliding_window: int) -> np.ndarray:
    """(n_q, n_k) bool, True where query i may attend key j."""
    n = len(positions)
    idx = np.arange(n)
    allowed = idx[None, :] <= idx[:, None]
    if sliding_window:
        pos = np.asarray(positions)
        allowed &= (pos[:, None] - pos[None, :]) < sliding_window
    return allowed


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """q (n, n_head, d), k/v (n, n_head_kv, d), mask (n, n) -> (n, n_head * d)."""
    n, n_head, d = q.shape
    group = n_head // k.shape[1]
    k = np.repeat(k, group, axis=1)    # query head h reads kv head h // group
    v = np.repeat(v, group, axis=1)
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d)
    scores = np.where(mask[None], scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", probs, v).reshape(n, n_head * d)


# ---------------------------------------------------------------------------------------------
# Blocks

def _split_heads(x: np.ndarray, n_heads: int, head_dim: int) -> np.ndarray:
    return x.reshape(x.shape[0], n_heads, head_dim)


def _qkv(m: Model, i: int, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = m.config
    q_dim, kv_dim = c.n_head * c.head_dim, c.n_head_kv * c.head_dim
    fused = m.layer(i, "attn_qkv.weight")
    if fused is not None:
        qkv = linear(h, fused, m.layer(i, "attn_qkv.bias"))     # (n, q_dim + 2 kv_dim)
        q, k, v = qkv[:, :q_dim], qkv[:, q_dim:q_dim + kv_dim], qkv[:, q_dim + kv_dim:]
    else:
        q = linear(h, m.layer(i, "attn_q.weight"), m.layer(i, "attn_q.bias"))
        k = linear(h, m.layer(i, "attn_k.weight"), m.layer(i, "attn_k.bias"))
        v = linear(h, m.layer(i, "attn_v.weight"), m.layer(i, "attn_v.bias"))
    return (_split_heads(q, c.n_head, c.head_dim), _split_heads(k, c.n_head_kv, c.head_dim),
            _split_heads(v, c.n_head_kv, c.head_dim))


def self_attention(m: Model, i: int, h: np.ndarray, angles: np.ndarray, mask: np.ndarray) -> np.ndarray:
    c = m.config
    q, k, v = _qkv(m, i, h)
    q = apply_rope(q, angles, c.n_rot, c.rope_mode)
    k = apply_rope(k, angles, c.n_rot, c.rope_mode)
    out = attention(q, k, v, mask)
    return linear(out, m.layer(i, "attn_output.weight"), m.layer(i, "attn_output.bias"))


def feed_forward(m: Model, i: int, h: np.ndarray) -> np.ndarray:
    arch = m.config.arch
    down_w, down_b = m.layer(i, "ffn_down.weight"), m.layer(i, "ffn_down.bias")
    if arch == "phi2":
        return linear(gelu_tanh(linear(h, m.layer(i, "ffn_up.weight"), m.layer(i, "ffn_up.bias"))), down_w, down_b)
    if arch == "phi3":
        gate_up = linear(h, m.layer(i, "ffn_up.weight"))        # (n, 2 n_ff): gate | up
        n_ff = gate_up.shape[1] // 2
        return linear(silu(gate_up[:, :n_ff]) * gate_up[:, n_ff:], down_w, down_b)
    gate = linear(h, m.layer(i, "ffn_gate.weight"))
    up = linear(h, m.layer(i, "ffn_up.weight"))
    return linear(silu(gate) * up, down_w, down_b)


def norm(m: Model, x: np.ndarray, prefix: str) -> np.ndarray:
    """`prefix` is e.g. "blk.0.attn_norm" or "output_norm"."""
    c = m.config
    if c.arch == "phi2":
        return layer_norm(x, m.w(prefix + ".weight"), m.w(prefix + ".bias"), c.norm_eps)
    return rms_norm(x, m.w(prefix + ".weight"), c.norm_eps)


def transformer_layer(m: Model, i: int, x: np.ndarray, angles: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if m.config.arch == "phi2":  # parallel residual: attention and MLP read the same normed input
        h = norm(m, x, f"blk.{i}.attn_norm")
        return x + self_attention(m, i, h, angles, mask) + feed_forward(m, i, h)
    x = x + self_attention(m, i, norm(m, x, f"blk.{i}.attn_norm"), angles, mask)
    return x + feed_forward(m, i, norm(m, x, f"blk.{i}.ffn_norm"))


# ---------------------------------------------------------------------------------------------
# Entry points

def hidden_states(m: Model, tokens: list[int], positions=None) -> np.ndarray:
    """(n_tokens, n_embd): the final-norm output, before the output projection."""
    c = m.config
    tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1 or len(tokens) == 0:
        raise ValueError("tokens must be a non-empty 1-D sequence")
    if tokens.min() < 0 or tokens.max() >= c.n_vocab:
        raise ValueError(f"token ids must be in [0, {c.n_vocab})")
    positions = np.arange(len(tokens)) if positions is None else np.asarray(positions, dtype=np.int64)
    if positions.shape != tokens.shape:
        raise ValueError("positions must have one entry per token")
    freq_factors = m.weights.get("rope_freqs.weight")
    angles = rope_angles(positions, c.n_rot, c.rope_base, c.rope_freq_scale, freq_factors)
    mask = attention_mask(positions, c.sliding_window)
    x = m.w("token_embd.weight")[tokens]                         # (n, n_embd)
    for i in range(c.n_layer):
        x = transformer_layer(m, i, x, angles, mask)
    return norm(m, x, "output_norm")


def reference_logits(path: str | os.PathLike, tokens: list[int], positions=None) -> np.ndarray:
    """(n_tokens, n_vocab) float64 logits of the GGUF model at `path` for `tokens`
    (all in one causal sequence), rotary positions `positions` (default 0..n-1)."""
    m = load_model(path)
    h = hidden_states(m, tokens, positions)
    return linear(h, m.output, m.weights.get("output.bias"))


__all__ = ["reference_logits", "load_model", "hidden_states", "Model", "Config", "rope_angles", "apply_rope",
           "attention_mask", "rms_norm", "layer_norm", "gelu_tanh", "silu"]
