"""Quantized tensor formats from Python: dequantize, quantize and matmul over raw GGML
blocks, backed by the native kernels (pyllong._core).

    raw = quant.quantize(w, "Q4_K")                   # w: (n_out, n_in) float32 -> uint8 bytes
    w2 = quant.dequantize(raw, "Q4_K", w.shape)        # float32, shape (n_out, n_in)
    y = quant.matmul(raw, "Q4_K", w.shape, x)          # x: (n_tok, n_in) or (n_in,)

Types: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K. The SIMD path is
chosen from the CPU (override with PYLLONG_SIMD=scalar|avx2|avx512|avx512vnni|neon|neondot, or per
call with simd=...)."""
from __future__ import annotations

import os
import threading
from typing import Sequence

import numpy as np

from . import _core

TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
         "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K")

_pools: dict[int, "_core.ThreadPool"] = {}
_pools_lock = threading.Lock()


def _pool(n_threads: int):
    """One persistent native thread pool per thread count, created on first use."""
    with _pools_lock:
        if n_threads not in _pools:
            _pools[n_threads] = _core.ThreadPool(n_threads)
        return _pools[n_threads]


def _raw_bytes(raw) -> np.ndarray:
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return np.frombuffer(raw, dtype=np.uint8)
    return np.ascontiguousarray(raw).view(np.uint8).reshape(-1)


def row_bytes(type: str, n: int) -> int:
    """Bytes of one row of n elements."""
    return _core.row_bytes(type, n)


def dequantize(raw, type: str, shape: Sequence[int]) -> np.ndarray:
    """Raw blocks -> float32 array of the given shape (last axis = contiguous rows)."""
    shape = tuple(int(s) for s in shape)
    n = int(np.prod(shape)) if shape else 1
    return _core.dequantize(type, _raw_bytes(raw), n).reshape(shape)


def quantize(x, type: str) -> np.ndarray:
    """float array (rows along the last axis) -> raw blocks as a flat uint8 array."""
    return _core.quantize(type, np.ascontiguousarray(x, dtype=np.float32))


def matmul(raw, type: str, shape: Sequence[int], x, n_threads: int | None = None,
           simd: str | None = None) -> np.ndarray:
    """y = x @ W.T for W of shape (n_out, n_in) stored as raw blocks (ggml layout);
    x: (n_tok, n_in) or (n_in,) -> y: (n_tok, n_out) or (n_out,)."""
    n_out, n_in = (int(s) for s in shape)
    n_threads = n_threads or min(os.cpu_count() or 1, 8)
    x = np.ascontiguousarray(x, dtype=np.float32)
    return _core.matmul(type, _raw_bytes(raw), n_out, n_in, x, n_threads, simd, _pool(n_threads))


def simd_paths() -> list[str]:
    """SIMD paths this CPU and build support, slowest first."""
    return _core.simd_paths()


def simd_path() -> str:
    """The SIMD path used when none is given."""
    return _core.simd_path()
