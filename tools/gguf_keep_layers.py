#!/usr/bin/env python3
"""Write a copy of a GGUF model with only its first N layers (block_count = N): a real
model's weights, small enough to carry to a GPU machine for device-vs-CPU checks.

    python tools/gguf_keep_layers.py IN.gguf OUT.gguf N
"""
from __future__ import annotations

import argparse
import re
import sys

import gguf


def keep_layers(src: str, dst: str, n: int) -> None:
    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = n if name == f"{arch}.block_count" else f.contents()
        vtype = f.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(name, value, vtype, sub_type=f.types[-1])
        else:
            w.add_key_value(name, value, vtype)
    for t in r.tensors:
        m = re.match(r"blk\.(\d+)\.", t.name)
        if m and int(m.group(1)) >= n:
            continue
        w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("n_layers", type=int)
    a = ap.parse_args(argv)
    keep_layers(a.src, a.dst, a.n_layers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
