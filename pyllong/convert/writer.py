"""Streaming GGUF output: header, metadata and tensor infos first (every size is known from
the plan), then the tensor data, read, converted and appended a chunk of rows at a time. Only
one chunk (about CHUNK_ELEMS values, as stored, as float32 and encoded) is in memory at once,
whatever the size of the tensor or the model.

The file is written under a temporary name beside the destination and renamed into place at
the end: a failed or interrupted conversion never leaves a partial GGUF behind.
"""
from __future__ import annotations

import os
from typing import Callable, Iterator

import numpy as np

from .. import quant
from ..errors import ConvertError
from ..quantize_model import MIXES, target_type
from .archs import OutTensor, Plan, rope_row_order
from .checkpoint import Checkpoint
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


def _chunk_rows(n_in: int, head_dim: int) -> int:
    """Rows per chunk: about CHUNK_ELEMS values, whole heads when rows are reordered per head."""
    rows = max(1, CHUNK_ELEMS // n_in)
    return max(head_dim, rows // head_dim * head_dim) if head_dim else rows


def tensor_chunks(ckpt: Checkpoint, t: OutTensor, qtype: str) -> Iterator[np.ndarray]:
    """The GGUF bytes of one tensor, in file order, a bounded number of rows at a time."""
    if t.values is not None:
        yield np.ascontiguousarray(t.values, dtype=np.float32).view(np.uint8)
        return
    if len(t.shape) == 1:  # norms and biases: small, F32, parts written one after the other
        for part in t.parts:
            yield np.ascontiguousarray(ckpt.read_float32(part.source).reshape(-1)).view(np.uint8)
        return
    n_in = t.shape[1]
    for part in t.parts:
        n = ckpt.shape(part.source)[0]
        head_dim = n // part.rope_heads if part.rope_heads else 0
        step = _chunk_rows(n_in, head_dim)
        for a in range(0, n, step):
            b = min(n, a + step)
            x = ckpt.read_float32(part.source, a, b)
            if head_dim:  # the reordering stays within each head, and chunks hold whole heads
                x = x[rope_row_order((b - a) // head_dim, head_dim)]
            yield _encode(np.ascontiguousarray(x), qtype)


def _pad(f, n: int, align: int) -> None:
    f.write(b"\0" * (-n % align))


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
    try:
        import gguf
    except ImportError:
        raise ConvertError("writing GGUF needs the gguf package: pip install 'pyllong[convert]'") from None

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
        nbytes = {}
        for t in plan.tensors:
            qtype = types[t.name]
            if qtype == "F32" and len(t.shape) == 1:
                nbytes[t.name] = 4 * t.shape[0]
                writer.add_tensor_info(t.name, t.shape, np.dtype(np.float32), nbytes[t.name])
            else:
                rb = quant.row_bytes(qtype, t.shape[1])
                nbytes[t.name] = t.shape[0] * rb
                writer.add_tensor_info(t.name, (t.shape[0], rb), np.dtype(np.uint8), nbytes[t.name],
                                       raw_dtype=gguf.GGMLQuantizationType[qtype])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        align = writer.data_alignment
        writer.close()
        writer = None
        # Tensor data, as the GGUF layout has it: from the next alignment boundary, each tensor
        # padded to the alignment (the offsets the tensor infos above were given).
        with open(tmp, "ab") as f:
            _pad(f, f.tell(), align)
            for t in plan.tensors:
                written = 0
                for chunk in tensor_chunks(ckpt, t, types[t.name]):
                    f.write(memoryview(chunk).cast("B"))
                    written += chunk.nbytes
                if written != nbytes[t.name]:
                    raise AssertionError(f"{t.name}: wrote {written} bytes, its tensor info says {nbytes[t.name]}")
                _pad(f, written, align)
                if log:
                    log(f"{t.name:32} {str(list(t.shape)):>16} -> {types[t.name]}")
        os.replace(tmp, path)
    except OSError as e:
        raise ConvertError(f"converting to {path}: {e}") from e
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return types
