"""Random-weight GGUF models with the exact tensor names, shapes and metadata of real
architectures, for tests and benchmarks.

    from models.synthetic import build_model, build_preset, cached_preset
    path = build_model("/tmp/m.gguf", arch="llama", vocab="bpe", qtype="Q4_0")
    path = build_preset("tiny-phi3", "/tmp/phi3.gguf", qtype="Q8_0")
    path = cached_preset("tiny-llama-spm")          # built once per parameters, in a cache dir

Architectures (ggml order shapes, as llama.cpp's converters write them):

* ``llama``   LLaMA 1/2/3, TinyLlama, SmolLM2: RMSNorm, separate q/k/v, SwiGLU, optional
  `output.weight` (absent = tied to `token_embd.weight`).
* ``mistral`` arch `llama` plus `llama.attention.sliding_window`.
* ``phi2``    LayerNorm with bias, fused `attn_qkv` with bias, partial rotary
  (`phi2.rope.dimension_count` < head dim), GELU MLP with biases, parallel residual,
  `output.weight` + `output.bias`, epsilon in `phi2.attention.layer_norm_epsilon`.
* ``phi3``    RMSNorm, fused `attn_qkv`, fused gate/up (`ffn_up` has 2*n_ff rows).

Norm weights and biases are always F32; 2-D weights are written in `qtype` (token_embd /
output may use `embd_qtype` / `output_qtype`). F16/BF16/Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 are
quantized with `gguf.quants.quantize`; K-quants need a `quantize_fn(data, qtype)` hook.

For hardening tests, `build_model` takes `extra_metadata`, `drop_metadata`, `drop_tensors`,
`override_tensors`, `tensor_qtypes` and `mutate_tensors`, and `model_fields` + `write_gguf`
give the raw (metadata, tensors) to edit by hand. Everything is deterministic in `seed`; each
tensor draws from its own generator (seed, name), so editing one leaves the others unchanged.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import zlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterable, Mapping

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

from . import synthetic_vocab as sv

ARCHS = ("llama", "mistral", "phi2", "phi3")
GGUF_ARCH = {"llama": "llama", "mistral": "llama", "phi2": "phi2", "phi3": "phi3"}
QTYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")
GGUF_QUANTIZABLE = {QT.F32, QT.F16, QT.BF16, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1, QT.Q8_0}

FILE_TYPE = {
    QT.F32: gguf.LlamaFileType.ALL_F32, QT.F16: gguf.LlamaFileType.MOSTLY_F16,
    QT.BF16: gguf.LlamaFileType.MOSTLY_BF16, QT.Q4_0: gguf.LlamaFileType.MOSTLY_Q4_0,
    QT.Q4_1: gguf.LlamaFileType.MOSTLY_Q4_1, QT.Q5_0: gguf.LlamaFileType.MOSTLY_Q5_0,
    QT.Q5_1: gguf.LlamaFileType.MOSTLY_Q5_1, QT.Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0,
    QT.Q2_K: gguf.LlamaFileType.MOSTLY_Q2_K, QT.Q3_K: gguf.LlamaFileType.MOSTLY_Q3_K_M,
    QT.Q4_K: gguf.LlamaFileType.MOSTLY_Q4_K_M, QT.Q5_K: gguf.LlamaFileType.MOSTLY_Q5_K_M,
    QT.Q6_K: gguf.LlamaFileType.MOSTLY_Q6_K,
}

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = '' %}{% endif %}"
    "{% for message in loop_messages %}{% if loop.index0 == 0 %}{% set content = system_message + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content + ' ' + eos_token }}{% endif %}{% endfor %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content']"
    " + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
PHI3_ADDED_TOKENS = (
    ("<|endoftext|>", sv.CONTROL), ("<|assistant|>", sv.CONTROL), ("<|end|>", sv.CONTROL),
    ("<|system|>", sv.CONTROL), ("<|user|>", sv.CONTROL),
)
DEFAULT = object()  # "choose the architecture's default"


# ---------------------------------------------------------------------------------------------
# The description of a model

@dataclass(frozen=True)
class ModelSpec:
    """Everything that determines a synthetic model's bytes (except hardening edits)."""
    arch: str = "llama"               # llama | mistral | phi2 | phi3
    vocab: str = "bpe"                # bpe | spm
    qtype: str = "F32"                # type of the 2-D weights
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 128
    n_ctx_train: int = 256
    n_vocab: int = 512
    n_rot: int | None = None          # default: head_dim (phi2: head_dim // 2)
    head_dim: int | None = None       # written as attention.key_length/value_length when set
    seed: int = 0
    tied_embeddings: bool = False     # llama/phi3 only: no output.weight
    sliding_window: int | None = None
    rope_freq_base: float = 10000.0
    norm_eps: float | None = None     # default: 1e-5
    embd_qtype: str | None = None     # default: qtype
    output_qtype: str | None = None   # default: qtype
    pre_tokenizer: str | None = None  # BPE: default "smollm" (phi2: "phi-2")
    chat_template: str | None = None  # default per arch/vocab; "" = none
    name: str = "synthetic"

    def resolved(self) -> "ModelSpec":
        """Fill the architecture-dependent defaults; check the combination is buildable."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch {self.arch!r} is not one of {ARCHS}")
        if self.vocab not in ("bpe", "spm"):
            raise ValueError(f"vocab {self.vocab!r} is not 'bpe' or 'spm'")
        head_dim = self.head_dim or self.n_embd // self.n_head
        if self.head_dim is None and self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if self.n_head % self.n_head_kv:
            raise ValueError(f"n_head {self.n_head} is not a multiple of n_head_kv {self.n_head_kv}")
        n_rot = self.n_rot if self.n_rot is not None else (head_dim // 2 if self.arch == "phi2" else head_dim)
        if self.arch == "phi2" and self.tied_embeddings:
            raise ValueError("phi2 always has its own output.weight and output.bias")
        sliding_window = self.sliding_window
        if self.arch == "mistral" and sliding_window is None:
            sliding_window = min(4096, self.n_ctx_train // 2)
        if self.pre_tokenizer is not None:
            pre = self.pre_tokenizer
        else:
            pre = "phi-2" if self.arch == "phi2" else "smollm"
        if self.chat_template is not None:
            template = self.chat_template
        elif self.arch == "phi3":
            template = PHI3_TEMPLATE
        elif self.vocab == "bpe":
            template = CHATML_TEMPLATE if self.arch != "phi2" else ""
        else:
            template = LLAMA2_TEMPLATE
        return replace(self, n_rot=n_rot, head_dim=self.head_dim, sliding_window=sliding_window,
                       norm_eps=self.norm_eps if self.norm_eps is not None else 1e-5,
                       embd_qtype=self.embd_qtype or self.qtype, output_qtype=self.output_qtype or self.qtype,
                       pre_tokenizer=pre, chat_template=template)

    @property
    def gguf_arch(self) -> str:
        return GGUF_ARCH[self.arch]

    @property
    def n_embd_head(self) -> int:
        return self.head_dim or self.n_embd // self.n_head


PRESETS: dict[str, dict[str, Any]] = {
    # SmolLM2-like: BPE (gpt2, smollm pre-tokenizer), ChatML, GQA, tied embeddings.
    "tiny-llama-bpe": dict(arch="llama", vocab="bpe", tied_embeddings=True),
    # LLaMA-2 / TinyLlama-like: SentencePiece vocabulary with byte fallback, separate output.
    "tiny-llama-spm": dict(arch="llama", vocab="spm"),
    # Mistral-like: arch llama + sliding window small enough to matter in tests.
    "tiny-mistral": dict(arch="mistral", vocab="spm", sliding_window=16),
    # Phi-2-like: 4 heads of 16 dims, rotary over the first 8.
    "tiny-phi2": dict(arch="phi2", vocab="bpe", n_head=4, n_head_kv=4, n_rot=8),
    # Phi-3-mini-like: SPM + Phi-3 added tokens, MHA, fused qkv and gate/up.
    "tiny-phi3": dict(arch="phi3", vocab="spm", n_head=4, n_head_kv=4),
    # K-quant-compatible shape (rows are multiples of 256).
    "tiny-llama-k": dict(arch="llama", vocab="bpe", n_embd=256, n_head=4, n_head_kv=2, n_ff=512),
    # TinyLlama-1.1B shape, for benchmarks (vocab padded to 32000; slow to build: cache it).
    "llama-1b": dict(arch="llama", vocab="spm", qtype="Q4_0", n_layer=22, n_embd=2048, n_head=32, n_head_kv=4,
                     n_ff=5632, n_ctx_train=2048, n_vocab=32000, embd_qtype="Q8_0", output_qtype="Q8_0"),
    # LLaMA-2-7B shape (vocab padded to 32000): about 3.8 GB in Q4_0 and minutes to build.
    "llama-7b": dict(arch="llama", vocab="spm", qtype="Q4_0", n_layer=32, n_embd=4096, n_head=32, n_head_kv=32,
                     n_ff=11008, n_ctx_train=4096, n_vocab=32000, embd_qtype="Q8_0", output_qtype="Q8_0"),
}


# ---------------------------------------------------------------------------------------------
# Metadata

@dataclass
class Meta:
    """One metadata value with its GGUF type (sub_type: element type of an ARRAY)."""
    value: Any
    type: VT
    sub_type: VT | None = None


def meta(value: Any, vtype: VT | None = None, sub_type: VT | None = None) -> Meta:
    """A Meta with the type llama.cpp's converters would use for this Python value:
    non-negative int -> UINT32, negative int -> INT32, float -> FLOAT32, list -> ARRAY."""
    if isinstance(value, Meta):
        return value
    if vtype is not None:
        return Meta(value, vtype, sub_type)
    if isinstance(value, bool):
        return Meta(value, VT.BOOL)
    if isinstance(value, int):
        if value < 0:
            return Meta(value, VT.INT32 if value >= -2**31 else VT.INT64)
        return Meta(value, VT.UINT32 if value < 2**32 else VT.UINT64)
    if isinstance(value, float):
        return Meta(value, VT.FLOAT32)
    if isinstance(value, (str, bytes)):
        return Meta(value, VT.STRING)
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("an empty metadata array needs an explicit sub_type: meta([], VT.ARRAY, VT.INT32)")
        return Meta(list(value), VT.ARRAY, VT.get_type(value[0]))
    raise TypeError(f"cannot infer a GGUF type for {value!r}")


def _metadata(spec: ModelSpec, vocab: sv.Vocab) -> dict[str, Meta]:
    a = spec.gguf_arch
    m: dict[str, Meta] = {
        "general.architecture": meta(a),
        "general.type": meta("model"),
        "general.name": meta(spec.name),
        f"{a}.context_length": meta(spec.n_ctx_train),
        f"{a}.embedding_length": meta(spec.n_embd),
        f"{a}.feed_forward_length": meta(spec.n_ff),
        f"{a}.block_count": meta(spec.n_layer),
        f"{a}.attention.head_count": meta(spec.n_head),
        f"{a}.attention.head_count_kv": meta(spec.n_head_kv),
        f"{a}.rope.dimension_count": meta(spec.n_rot),
        f"{a}.rope.freq_base": meta(float(spec.rope_freq_base)),
    }
    if spec.head_dim is not None:
        m[f"{a}.attention.key_length"] = meta(spec.head_dim)
        m[f"{a}.attention.value_length"] = meta(spec.head_dim)
    eps_key = "attention.layer_norm_epsilon" if spec.arch == "phi2" else "attention.layer_norm_rms_epsilon"
    m[f"{a}.{eps_key}"] = meta(float(spec.norm_eps))
    if spec.sliding_window:
        m[f"{a}.attention.sliding_window"] = meta(spec.sliding_window)
    m[f"{a}.vocab_size"] = meta(len(vocab))
    m["general.file_type"] = meta(int(FILE_TYPE[qtype_of(spec.qtype)]))
    m["general.quantization_version"] = meta(2)
    m.update(_tokenizer_metadata(spec, vocab))
    return m


def _tokenizer_metadata(spec: ModelSpec, vocab: sv.Vocab) -> dict[str, Meta]:
    m = {"tokenizer.ggml.model": meta(vocab.model)}
    m["tokenizer.ggml.pre"] = meta(spec.pre_tokenizer if vocab.model == "gpt2" else "default")
    m["tokenizer.ggml.tokens"] = meta(vocab.tokens, VT.ARRAY, VT.STRING)
    if vocab.scores is not None:
        m["tokenizer.ggml.scores"] = meta(vocab.scores, VT.ARRAY, VT.FLOAT32)
    m["tokenizer.ggml.token_type"] = meta(vocab.types, VT.ARRAY, VT.INT32)
    if vocab.merges is not None:
        m["tokenizer.ggml.merges"] = meta(vocab.merges, VT.ARRAY, VT.STRING)
    key_of = {"bos": "bos_token_id", "eos": "eos_token_id", "unk": "unknown_token_id",
              "pad": "padding_token_id", "eot": "eot_token_id"}
    for what, token_id in vocab.special_ids.items():
        m[f"tokenizer.ggml.{key_of[what]}"] = meta(token_id)
    m["tokenizer.ggml.add_bos_token"] = meta(vocab.model == "llama")
    m["tokenizer.ggml.add_eos_token"] = meta(False)
    if vocab.model == "gpt2":
        m["tokenizer.ggml.add_space_prefix"] = meta(False)
    if spec.chat_template:
        m["tokenizer.chat_template"] = meta(spec.chat_template)
    return m


def make_vocab(spec: ModelSpec) -> sv.Vocab:
    """The vocabulary a (resolved) spec asks for."""
    if spec.vocab == "bpe":
        return sv.bpe_vocab(spec.n_vocab)
    if spec.arch == "phi3":
        v = sv.spm_vocab(spec.n_vocab, PHI3_ADDED_TOKENS)
        v.special_ids.update(eos=v.token_id("<|endoftext|>"), eot=v.token_id("<|end|>"))
        return v
    return sv.spm_vocab(spec.n_vocab)


# ---------------------------------------------------------------------------------------------
# Tensors

@dataclass
class TensorSpec:
    """A tensor to generate: name, ggml-order shape (ne0 = row length first), kind of values."""
    name: str
    shape: tuple[int, ...]            # ggml order
    kind: str                         # "weight" | "embedding" | "norm" | "bias" | "norm_bias"
    qtype: str                        # storage type name

    @property
    def numpy_shape(self) -> tuple[int, ...]:
        return tuple(reversed(self.shape))


@dataclass
class Tensor:
    """A tensor ready to write: `data` is float32/float16 (numpy order) or the uint8 bytes of
    `qtype` with shape (..., bytes per row)."""
    data: np.ndarray
    qtype: QT


def tensor_specs(spec: ModelSpec) -> list[TensorSpec]:
    """Names, ggml-order shapes and types of every tensor, in llama.cpp's usual order."""
    s = spec
    hd = s.n_embd_head
    q_dim, kv_dim = s.n_head * hd, s.n_head_kv * hd
    E, V, F = s.n_embd, s.n_vocab, s.n_ff

    def w(name, ne0, ne1, qtype=s.qtype):
        return TensorSpec(name, (ne0, ne1), "weight", qtype)

    def norm(name, n):
        return TensorSpec(name, (n,), "norm", "F32")

    def bias(name, n, kind="bias"):
        return TensorSpec(name, (n,), kind, "F32")

    out = [TensorSpec("token_embd.weight", (E, V), "embedding", s.embd_qtype)]
    for i in range(s.n_layer):
        p = f"blk.{i}."
        if s.arch in ("llama", "mistral"):
            out += [norm(p + "attn_norm.weight", E),
                    w(p + "attn_q.weight", E, q_dim), w(p + "attn_k.weight", E, kv_dim),
                    w(p + "attn_v.weight", E, kv_dim), w(p + "attn_output.weight", q_dim, E),
                    norm(p + "ffn_norm.weight", E),
                    w(p + "ffn_gate.weight", E, F), w(p + "ffn_up.weight", E, F), w(p + "ffn_down.weight", F, E)]
        elif s.arch == "phi2":
            qkv = q_dim + 2 * kv_dim
            out += [norm(p + "attn_norm.weight", E), bias(p + "attn_norm.bias", E, "norm_bias"),
                    w(p + "attn_qkv.weight", E, qkv), bias(p + "attn_qkv.bias", qkv),
                    w(p + "attn_output.weight", q_dim, E), bias(p + "attn_output.bias", E),
                    w(p + "ffn_up.weight", E, F), bias(p + "ffn_up.bias", F),
                    w(p + "ffn_down.weight", F, E), bias(p + "ffn_down.bias", E)]
        elif s.arch == "phi3":
            out += [norm(p + "attn_norm.weight", E),
                    w(p + "attn_qkv.weight", E, q_dim + 2 * kv_dim), w(p + "attn_output.weight", q_dim, E),
                    norm(p + "ffn_norm.weight", E),
                    w(p + "ffn_up.weight", E, 2 * F), w(p + "ffn_down.weight", F, E)]
    out.append(norm("output_norm.weight", E))
    if s.arch == "phi2":
        out.append(bias("output_norm.bias", E, "norm_bias"))
    if not s.tied_embeddings:
        out.append(w("output.weight", E, V, s.output_qtype))
    if s.arch == "phi2":
        out.append(bias("output.bias", V))
    return out


