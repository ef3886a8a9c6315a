"""A byte-level GGUF writer for hostile-input tests, independent of pyllong and of gguf-py.

Every field can be overridden, so a test builds a valid file and breaks exactly one thing.
`tiny_llama()` returns the parts of a minimal valid `llama` model (BPE vocabulary) that
tests mutate before calling `build()`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
        U64: "<Q", I64: "<q", F64: "<d"}
# ggml tensor types
T_F32, T_F16, T_Q4_0, T_Q8_0, T_Q4_K = 0, 1, 2, 8, 12


def gguf_string(s: bytes | str, length: Optional[int] = None) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def scalar(vtype: int, value) -> bytes:
    if vtype == STRING:
        return gguf_string(value)
    return struct.pack(_FMT[vtype], value)


@dataclass
class KV:
    key: bytes | str
    vtype: int
    payload: bytes  # the encoded value (after the type id)

    def encode(self) -> bytes:
        return gguf_string(self.key) + struct.pack("<I", self.vtype & 0xFFFFFFFF) + self.payload


def kv(key: str, vtype: int, value) -> KV:
    return KV(key, vtype, scalar(vtype, value))


def kv_array(key: str, elem: int, values, count: Optional[int] = None) -> KV:
    body = b"".join(scalar(elem, v) for v in values)
    n = len(values) if count is None else count
    return KV(key, ARRAY, struct.pack("<IQ", elem, n) + body)


@dataclass
class Tensor:
    name: bytes | str
    ne: list[int]
    ttype: int
    data: bytes
    offset: Optional[int] = None  # None: packed in order
    n_dims: Optional[int] = None

    def info(self, offset: int) -> bytes:
        nd = len(self.ne) if self.n_dims is None else self.n_dims
        out = gguf_string(self.name) + struct.pack("<I", nd)
        out += b"".join(struct.pack("<q", d) for d in self.ne)
        return out + struct.pack("<IQ", self.ttype, offset & 0xFFFFFFFFFFFFFFFF)


@dataclass
class GGUF:
    kvs: list[KV] = field(default_factory=list)
    tensors: list[Tensor] = field(default_factory=list)
    version: int = 3
    magic: bytes = b"GGUF"
    n_tensors: Optional[int] = None  # override the header counts
    n_kv: Optional[int] = None
    alignment: int = 32

    def find_kv(self, key: str) -> KV:
        return next(k for k in self.kvs if k.key == key)

    def set_kv(self, key: str, vtype: int, value) -> None:
        self.kvs = [k for k in self.kvs if k.key != key] + [kv(key, vtype, value)]

    def drop_kv(self, key: str) -> None:
        self.kvs = [k for k in self.kvs if k.key != key]

    def tensor(self, name: str) -> Tensor:
        return next(t for t in self.tensors if t.name == name)

    def build(self) -> bytes:
        n_t = len(self.tensors) if self.n_tensors is None else self.n_tensors
        n_k = len(self.kvs) if self.n_kv is None else self.n_kv
        out = bytearray(self.magic + struct.pack("<IQQ", self.version & 0xFFFFFFFF,
                                                 n_t & 0xFFFFFFFFFFFFFFFF, n_k & 0xFFFFFFFFFFFFFFFF))
        for k in self.kvs:
            out += k.encode()
        running = 0
        for t in self.tensors:
            off = running if t.offset is None else t.offset
            out += t.info(off)
            running += -(-len(t.data) // self.alignment) * self.alignment
        out += b"\0" * (-len(out) % self.alignment)
        for t in self.tensors:
            out += t.data + b"\0" * (-len(t.data) % self.alignment)
        return bytes(out)


def byte_level_chars() -> list[str]:
    """GPT-2's byte-to-unicode table (the 256 base tokens of a byte-level BPE vocabulary)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def f32_bytes(shape_ne: list[int], rng: np.random.Generator, scale: float = 0.1) -> bytes:
    n = int(np.prod(shape_ne))
    return (rng.standard_normal(n) * scale).astype("<f4").tobytes()


