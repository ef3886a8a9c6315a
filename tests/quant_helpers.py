"""Shared helpers of the quant tests: format lists, random raw blocks with sane scales."""
import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

ALL_TYPES = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
# Byte offsets of the fp16 scale fields inside one block (ggml's block structs).
SCALE_OFFSETS = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
                 "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}


def geometry(name):
    """(elements per block, bytes per block) of a type name."""
    return gguf.GGML_QUANT_SIZES[T[name]]


def random_blocks(name, n_blocks, rng, scale_exp_range=(-14, 15)):
    """Random raw blocks whose fp16 scales are finite, with exponents spread over
    scale_exp_range (extreme scales included); every other byte uniformly random."""
    bs, ts = geometry(name)
    raw = rng.integers(0, 256, size=(n_blocks, ts), dtype=np.uint8)
    if name == "F32":
        vals = rng.standard_normal(n_blocks) * np.exp2(rng.integers(-100, 100, n_blocks))
        return vals.astype(np.float32).view(np.uint8).reshape(n_blocks, ts)
    if name in ("F16", "BF16"):
        # keep exponents away from the all-ones (inf/nan) pattern
        u16 = raw.view(np.uint16).copy()
        exp_mask, exp_ones = (0x7C00, 0x7C00) if name == "F16" else (0x7F80, 0x7F80)
        bad = (u16 & exp_mask) == exp_ones
        u16[bad] &= np.uint16(~0x4000 & 0xFFFF)
        return u16.view(np.uint8).reshape(n_blocks, ts)
    for off in SCALE_OFFSETS[name]:
        mant = rng.standard_normal(n_blocks)
        scale = mant * np.exp2(rng.integers(*scale_exp_range, n_blocks).astype(np.float64))
        raw[:, off:off + 2] = scale.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw


def gguf_dequantize(name, raw, n_elements):
    bs, ts = geometry(name)
    return gguf.quants.dequantize(np.ascontiguousarray(raw).reshape(1, -1), T[name]).reshape(n_elements)