def tensor_rng(seed: int, name: str) -> np.random.Generator:
    """An independent generator per (seed, tensor name)."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def random_values(t: TensorSpec, seed: int) -> np.ndarray:
    """float32 values in numpy order. Scales keep activations and logits O(1):
    weights and embeddings ~ N(0, 1/n_in) (n_in = ne0, the row length), norm weights
    ~ 1 + N(0, 0.1^2), biases ~ N(0, 0.1^2)."""
    rng = tensor_rng(seed, t.name)
    x = rng.standard_normal(t.numpy_shape, dtype=np.float32)
    if t.kind in ("weight", "embedding"):
        return x * np.float32(1.0 / np.sqrt(t.shape[0]))
    if t.kind == "norm":
        return np.float32(1.0) + np.float32(0.1) * x
    return np.float32(0.1) * x  # bias, norm_bias


def qtype_of(name: str | QT) -> QT:
    if isinstance(name, QT):
        return name
    try:
        return QT[name.upper()]
    except KeyError:
        raise ValueError(f"unknown quant type {name!r} (known: {', '.join(QTYPES)})") from None


QuantizeFn = Callable[[np.ndarray, QT], np.ndarray]


def encode(values: np.ndarray, qtype: str | QT, quantize_fn: QuantizeFn | None = None,
           name: str = "tensor") -> Tensor:
    """float32 values (numpy order) -> a Tensor stored as `qtype`."""
    qt = qtype_of(qtype)
    block_size, _ = gguf.GGML_QUANT_SIZES[qt]
    if values.shape[-1] % block_size:
        raise ValueError(f"{name}: row length {values.shape[-1]} is not a multiple of the {qt.name} "
                         f"block size {block_size}; choose dimensions that are")
    if qt == QT.F32:
        return Tensor(np.ascontiguousarray(values, dtype=np.float32), qt)
    if qt == QT.F16:
        return Tensor(values.astype(np.float16), qt)
    if quantize_fn is not None and qt not in GGUF_QUANTIZABLE:
        return Tensor(np.asarray(quantize_fn(values, qt), dtype=np.uint8), qt)
    if qt not in GGUF_QUANTIZABLE:
        raise NotImplementedError(
            f"{name}: gguf.quants cannot quantize to {qt.name}; pass quantize_fn=(values, qtype) -> uint8 "
            f"array of shape (rows, bytes per row) (e.g. pyllong's own quantizer)")
    return Tensor(gguf.quants.quantize(values, qt), qt)


def _make_tensors(spec: ModelSpec, quantize_fn: QuantizeFn | None,
                  tensor_qtypes: Mapping[str, str | QT]) -> dict[str, Tensor]:
    tensors = {}
    for t in tensor_specs(spec):
        qtype = tensor_qtypes.get(t.name, t.qtype)
        tensors[t.name] = encode(random_values(t, spec.seed), qtype, quantize_fn, t.name)
    return tensors


# Byte offsets of the fp16 scale fields inside one block, for random_raw_tensor.
_SCALE_FIELDS = {QT.Q4_0: (0,), QT.Q4_1: (0, 2), QT.Q5_0: (0,), QT.Q5_1: (0, 2), QT.Q8_0: (0,),
                 QT.Q2_K: (80, 82), QT.Q3_K: (108,), QT.Q4_K: (0, 2), QT.Q5_K: (0, 2), QT.Q6_K: (208,)}


def random_raw_tensor(t: TensorSpec, qtype: str | QT, seed: int) -> Tensor:
    """Random blocks straight from a byte generator, with every fp16 scale set so values stay
    O(1/sqrt(n_in)): for speed benchmarks of large shapes, where generating and quantizing
    float weights would take minutes. Not a model anyone could train; 1-D tensors are exact."""
    qt = qtype_of(qtype)
    if qt in (QT.F32, QT.F16) or len(t.shape) == 1:
        return encode(random_values(t, seed), qt if len(t.shape) > 1 else t.qtype)
    block, nbytes = gguf.GGML_QUANT_SIZES[qt]
    rows, n_in = int(np.prod(t.shape[1:])), t.shape[0]
    raw = tensor_rng(seed, t.name).integers(0, 256, size=(rows, n_in // block * nbytes), dtype=np.uint8)
    blocks = raw.reshape(rows, -1, nbytes)
    scale = np.array([1.0 / (8.0 * np.sqrt(n_in))], dtype=np.float16).view(np.uint8)
    for off in _SCALE_FIELDS[qt]:
        blocks[:, :, off:off + 2] = scale
    return Tensor(raw, qt)


def build_raw_random(path: str | os.PathLike, **params) -> str:
    """build_model's file, with random_raw_tensor weights: seconds for a 7B shape, not minutes."""
    spec = ModelSpec(**params).resolved()
    tensors = {t.name: random_raw_tensor(t, t.qtype, spec.seed) for t in tensor_specs(spec)}
    return write_gguf(path, _metadata(spec, make_vocab(spec)), tensors)