def q8_0_bytes(n_elements: int, rng: np.random.Generator) -> bytes:
    blocks = []
    for _ in range(n_elements // 32):
        blocks.append(np.float16(0.01).tobytes() + rng.integers(-127, 128, 32, dtype=np.int8).tobytes())
    return b"".join(blocks)


def tiny_llama(n_layer: int = 1, n_embd: int = 32, n_head: int = 4, n_head_kv: int = 2, n_ff: int = 32,
               seed: int = 0) -> GGUF:
    """A minimal valid `llama` model: BPE vocabulary of 259 tokens, F32 weights, one Q8_0 matrix."""
    rng = np.random.default_rng(seed)
    tokens = byte_level_chars() + ["Ġt", "he", "<|endoftext|>"]
    n_vocab = len(tokens)
    types = [1] * (n_vocab - 1) + [3]
    head_dim = n_embd // n_head
    g = GGUF()
    g.kvs = [
        kv("general.architecture", STRING, "llama"),
        kv("general.name", STRING, "tiny"),
        kv("llama.block_count", U32, n_layer),
        kv("llama.context_length", U32, 128),
        kv("llama.embedding_length", U32, n_embd),
        kv("llama.feed_forward_length", U32, n_ff),
        kv("llama.attention.head_count", U32, n_head),
        kv("llama.attention.head_count_kv", U32, n_head_kv),
        kv("llama.rope.dimension_count", U32, head_dim),
        kv("llama.rope.freq_base", F32, 10000.0),
        kv("llama.attention.layer_norm_rms_epsilon", F32, 1e-5),
        kv("tokenizer.ggml.model", STRING, "gpt2"),
        kv("tokenizer.ggml.pre", STRING, "smollm"),
        kv_array("tokenizer.ggml.tokens", STRING, tokens),
        kv_array("tokenizer.ggml.token_type", I32, types),
        kv_array("tokenizer.ggml.merges", STRING, ["Ġ t", "h e"]),
        kv("tokenizer.ggml.bos_token_id", U32, n_vocab - 1),
        kv("tokenizer.ggml.eos_token_id", U32, n_vocab - 1),
        kv("tokenizer.chat_template", STRING, "{% for m in messages %}{{ m['content'] }}{% endfor %}"),
    ]
    ts = [Tensor("token_embd.weight", [n_embd, n_vocab], T_F32, f32_bytes([n_embd, n_vocab], rng)),
          Tensor("output_norm.weight", [n_embd], T_F32, np.ones(n_embd, "<f4").tobytes())]
    for i in range(n_layer):
        p = f"blk.{i}."
        ts += [
            Tensor(p + "attn_norm.weight", [n_embd], T_F32, np.ones(n_embd, "<f4").tobytes()),
            Tensor(p + "attn_q.weight", [n_embd, n_embd], T_Q8_0, q8_0_bytes(n_embd * n_embd, rng)),
            Tensor(p + "attn_k.weight", [n_embd, n_head_kv * head_dim], T_F32,
                   f32_bytes([n_embd, n_head_kv * head_dim], rng)),
            Tensor(p + "attn_v.weight", [n_embd, n_head_kv * head_dim], T_F32,
                   f32_bytes([n_embd, n_head_kv * head_dim], rng)),
            Tensor(p + "attn_output.weight", [n_embd, n_embd], T_F32, f32_bytes([n_embd, n_embd], rng)),
            Tensor(p + "ffn_norm.weight", [n_embd], T_F32, np.ones(n_embd, "<f4").tobytes()),
            Tensor(p + "ffn_gate.weight", [n_embd, n_ff], T_F32, f32_bytes([n_embd, n_ff], rng)),
            Tensor(p + "ffn_up.weight", [n_embd, n_ff], T_F32, f32_bytes([n_embd, n_ff], rng)),
            Tensor(p + "ffn_down.weight", [n_ff, n_embd], T_F32, f32_bytes([n_ff, n_embd], rng)),
        ]
    g.tensors = ts
    return g
