"""Reading a Hugging Face checkpoint directory one tensor at a time.

`Checkpoint(dir)` indexes every weight shard (safetensors, or PyTorch .bin zip archives) by
tensor name without reading tensor data; `checkpoint.read_rows(name, a, b)` then reads rows
a..b of one tensor from disk into a fresh numpy array. Data is read with positioned reads, not
mmap, so pages already converted do not stay in the process's resident set: the converter's
memory is a few row chunks, whatever the size of the model.

PyTorch .bin files are pickles. They are read with a restricted unpickler that knows only
the handful of names a state dict of tensors uses (`torch._utils._rebuild_tensor_v2`, the
storage classes, `collections.OrderedDict`); any other reference is refused before anything
runs, so a hostile checkpoint cannot execute code. Prefer safetensors when both exist.
"""
from __future__ import annotations

import json
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from ..errors import ConvertError

# safetensors dtype names -> numpy dtypes (BF16 is read as its raw uint16 bits).
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.uint16,
                      "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
                      "BOOL": np.bool_}
# torch storage class names -> (dtype name, numpy dtype)
TORCH_STORAGES = {"FloatStorage": ("F32", np.float32), "HalfStorage": ("F16", np.float16),
                  "BFloat16Storage": ("BF16", np.uint16), "DoubleStorage": ("F64", np.float64),
                  "LongStorage": ("I64", np.int64), "IntStorage": ("I32", np.int32),
                  "ByteStorage": ("U8", np.uint8), "BoolStorage": ("BOOL", np.bool_)}
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")
MAX_HEADER_BYTES = 100 << 20  # a safetensors JSON header larger than this is not a real checkpoint


@dataclass
class TensorRef:
    """Where one tensor's bytes are: `file` at byte `offset` (for .bin: inside zip member
    `member`), `shape` and `strides` in elements (None = contiguous)."""
    name: str
    file: str
    dtype: str                 # "F32", "F16", "BF16", ...
    shape: tuple[int, ...]
    offset: int
    member: str | None = None
    strides: tuple[int, ...] | None = None

    @property
    def np_dtype(self):
        return SAFETENSORS_DTYPES[self.dtype]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.np_dtype).itemsize


def to_float32(raw: np.ndarray, dtype: str) -> np.ndarray:
    """A tensor as read (BF16 as uint16 bits) -> float32."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if dtype not in FLOAT_DTYPES:
        raise ConvertError(f"tensor of dtype {dtype} cannot be converted to a float weight")
    return raw.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------
# safetensors

def _safetensors_index(path: str) -> list[TensorRef]:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ConvertError(f"{path}: too short to be a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ConvertError(f"{path}: safetensors header length {n} is larger than the file allows")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConvertError(f"{path}: safetensors header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: safetensors header is not a JSON object")
    data_start, refs = 8 + n, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(int(d) for d in info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ConvertError(f"{path}: tensor {name!r} has a malformed header entry") from None
        if dtype not in SAFETENSORS_DTYPES:
            raise ConvertError(f"{path}: tensor {name!r} has unsupported dtype {dtype}")
        ref = TensorRef(name, path, dtype, shape, data_start + int(begin))
        if any(d < 0 for d in shape) or end - begin != ref.nbytes or begin < 0 or data_start + end > size:
            raise ConvertError(f"{path}: tensor {name!r} data range [{begin}, {end}) does not fit its shape "
                               f"{list(shape)} x {dtype} or the file ({size} bytes); the shard is truncated or corrupt")
        refs.append(ref)
    return refs


# ---------------------------------------------------------------------------------------------
# PyTorch .bin (zip archive + pickle), read without torch and without running pickled code

@dataclass
class _Storage:
    member: str
    dtype: str


@dataclass
class _LazyTensor:
    storage: _Storage
    offset: int       # in elements
    shape: tuple[int, ...]
    strides: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    return _LazyTensor(storage, int(storage_offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    return data


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict of tensors uses; anything else is refused."""

    def __init__(self, fp, path: str, prefix: str):
        super().__init__(fp)
        self.path, self.prefix = path, prefix

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in TORCH_STORAGES:
            return name
        raise ConvertError(f"{self.path}: the pickle references {module}.{name}, which a plain tensor state dict "
                           f"never does; refusing to load it (convert it to safetensors with trusted tools)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage" and pid[1] in TORCH_STORAGES):
            raise ConvertError(f"{self.path}: unsupported persistent id {pid!r:.80} in the pickle")
        return _Storage(f"{self.prefix}data/{pid[2]}", TORCH_STORAGES[pid[1]][0])


def _torch_index(path: str) -> list[TensorRef]:
    if not zipfile.is_zipfile(path):
        raise ConvertError(f"{path}: not a zip archive (legacy PyTorch format); re-save it with torch.save "
                           f"(torch >= 1.6) or convert it to safetensors")
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("data.pkl")]
        if len(pkl) != 1:
            raise ConvertError(f"{path}: expected one data.pkl in the archive, found {len(pkl)}")
        prefix = pkl[0][: -len("data.pkl")]
        try:
            with z.open(pkl[0]) as fp:
                state = _StateDictUnpickler(fp, path, prefix).load()
        except ConvertError:
            raise
        except Exception as e:  # malformed pickle bytes
            raise ConvertError(f"{path}: cannot read the pickled state dict ({type(e).__name__}: {e})") from None
        if not isinstance(state, dict):
            raise ConvertError(f"{path}: the pickle holds a {type(state).__name__}, not a state dict")
        refs, members = [], set(z.namelist())
        for name, t in state.items():
            if not isinstance(t, _LazyTensor):
                raise ConvertError(f"{path}: entry {name!r} is not a tensor")
            info = z.getinfo(t.storage.member) if t.storage.member in members else None
            if info is None:
                raise ConvertError(f"{path}: tensor {name!r} refers to missing storage {t.storage.member}")
            if info.compress_type != zipfile.ZIP_STORED:
                raise ConvertError(f"{path}: storage {t.storage.member} is compressed; torch never writes that")
            refs.append(TensorRef(name, path, t.storage.dtype, t.shape, t.offset, member=t.storage.member,
                                  strides=t.strides))
    return refs


