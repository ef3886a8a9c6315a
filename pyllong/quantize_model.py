"""Convert a whole GGUF file to another quantization: `pyllong quantize IN OUT TYPE`.

Metadata is copied unchanged; 1-D tensors (norms, biases) stay as they are (F32); every
2-D weight is quantized to TYPE or, for the K-quant mixes, to the per-tensor type
llama.cpp's mixes use (Q4_K_M / Q5_K_M: attn_v and ffn_down in Q6_K for the first and
last eighth of the layers and every third layer between, output.weight in Q6_K).
Rows that are not whole super-blocks fall back to a 32-block format as llama.cpp does.
Already-quantized sources are dequantized first only with --allow-requantize."""
from __future__ import annotations

import argparse
import re
import sys

import numpy as np

from . import quant
from .errors import InvalidArgumentError

MIXES = {"Q4_K_M": "Q4_K", "Q5_K_M": "Q5_K"}
FLOAT_SOURCES = {"F32", "F16", "BF16"}
# A K-quant on rows that are not multiples of 256 falls back to (llama.cpp's choices):
K_FALLBACK = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def _use_more_bits(i_layer: int, n_layers: int) -> bool:
    return i_layer < n_layers // 8 or i_layer >= 7 * n_layers // 8 or (i_layer - n_layers // 8) % 3 == 2


def target_type(name: str, n_dims: int, n_in: int, ftype: str, n_layers: int) -> str | None:
    """The type a tensor is stored in, or None to keep it unchanged."""
    if n_dims < 2:
        return None
    base = MIXES.get(ftype, ftype)
    t = base
    if ftype in MIXES:
        m = re.match(r"blk\.(\d+)\.(attn_v|ffn_down)\.weight$", name)
        if m and _use_more_bits(int(m.group(1)), n_layers):
            t = "Q6_K"
    if name == "output.weight" and base not in FLOAT_SOURCES and base != "Q8_0":
        t = "Q6_K"
    if n_in % quant._core.block_elems(t):
        t = K_FALLBACK.get(t, t)
    if n_in % quant._core.block_elems(t):
        t = "F16"
    return t


def _field_value(field):
    import gguf
    val_type = field.types[0]
    sub_type = field.types[-1] if val_type == gguf.GGUFValueType.ARRAY else None
    return field.contents(), val_type, sub_type


def quantize_file(src: str, dst: str, ftype: str, allow_requantize: bool = False,
                  n_threads: int | None = None, log=print) -> dict:
    """Write dst from src with tensors converted per target_type. Returns {name: type}."""
    import gguf

    ftype = ftype.upper()
    if ftype not in MIXES and ftype not in quant.TYPES:
        raise InvalidArgumentError(f"unknown target type {ftype!r}; expected one of "
                                   f"{', '.join(list(quant.TYPES) + list(MIXES))}")
    reader = gguf.GGUFReader(src)
    arch_field = reader.fields.get(gguf.Keys.General.ARCHITECTURE)
    if arch_field is None:
        raise InvalidArgumentError(f"{src}: no general.architecture")
    arch = arch_field.contents()
    n_layers_field = reader.fields.get(f"{arch}.block_count")
    n_layers = int(n_layers_field.contents()) if n_layers_field is not None else 0

    writer = gguf.GGUFWriter(dst, arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        if field.name == gguf.Keys.General.FILE_TYPE:
            continue  # describes the old mix; not meaningful for a per-tensor conversion
        value, vtype, sub_type = _field_value(field)
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)

    chosen = {}
    for t in reader.tensors:
        ne = [int(s) for s in t.shape]  # ggml order: ne[0] = row length
        src_type = t.tensor_type.name
        dst_type = target_type(t.name, len(ne), ne[0], ftype, n_layers) or src_type
        chosen[t.name] = dst_type
        rows_shape = (int(np.prod(ne[1:])), ne[0])
        if dst_type == src_type:
            data = np.asarray(t.data)
            if src_type in FLOAT_SOURCES:
                writer.add_tensor(t.name, data.reshape(tuple(reversed(ne))), raw_dtype=t.tensor_type)
            else:
                writer.add_tensor(t.name, data.reshape(rows_shape[0], -1), raw_dtype=t.tensor_type)
            continue
        if src_type not in FLOAT_SOURCES and not allow_requantize:
            raise InvalidArgumentError(f"{t.name} is already {src_type}; pass --allow-requantize "
                                       f"to convert it to {dst_type} (quality loss adds up)")
        x = quant.dequantize(np.asarray(t.data).view(np.uint8), src_type, rows_shape)
        raw = quant.quantize(x, dst_type).reshape(rows_shape[0], -1)
        qtype = gguf.GGMLQuantizationType[dst_type]
        if dst_type in FLOAT_SOURCES:
            arr = raw.view({"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[dst_type])
            writer.add_tensor(t.name, arr.reshape(tuple(reversed(ne))), raw_dtype=qtype)
        else:
            writer.add_tensor(t.name, raw, raw_dtype=qtype)
        if log:
            log(f"{t.name:40} {str(ne):>16} {src_type:>5} -> {dst_type}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return chosen


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="source .gguf")
    p.add_argument("output", help="destination .gguf")
    p.add_argument("type", help="Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K F16 BF16 F32 Q4_K_M Q5_K_M")
    p.add_argument("--allow-requantize", action="store_true",
                   help="allow converting tensors that are already quantized")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-tensor log")


def run(args) -> int:
    quantize_file(args.input, args.output, args.type, args.allow_requantize, log=None if args.quiet else print)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pyllong quantize", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except InvalidArgumentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
