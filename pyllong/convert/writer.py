"""Streaming GGUF output: tensor infos first (sizes are known from the plan), then each
tensor's data read, converted and written before the next one is read.

Each 2-D tensor is encoded in row chunks into its output buffer, so besides the stored source
tensor and the encoded result only one chunk of float32 rows is alive at a time. The file is
written under a temporary name beside the destination and renamed into place at the end: a
failed or interrupted conversion never leaves a partial GGUF behind.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .. import quant
from ..errors import ConvertError
from ..quantize_model import MIXES, target_type
from .archs import OutTensor, Plan, rope_row_order
from .checkpoint import Checkpoint, to_float32
from .vocab import TokenizerMeta, write_tokenizer

OUT_TYPES = ("F32", "F16", "BF16") + tuple(t for t in quant.TYPES if t not in ("F32", "F16", "BF16")) + tuple(MIXES)
CHUNK_ELEMS = 1 << 22   # float32 rows converted at once (16 MiB)


def _file_type(outtype: str) -> int:
    import gguf
    name = {"F32": "ALL_F32", "F16": "MOSTLY_F16", "BF16": "MOSTLY_BF16", "Q3_K": "MOSTLY_Q3_K_M",
            "Q4_K": "MOSTLY_Q4_K_S", "Q5_K": "MOSTLY_Q5_K_S"}.get(outtype, "MOSTLY_" + outtype)
    return int(gguf.LlamaFileType[name])


def tensor_type(t: OutTensor, outtype: str, n_layer: int) -> str:
    """Storage type of one output tensor: 1-D (norms, biases, rope factors) stay F32."""
    if len(t.shape) < 2:
        return "F32"
    return target_type(t.name, 2, t.shape[1], outtype, n_layer)


def _encode(x: np.ndarray, qtype: str) -> np.ndarray:
    """float32 rows -> their bytes in qtype, shape (rows, row bytes)."""
    if qtype == "F32":
        return x.view(np.uint8)
    if qtype == "F16":
        return x.astype(np.float16).view(np.uint8)
    return quant.quantize(x, qtype).reshape(x.shape[0], -1)


def encode_tensor(ckpt: Checkpoint, t: OutTensor, qtype: str) -> np.ndarray:
    """The GGUF data of one tensor: float32 (1-D) or uint8 (rows, row bytes)."""
    if t.values is not None:
        return np.ascontiguousarray(t.values, dtype=np.float32)
    if len(t.shape) == 1:
        return np.concatenate([ckpt.read_float32(p.source).reshape(-1) for p in t.parts])
    rows, n_in = t.shape
    out = np.empty((rows, quant.row_bytes(qtype, n_in)), dtype=np.uint8)
    chunk = max(1, CHUNK_ELEMS // n_in)
    r0 = 0
    for part in t.parts:
        raw = ckpt.read(part.source)
        dtype = ckpt.refs[part.source].dtype
        n = raw.shape[0]
        order = rope_row_order(part.rope_heads, n // part.rope_heads) if part.rope_heads else None
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            rows_in = raw[a:b] if order is None else raw[order[a:b]]
            out[r0 + a:r0 + b] = _encode(np.ascontiguousarray(to_float32(rows_in, dtype)), qtype)
        r0 += n
        del raw
    return out


def _add_metadata(writer, key: str, value) -> None:
    import gguf
    VT = gguf.GGUFValueType
    if isinstance(value, bool):
        writer.add_bool(key, value)
    elif isinstance(value, int):
        writer.add_uint32(key, value)
    elif isinstance(value, float):
        writer.add_float32(key, value)
    elif isinstance(value, str):
        writer.add_string(key, value)
    elif isinstance(value, list) and all(isinstance(v, int) for v in value):
        writer.add_key_value(key, value, VT.ARRAY, sub_type=VT.UINT32)
    else:
        raise TypeError(f"no GGUF type for metadata {key} = {value!r}")


def write_gguf(path: str, plan: Plan, tok: TokenizerMeta, ckpt: Checkpoint, outtype: str,
               log: Callable[[str], None] | None = print) -> dict[str, str]:
    """Write the converted model to `path` atomically; returns {tensor name: type}."""
    import gguf

    types = {t.name: tensor_type(t, outtype, plan.n_layer) for t in plan.tensors}
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConvertError(f"output directory {directory} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.partial")
    writer = None
    try:
        writer = gguf.GGUFWriter(tmp, plan.gguf_arch)
        for key, value in plan.metadata.items():
            _add_metadata(writer, key, value)
        writer.add_file_type(_file_type(outtype))
        if outtype not in ("F32", "F16", "BF16"):
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        write_tokenizer(writer, tok)
        for t in plan.tensors:
            qtype = types[t.name]
            if qtype == "F32" and len(t.shape) == 1:
                writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), 4 * t.shape[0])
            else:
                rb = quant.row_bytes(qtype, t.shape[1])
                writer.add_tensor_info(t.name, (t.shape[0], rb), np.dtype(np.uint8), t.shape[0] * rb,
                                       raw_dtype=gguf.GGMLQuantizationType[qtype])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in plan.tensors:
            data = encode_tensor(ckpt, t, types[t.name])
            writer.write_tensor_data(data)
            del data
            if log:
                log(f"{t.name:32} {str(list(t.shape)):>16} -> {types[t.name]}")
        writer.close()
        writer = None
        os.replace(tmp, path)
    except OSError as e:
        raise ConvertError(f"converting to {path}: {e}") from e
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return types