def _read_torch(ref: TensorRef, row0: int, row1: int) -> np.ndarray:
    """Rows [row0, row1) of a tensor in a .bin archive (a copy; strided views are gathered)."""
    dt = np.dtype(ref.np_dtype)
    shape = (row1 - row0,) + ref.shape[1:] if ref.shape else ()
    numel = int(np.prod(shape, dtype=np.int64))
    strides = ref.strides or ()
    start = ref.offset + (row0 * strides[0] if strides else 0)
    # Span of storage elements the (possibly strided) view touches.
    span = 1 + sum((d - 1) * s for d, s in zip(shape, strides)) if numel else 0
    with zipfile.ZipFile(ref.file) as z, z.open(ref.member) as fp:
        fp.seek(start * dt.itemsize)
        buf = fp.read(span * dt.itemsize)
    if len(buf) != span * dt.itemsize:
        raise ConvertError(f"{ref.file}: tensor {ref.name!r} runs past the end of its storage")
    flat = np.frombuffer(buf, dtype=dt)
    view = np.lib.stride_tricks.as_strided(flat, shape, tuple(s * dt.itemsize for s in strides))
    return np.array(view)  # own, contiguous, writable copy


# ---------------------------------------------------------------------------------------------
# The checkpoint directory

def _shard_files(directory: str) -> tuple[str, list[str]]:
    """("safetensors" | "bin", shard paths). An index file, when present, names the shards."""
    for kind, single, index in (("safetensors", "model.safetensors", "model.safetensors.index.json"),
                                ("bin", "pytorch_model.bin", "pytorch_model.bin.index.json")):
        index_path = os.path.join(directory, index)
        if os.path.isfile(index_path):
            try:
                with open(index_path, encoding="utf-8") as f:
                    weight_map = json.load(f)["weight_map"]
                names = sorted(set(weight_map.values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ConvertError(f"{index_path}: not a valid shard index (needs a 'weight_map' object)") from None
            missing = [n for n in names if not os.path.isfile(os.path.join(directory, n))]
            if missing:
                raise ConvertError(f"{index_path} lists shards that are missing: {', '.join(missing)}; "
                                   f"download the whole checkpoint")
            return kind, [os.path.join(directory, n) for n in names]
        if os.path.isfile(os.path.join(directory, single)):
            return kind, [os.path.join(directory, single)]
        found = sorted(n for n in os.listdir(directory)
                       if n.endswith("." + kind) and n.startswith(("model", "pytorch_model")))
        if found:
            return kind, [os.path.join(directory, n) for n in found]
    raise ConvertError(f"{directory}: no weights found (expected model.safetensors, model-*-of-*.safetensors "
                       f"with model.safetensors.index.json, or pytorch_model*.bin)")


class Checkpoint:
    """Every tensor of a checkpoint directory, by name; data is read on demand."""

    def __init__(self, directory: str):
        self.directory = directory
        self.kind, self.files = _shard_files(directory)
        self.refs: dict[str, TensorRef] = {}
        for path in self.files:
            for ref in (_safetensors_index(path) if self.kind == "safetensors" else _torch_index(path)):
                if ref.name in self.refs:
                    raise ConvertError(f"tensor {ref.name!r} appears in both {self.refs[ref.name].file} and {path}")
                self.refs[ref.name] = ref

    def __contains__(self, name: str) -> bool:
        return name in self.refs

    def names(self) -> list[str]:
        return list(self.refs)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.refs[name].shape

    def read(self, name: str) -> np.ndarray:
        """The whole tensor as stored (BF16 as uint16 bits), freshly read from disk."""
        ref = self.refs[name]
        return self.read_rows(name, 0, ref.shape[0] if ref.shape else 0)

    def read_rows(self, name: str, row0: int, row1: int) -> np.ndarray:
        """Rows [row0, row1) along the first axis, as stored (BF16 as uint16 bits)."""
        ref = self.refs[name]
        if ref.member is not None:
            return _read_torch(ref, row0, row1)
        shape = (row1 - row0,) + ref.shape[1:] if ref.shape else ()
        out = np.empty(shape, dtype=ref.np_dtype)
        row_bytes = out.itemsize * int(np.prod(ref.shape[1:], dtype=np.int64))
        with open(ref.file, "rb") as f:
            f.seek(ref.offset + row0 * row_bytes)
            n = f.readinto(memoryview(out.reshape(-1).view(np.uint8)))
        if n != out.nbytes:
            raise ConvertError(f"{ref.file}: short read of tensor {name!r} ({n} of {out.nbytes} bytes)")
        return out

    def read_float32(self, name: str, row0: int = 0, row1: int | None = None) -> np.ndarray:
        ref = self.refs[name]
        if row1 is None:
            row1 = ref.shape[0] if ref.shape else 0
        return to_float32(self.read_rows(name, row0, row1), ref.dtype)