# ---------------------------------------------------------------------------------------------
# Building and writing

def model_fields(spec: ModelSpec | None = None, *, quantize_fn: QuantizeFn | None = None,
                 tensor_qtypes: Mapping[str, str | QT] | None = None,
                 **kwargs) -> tuple[dict[str, Meta], dict[str, Tensor]]:
    """(metadata, tensors) of a model, to edit before `write_gguf`. Both dicts keep file order."""
    spec = (spec or ModelSpec(**kwargs)).resolved()
    vocab = make_vocab(spec)
    if len(vocab) != spec.n_vocab:
        raise AssertionError(f"vocabulary has {len(vocab)} tokens, expected {spec.n_vocab}")
    return _metadata(spec, vocab), _make_tensors(spec, quantize_fn, tensor_qtypes or {})


def write_gguf(path: str | os.PathLike, metadata: Mapping[str, Meta | Any], tensors: Mapping[str, Tensor | np.ndarray],
               alignment: int | None = None) -> str:
    """Write exactly these metadata keys (in order; values may be plain Python values or Meta)
    and tensors (Tensor, or a float32/float16 array in numpy order) to a GGUF v3 file."""
    path = os.fspath(path)
    arch = metadata.get("general.architecture")
    arch_name = arch.value if isinstance(arch, Meta) else (arch or "unknown")
    writer = gguf.GGUFWriter(path, arch_name)
    writer.kv_data[0].clear()  # the writer adds general.architecture itself; we control all keys
    if alignment is not None:
        writer.data_alignment = alignment
    for key, value in metadata.items():
        m = meta(value)
        writer.add_key_value(key, m.value, m.type, m.sub_type)
    for name, t in tensors.items():
        if isinstance(t, np.ndarray):
            writer.add_tensor(name, t)
        elif t.data.dtype == np.uint8:
            writer.add_tensor(name, t.data, raw_dtype=t.qtype)
        else:
            writer.add_tensor(name, t.data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_model(path: str | os.PathLike, arch: str = "llama", vocab: str = "bpe", qtype: str = "F32",
                n_layer: int = 2, n_embd: int = 64, n_head: int = 4, n_head_kv: int = 2, n_ff: int = 128,
                n_ctx_train: int = 256, seed: int = 0, tied_embeddings: bool = False,
                sliding_window: int | None = None, extra_metadata: Mapping[str, Any] | None = None, *,
                n_vocab: int = 512, n_rot: int | None = None, head_dim: int | None = None,
                rope_freq_base: float = 10000.0, norm_eps: float | None = None,
                embd_qtype: str | None = None, output_qtype: str | None = None,
                pre_tokenizer: str | None = None, chat_template: str | None = None, name: str = "synthetic",
                quantize_fn: QuantizeFn | None = None,
                tensor_qtypes: Mapping[str, str | QT] | None = None,
                drop_metadata: Iterable[str] = (), drop_tensors: Iterable[str] = (),
                override_tensors: Mapping[str, Tensor | np.ndarray] | None = None,
                mutate_tensors: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None) -> str:
    """Write a random-weight GGUF model to `path` and return the path.

    Hardening edits, applied in this order:
      tensor_qtypes     {name: qtype} store a generated tensor in another type (e.g. F16 norm)
      drop_tensors      names to leave out (e.g. "blk.0.attn_k.weight")
      override_tensors  {name: Tensor | float array (numpy order)} replace or add tensors
      mutate_tensors    {name: fn(stored array) -> stored array} edit stored data, e.g. set a
                        block's f16 scale to NaN: see `nan_first_scale`
      drop_metadata     keys to leave out
      extra_metadata    {key: value | Meta} set or add keys; plain values get the converters'
                        types (see `meta`), Meta(value, VT.X, VT.Y) forces them
    """
    spec = ModelSpec(arch=arch, vocab=vocab, qtype=qtype, n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                     n_head_kv=n_head_kv, n_ff=n_ff, n_ctx_train=n_ctx_train, n_vocab=n_vocab, n_rot=n_rot,
                     head_dim=head_dim, seed=seed, tied_embeddings=tied_embeddings,
                     sliding_window=sliding_window, rope_freq_base=rope_freq_base, norm_eps=norm_eps,
                     embd_qtype=embd_qtype, output_qtype=output_qtype, pre_tokenizer=pre_tokenizer,
                     chat_template=chat_template, name=name)
    metadata, tensors = model_fields(spec, quantize_fn=quantize_fn, tensor_qtypes=tensor_qtypes)
    for tname in drop_tensors:
        if tname not in tensors:
            raise KeyError(f"drop_tensors: no tensor {tname!r} in this model")
        del tensors[tname]
    for tname, t in (override_tensors or {}).items():
        tensors[tname] = t
    for tname, fn in (mutate_tensors or {}).items():
        t = tensors[tname]
        tensors[tname] = Tensor(fn(t.data.copy()), t.qtype)
    for key in drop_metadata:
        if key not in metadata:
            raise KeyError(f"drop_metadata: no key {key!r} in this model")
        del metadata[key]
    for key, value in (extra_metadata or {}).items():
        metadata[key] = meta(value)
    return write_gguf(path, metadata, tensors)


def preset_params(preset: str, **overrides) -> dict[str, Any]:
    """The build_model keyword arguments of a preset, with overrides applied."""
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    params = dict(PRESETS[preset], name=preset)
    params.update(overrides)
    return params


def build_preset(preset: str, path: str | os.PathLike, **overrides) -> str:
    """build_model with a preset's parameters (overrides win)."""
    return build_model(path, **preset_params(preset, **overrides))


# ---------------------------------------------------------------------------------------------
# Cache

def cache_dir() -> str:
    """Where cached builds live: $PYLLONG_SYNTH_CACHE, else <tmp>/pyllong-synthetic-<uid>."""
    d = os.environ.get("PYLLONG_SYNTH_CACHE") or os.path.join(
        tempfile.gettempdir(), f"pyllong-synthetic-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.makedirs(d, exist_ok=True)
    return d


@functools.lru_cache(maxsize=None)
def _builder_fingerprint() -> str:
    """Changes whenever the builder's code or corpus does, so stale cached files are not reused."""
    h = hashlib.sha256()
    for module in (__file__, sv.__file__, os.path.join(os.path.dirname(__file__), "_corpus.py")):
        with open(module, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def _cache_key(params: Mapping[str, Any]) -> str:
    desc = json.dumps({k: repr(v) for k, v in sorted(params.items())}, sort_keys=True)
    desc += f"|gguf={getattr(gguf, '__version__', '?')}|spm={sv.have_sentencepiece()}|{_builder_fingerprint()}"
    return hashlib.sha256(desc.encode()).hexdigest()[:16]


def cached_model(**params) -> str:
    """build_model(params) into the cache dir, once per distinct parameters; returns the path.
    Callable hooks (quantize_fn, mutate_tensors) are keyed by repr: give them stable names."""
    key = _cache_key(params)
    label = params.get("name", "model")
    path = os.path.join(cache_dir(), f"{label}-{key}.gguf")
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.tmp"
        build_model(tmp, **params)
        os.replace(tmp, path)  # atomic: concurrent builders write the same bytes
    return path


def cached_preset(preset: str, **overrides) -> str:
    return cached_model(**preset_params(preset, **overrides))


# ---------------------------------------------------------------------------------------------
# Helpers for hardening tests

def nan_first_scale(raw: np.ndarray) -> np.ndarray:
    """mutate_tensors helper for block formats whose block starts with an f16 scale
    (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0): make block 0's scale NaN."""
    flat = raw.reshape(-1)
    flat[0:2] = np.array([np.nan], dtype=np.float16).view(np.uint8)
    return raw


def spec_of(preset: str, **overrides) -> ModelSpec:
    """The resolved ModelSpec of a preset (for tests that need the expected hparams)."""
    params = preset_params(preset, **overrides)
    fields = {k: v for k, v in params.items() if k in ModelSpec.__dataclass_fields__}
    return ModelSpec(**fields).resolved()


def sentencepiece_processor_for(preset_or_spec: str | ModelSpec, **overrides):
    """The `sentencepiece.SentencePieceProcessor` that an SPM model's vocabulary was trained as:
    the exact reference tokenizer for its trained pieces (added tokens such as Phi-3's
    `<|user|>` and padding are unknown to it). Needs `sentencepiece`."""
    spec = spec_of(preset_or_spec, **overrides) if isinstance(preset_or_spec, str) else preset_or_spec.resolved()
    if spec.vocab != "spm":
        raise ValueError("only SPM vocabularies come from sentencepiece")
    n_added = len(PHI3_ADDED_TOKENS) if spec.arch == "phi3" else 0
    return sv.sentencepiece_processor(spec.n_vocab - n_added)


__all__ = [
    "ARCHS", "QTYPES", "PRESETS", "ModelSpec", "Meta", "Tensor", "TensorSpec", "meta", "encode",
    "tensor_specs", "model_fields", "write_gguf", "build_model", "build_raw_random", "random_raw_tensor", "build_preset", "preset_params",
    "cached_model", "cached_preset", "cache_dir", "nan_first_scale", "spec_of", "make_vocab",
    "sentencepiece_processor_for",
]
