"""An independent float64 numpy oracle of LongLLaMA's `fot` inference (../shared/spec/knn-memory.md,
reference CStanKonrad/long_llama modeling_longllama.py), over the float64 forward pass of
forward.py. Written from the spec, not from pyllong's C++:

* memory layers attend to their local window (causal, RoPE at positions counted from the
  window's start) and to the memory (keys unrotated, no mask) in ONE softmax over the
  concatenated logits, scaled by 1/sqrt(d); other layers attend to the window only;
* an input longer than last_context_length: all but its last last_context_length tokens go
  through in chunks of W; from an empty window each chunk attends to itself + memory and is
  then moved to memory; otherwise chunks follow the window rule;
* window rule: when window + new tokens > W, the whole window goes to memory (memory layers)
  or is dropped (others), and the new tokens start again at position 0;
* knn (optional): each query attends to its top-k memory keys (per KV head) instead of all;
* distance D (optional, beyond the reference): memory scores use the query rotated at D
  instead of its local position, so every memory key is seen D tokens back.

Stored keys and values are rounded to float16, as the spec stores them (`round_f16`), so the
comparison can be tight; everything else is float64.

    o = FotOracle(path, layers=[1], window=16, last_context_length=8)
    logits = o.eval(tokens)   # (n, n_vocab) float64, like Context.eval(tokens, logits_all=True)
"""
from __future__ import annotations

import numpy as np

from reference.forward import (apply_rope, feed_forward, linear, load_model, norm, rope_angles, _qkv)


def _f16(x: np.ndarray, on: bool) -> np.ndarray:
    return x.astype(np.float16).astype(np.float64) if on else x


class FotOracle:
    def __init__(self, path, layers, window: int, last_context_length: int, k: int | None = None,
                 round_f16: bool = True, distance: int | None = None):
        self.m = load_model(path)
        c = self.m.config
        if c.arch != "llama":
            raise ValueError("the oracle covers the llama architecture")
        self.layers, self.W, self.lcl, self.k, self.f16 = set(layers), window, last_context_length, k, round_f16
        self.distance = distance
        L, Hkv, D = c.n_layer, c.n_head_kv, c.head_dim
        self.local_k = [np.zeros((0, Hkv, D)) for _ in range(L)]  # unrotated keys of the window
        self.local_v = [np.zeros((0, Hkv, D)) for _ in range(L)]
        self.mem_k = [np.zeros((0, Hkv, D)) for _ in range(L)]    # unrotated keys in memory
        self.mem_v = [np.zeros((0, Hkv, D)) for _ in range(L)]

    @property
    def window_len(self) -> int:
        return len(self.local_k[0])

    @property
    def memory_len(self) -> int:
        return max(len(k) for k in self.mem_k)

    def flush(self) -> None:
        for i in range(self.m.config.n_layer):
            if i in self.layers:
                self.mem_k[i] = np.concatenate([self.mem_k[i], self.local_k[i]])
                self.mem_v[i] = np.concatenate([self.mem_v[i], self.local_v[i]])
            self.local_k[i] = self.local_k[i][:0]
            self.local_v[i] = self.local_v[i][:0]

    def _attend(self, i: int, q: np.ndarray, n_past: int) -> np.ndarray:
        """q (n, H, D) unrotated queries of the newest n window tokens -> (n, H * D)."""
        c = self.m.config
        n, H, D = q.shape
        group = H // c.n_head_kv
        pos_all = np.arange(len(self.local_k[i]))            # local positions 0..
        ang = lambda p: rope_angles(p, c.n_rot, c.rope_base, c.rope_freq_scale)  # noqa: E731
        qr = apply_rope(q, ang(pos_all[n_past:]), c.n_rot, c.rope_mode)
        qm = qr if self.distance is None else apply_rope(q, ang(np.full(n, self.distance)), c.n_rot, c.rope_mode)
        kr = apply_rope(self.local_k[i], ang(pos_all), c.n_rot, c.rope_mode)
        out = np.zeros((n, H, D))
        for h in range(H):
            g = h // group
            for t in range(n):
                local = kr[: n_past + t + 1, g] @ qr[t, h] / np.sqrt(D)   # causal
                vals = self.local_v[i][: n_past + t + 1, g]
                if i in self.layers and len(self.mem_k[i]):
                    mem = self.mem_k[i][:, g] @ qm[t, h] / np.sqrt(D)
                    mv = self.mem_v[i][:, g]
                    if self.k is not None and self.k < len(mem):
                        top = np.argsort(-mem, kind="stable")[: self.k]
                        mem, mv = mem[top], mv[top]
                    local, vals = np.concatenate([local, mem]), np.concatenate([vals, mv])
                p = np.exp(local - local.max())
                out[t, h] = p @ vals / p.sum()
        return out.reshape(n, H * D)

    def _forward(self, tokens) -> np.ndarray:
        """Append tokens to the window (no rule applied); (n, n_vocab) logits."""
        m, c = self.m, self.m.config
        n_past = self.window_len
        x = m.w("token_embd.weight")[np.asarray(tokens)]
        for i in range(c.n_layer):
            q, k, v = _qkv(m, i, norm(m, x, f"blk.{i}.attn_norm"))
            self.local_k[i] = np.concatenate([self.local_k[i], _f16(k, self.f16)])
            self.local_v[i] = np.concatenate([self.local_v[i], _f16(v, self.f16)])
            x = x + linear(self._attend(i, q, n_past), m.layer(i, "attn_output.weight"))
            x = x + feed_forward(m, i, norm(m, x, f"blk.{i}.ffn_norm"))
        return linear(norm(m, x, "output_norm"), m.output)

    def _windowed(self, tokens) -> np.ndarray:
        if self.window_len + len(tokens) > self.W:
            self.flush()
        return self._forward(tokens)

    def eval(self, tokens) -> np.ndarray:
        tokens = list(tokens)
        n_chunked = max(len(tokens) - self.lcl, 0)
        fresh = self.window_len == 0
        out = []
        for s in range(0, n_chunked, self.W):
            chunk = tokens[s: min(s + self.W, n_chunked)]
            if fresh:
                out.append(self._forward(chunk))
                self.flush()
            else:
                out.append(self._windowed(chunk))
        out.append(self._windowed(tokens[n_chunked:]))
        return np.concatenate(out)
