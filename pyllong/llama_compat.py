"""`pyllong.Llama`: llama-cpp-python's common surface over pyllong.Model, so code ports by
changing the import. n_gpu_layers runs layers on the GPU (CUDA builds; llama-cpp-python's
default 0 keeps the CPU); constructor arguments pyllong has no use for (use_mmap, ...) are
accepted and ignored; the byte-level methods keep llama-cpp-python's types."""
from __future__ import annotations

import warnings
from typing import Optional, Sequence

from . import _core
from .model import Model

_IGNORED = ("main_gpu", "tensor_split", "vocab_only", "use_mmap", "use_mlock", "logits_all",
            "embedding", "offload_kqv", "flash_attn", "n_ubatch", "n_threads_batch", "rope_freq_base",
            "rope_freq_scale", "chat_format", "last_n_tokens_size", "numa", "type_k", "type_v", "split_mode")


class LlamaState:
    """What llama-cpp-python's Llama.save_state() returns; here it holds Model.state_bytes()
    (a checksummed pyllong state, see pyllong/state.py)."""

    def __init__(self, data: bytes):
        self.llama_state = data
        self.llama_state_size = len(data)


class Llama:
    """Holds a pyllong.Model (`.model`); everything not defined here is the Model's."""

    def __init__(self, model_path: Optional[str] = None, *, n_ctx: int = 512, n_threads: Optional[int] = None,
                 n_batch: int = 512, seed: Optional[int] = None, verbose: bool = True, n_gpu_layers: int = 0,
                 **kwargs):
        factory = kwargs.pop("_context_factory", None)
        unknown = set(kwargs) - set(_IGNORED)
        if unknown:
            raise TypeError(f"Llama() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        if seed is not None and seed < 0:  # llama-cpp-python's LLAMA_DEFAULT_SEED (-1 / 0xFFFFFFFF) = random
            seed = None
        if n_gpu_layers and not (_core.cuda_built() and _core.cuda_device_count() > 0):
            # As llama.cpp without GPU offload: warn and run on the CPU, so ported code still runs.
            warnings.warn(f"n_gpu_layers={n_gpu_layers} ignored: this pyllong has no usable GPU "
                          f"(CUDA build: {_core.cuda_built()}, devices: {_core.cuda_device_count()})", stacklevel=2)
            n_gpu_layers = 0
        # llama-cpp-python: n_ctx=0 means the model's training context
        self.model = Model(model_path, n_ctx=n_ctx or None, n_threads=n_threads, n_batch=n_batch, seed=seed,
                           verbose=False, n_gpu_layers=n_gpu_layers, _context_factory=factory)
        self.model_path = self.model.path

    def __getattr__(self, name):
        return getattr(self.__dict__["model"], name)

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return self.model.tokenize(text, add_special=add_bos, parse_special=special)

    def detokenize(self, tokens: Sequence[int], prev_tokens=None, special: bool = False) -> bytes:
        return self.model.tokenizer.decode_bytes([int(t) for t in tokens], special)

    def n_vocab(self) -> int:
        return self.model.n_vocab

    def n_ctx(self) -> int:
        return self.model.n_ctx

    def token_bos(self) -> int:
        return self.model.bos

    def token_eos(self) -> int:
        return self.model.eos

    def create_completion(self, prompt, max_tokens: Optional[int] = 16, **kwargs):
        return self.model.create_completion(prompt, max_tokens=max_tokens, **kwargs)

    def __call__(self, prompt, **kwargs):
        return self.create_completion(prompt, **kwargs)

    def create_chat_completion(self, messages, **kwargs):
        return self.model.create_chat_completion(messages, **kwargs)

    def save_state(self) -> LlamaState:
        return LlamaState(self.model.state_bytes())

    def load_state(self, state: LlamaState) -> None:
        self.model.load_state_bytes(state.llama_state if isinstance(state, LlamaState) else state)

    def close(self) -> None:
        self.model.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
