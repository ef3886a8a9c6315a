"""`pyllong.Memory`: kNN key-value memory (Focused Transformer / LongLLaMA) for a Model.

Memory layers attend to their local window and to the keys and values of earlier text kept in
memory, in one softmax (see ../shared/spec/knn-memory.md and csrc/memory/kv_memory.h):

    mem = pyllong.Memory(mode="knn", k=64)          # options; defaults fit the model
    model = pyllong.Model("smollm2", memory=mem)    # or memory=True for the defaults
    mem.add_document(open("book.txt").read())       # read into memory, no generation
    model.generate("Question: ...")                 # the document stays for every question
    mem.save("book.pmem"); pyllong.Memory.load("book.pmem")   # a Model(memory=...) later

A Model's conversation (what generate/eval read after the last document) goes through the
window W: when the window would overflow it moves into memory. A prompt that does not
continue the conversation starts a new one from the documents: the memory goes back to what
add_document (or restore / load) left.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
from typing import Optional, Sequence, Union

import numpy as np

from .errors import InvalidArgumentError, MemoryFileError

MODES = ("fot", "knn")
DTYPES = ("f16",)
MAGIC = b"PYLLMEM\0"
VERSION = 1
_HEAD = struct.Struct("<8sII")  # magic, version, header length


def gguf_memory_defaults(metadata) -> dict:
    """Memory options a GGUF carries for a FoT-trained model (a LongLLaMA conversion):
    `{arch}.memory.layers` (int array), `{arch}.memory.window` (W, the training context) and
    `{arch}.memory.last_context_length`. Missing keys are left out."""
    arch = metadata.get("general.architecture", "") if hasattr(metadata, "get") else ""
    out = {}
    for key, name in (("layers", "layers"), ("window", "window"), ("last_context_length", "last_context_length")):
        v = metadata.get(f"{arch}.memory.{key}") if hasattr(metadata, "get") else None
        if v is not None:
            out[name] = [int(x) for x in v] if name == "layers" else int(v)
    return out


def default_layers(n_layer: int) -> list[int]:
    """LongLLaMA's spacing (3B: 6, 12, 18 of 26): a quarter, half and three quarters deep."""
    return sorted({max(0, min(n_layer - 1, round(n_layer * f))) for f in (0.25, 0.5, 0.75)})


def model_fingerprint(path: str) -> str:
    """sha256 of a model file's size, first 64 KiB (header, metadata) and last 1 MiB (weights):
    cheap at any size, and different for two fine-tunes of one architecture."""
    h = hashlib.sha256()
    size = os.path.getsize(path)
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 16))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()


def _int_option(name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise InvalidArgumentError(f"Memory: {name} must be an integer >= {lo}, got {v!r}")
    return int(v)


class Memory:
    """kNN key-value memory options and, once given to a Model, its content.

    layers: memory layer indices (default: a quarter, half and three quarters deep).
    mode: "fot" (every memory key, LongLLaMA's exact algorithm) or "knn" (each query's top-k
    memory keys per KV head, exact scan). k: keys per query in knn mode. dtype: "f16".
    cap: most tokens kept in memory, oldest dropped first (None = unbounded).
    window: W, the local window (default: the Model's n_ctx). last_context_length: tokens of a
    long input kept in the window (default: W // 2). index: "exact" (scan every key) or "ivf"
    (knn only: an approximate inverted-file index, trained once a head holds ivf_min keys,
    each query scanning its n_probe nearest lists). distance: None = LongLLaMA (a query at
    local position p sees the memory keys, stored unrotated, at distance p); D = every memory
    key is seen D tokens back, for models not trained with memory (beyond the reference).
    """

    def __init__(self, layers: Optional[Sequence[int]] = None, mode: str = "fot", k: int = 64, dtype: str = "f16",
                 cap: Optional[int] = None, window: Optional[int] = None,
                 last_context_length: Optional[int] = None, index: str = "exact", n_probe: int = 8,
                 ivf_min: int = 4096, distance: Optional[int] = None):
        if mode not in MODES:
            raise InvalidArgumentError(f"Memory: mode must be one of {', '.join(MODES)}, got {mode!r}")
        if dtype not in DTYPES:
            raise InvalidArgumentError(f"Memory: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.layers = None if layers is None else sorted({_int_option("layer", l, 0) for l in layers})
        if self.layers is not None and not self.layers:
            raise InvalidArgumentError("Memory: layers is empty; give at least one layer, or None for the default")
        if index not in ("exact", "ivf"):
            raise InvalidArgumentError(f"Memory: index must be 'exact' or 'ivf', got {index!r}")
        if index == "ivf" and mode != "knn":
            raise InvalidArgumentError("Memory: index='ivf' searches top-k keys; use it with mode='knn'")
        self.index, self.n_probe, self.ivf_min = index, _int_option("n_probe", n_probe, 1), _int_option("ivf_min", ivf_min, 1)
        self.distance = None if distance is None else _int_option("distance", distance, 1)
        self.mode, self.dtype = mode, dtype
        self.k = _int_option("k", k, 1)
        self.cap = None if cap is None else _int_option("cap", cap, 1)
        self.window = None if window is None else _int_option("window", window, 1)
        self.last_context_length = None if last_context_length is None else _int_option(
            "last_context_length", last_context_length, 1)
        self._model = None
        self._state = None       # detached content (a snapshot or a loaded file): _core.KVMemory or dict
        self._file_model = None  # (fingerprint, dims) of a loaded file, checked when bound

    # -- binding to a Model ------------------------------------------------------------------

    def _resolve(self, n_layer: int, n_ctx: int, metadata=None) -> dict:
        """The native Context's memory options for a model with n_layer layers. A FoT-trained
        model's GGUF may name its memory layers, window and last_context_length
        (`{arch}.memory.layers` etc., see gguf_memory_defaults); options given here win."""
        if self._model is not None:
            raise InvalidArgumentError("this Memory already belongs to a Model; pass memory.snapshot() to fork it")
        meta = gguf_memory_defaults(metadata) if metadata is not None else {}
        self.layers = self.layers if self.layers is not None else meta.get("layers") or default_layers(n_layer)
        self.window = self.window or meta.get("window")
        self.last_context_length = self.last_context_length or meta.get("last_context_length")
        bad = [l for l in self.layers if l >= n_layer]
        if bad:
            raise InvalidArgumentError(f"Memory: layer {bad[0]} is outside this model's layers [0, {n_layer})")
        self.window = self.window or n_ctx
        self.last_context_length = self.last_context_length or max(1, self.window // 2)
        if self.last_context_length > self.window:
            raise InvalidArgumentError(f"Memory: last_context_length ({self.last_context_length}) must not exceed "
                                       f"the window ({self.window})")
        return dict(layers=list(self.layers), window=self.window, last_context_length=self.last_context_length,
                    mode=self.mode, k=self.k, cap=self.cap or 0, ivf=self.index == "ivf", n_probe=self.n_probe,
                    ivf_min=self.ivf_min, distance=self.distance or 0)

    def _attach(self, model) -> None:
        """Called by Model once its context exists: load detached content into it."""
        self._model = model
        if self._file_model is not None:
            fp, dims = self._file_model
            have = _model_dims(model)
            if dims != have:
                raise MemoryFileError(f"this memory file was made for a model with {dims}; this one has {have}")
            if fp != model_fingerprint(model.path):
                raise MemoryFileError("this memory file was made for another model (same shape, other weights); "
                                      "load it with the model that wrote it")
        if self._state is not None:
            if isinstance(self._state, dict):  # from a file: rows per slot
                native = self._native
                native.clear()
                for slot, (kr, vr) in enumerate(self._state["rows"]):
                    native.append_f16(slot, kr, vr)
            else:
                model.ctx.set_memory(self._state)
            self._state = None
        model._memory_set_base()

    @property
    def _native(self):
        if self._model is None:
            raise InvalidArgumentError("this Memory is not attached to a Model yet: pass it as Model(..., memory=m)")
        return self._model.ctx.memory

    # -- content -------------------------------------------------------------------------------

    def add_document(self, text: Union[str, bytes, Sequence[int]]) -> int:
        """Read text (or token ids) into memory without generating: in chunks of W tokens, each
        attending to itself and to the memory so far. The conversation is dropped; the document
        stays for every later prompt. Returns the number of tokens read."""
        model = self._model
        if model is None:
            raise InvalidArgumentError("add_document needs the Memory attached to a Model: Model(..., memory=m)")
        tokens = model._prompt_tokens(text)
        if not tokens:
            raise InvalidArgumentError("add_document: the document is empty")
        model._memory_restore_base()
        model.ctx.add_to_memory(np.asarray(tokens, dtype=np.int32))
        model.n_evaluated += len(tokens)
        model._memory_set_base()
        return len(tokens)

    def clear(self) -> None:
        """Forget everything: documents and conversation."""
        if self._model is None:
            self._state = None
            return
        self._model.ctx.reset()
        self._native.clear()
        self._model._tokens = []
        self._model._memory_set_base()

    def snapshot(self) -> "Memory":
        """A detached copy of the documents in memory (what every new conversation starts from;
        not the conversation): give it to another Model to fork, or to restore() later."""
        snap = Memory(self.layers, self.mode, self.k, self.dtype, self.cap, self.window, self.last_context_length,
                      self.index, self.n_probe, self.ivf_min, self.distance)
        if self._model is None:  # detached (loaded or a snapshot itself): share its content
            snap._state, snap._file_model = self._state, self._file_model
        else:  # the model that made it is checked when the snapshot is attached elsewhere
            snap._state = self._model._memory_base_state()
            snap._file_model = (model_fingerprint(self._model.path), _model_dims(self._model))
        return snap

    def restore(self, snapshot: "Memory") -> None:
        """Replace this (attached) memory's content with a snapshot's; the conversation is dropped."""
        if snapshot._model is not None:  # already given to a Model (a fork): its documents
            snapshot = snapshot.snapshot()
        if snapshot._state is None:
            raise InvalidArgumentError("restore needs a snapshot taken with Memory.snapshot() or Memory.load()")
        if snapshot.layers != self.layers:
            raise InvalidArgumentError(f"the snapshot has memory layers {snapshot.layers}, this memory {self.layers}")
        self._model.ctx.reset()
        self._model._tokens = []
        state, fm = snapshot._state, snapshot._file_model
        self._state, self._file_model = (state if isinstance(state, dict) else state.copy()), fm
        model, self._model = self._model, None
        self._attach(model)

    # -- statistics ---------------------------------------------------------------------------

    @property
    def tokens(self) -> int:
        if self._model is None:
            return 0 if self._state is None else _state_tokens(self._state)
        return self._native.size

    def stats(self) -> dict:
        """tokens, bytes (total and per memory layer), evicted tokens, options."""
        out = dict(layers=self.layers, mode=self.mode, k=self.k, dtype=self.dtype, cap=self.cap, window=self.window,
                   last_context_length=self.last_context_length, index=self.index, distance=self.distance,
                   tokens=self.tokens)
        if self._model is not None:
            n = self._native
            out.update(bytes=n.bytes, evicted=n.evicted, local_tokens=self._model.ctx.n_past,
                       bytes_per_layer={l: n.slot_bytes(i) for i, l in enumerate(self.layers)})
        return out

    def __repr__(self) -> str:
        where = "attached" if self._model is not None else "detached"
        return (f"Memory(layers={self.layers}, mode={self.mode!r}, k={self.k}, cap={self.cap}, "
                f"window={self.window}, tokens={self.tokens}, {where})")

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Write the documents in memory (as snapshot()) to a versioned file: magic, version, a JSON header (model fingerprint
        and dimensions, dtype, layers, options, token count), the f16 rows of every layer, and
        a sha256 of all that. Written to a temporary file and renamed: a crash never leaves a
        half-written file under `path`."""
        model = self._model
        if model is None:
            raise InvalidArgumentError("save needs the Memory attached to a Model (it records which model made it)")
        base = model._memory_base_state()
        rows = [base.export(slot) for slot in range(len(self.layers))]
        header = dict(model=model_fingerprint(model.path), dims=_model_dims(model), dtype=self.dtype,
                      layers=self.layers, tokens=int(base.size), mode=self.mode, k=self.k, cap=self.cap,
                      window=self.window, last_context_length=self.last_context_length, index=self.index,
                      n_probe=self.n_probe, ivf_min=self.ivf_min, distance=self.distance)
        hjson = json.dumps(header, sort_keys=True).encode()
        h = hashlib.sha256()
        path = os.fspath(path)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                                   dir=os.path.dirname(os.path.abspath(path)))
        try:
            with os.fdopen(fd, "wb") as f:
                def put(b: bytes) -> None:
                    h.update(b)
                    f.write(b)
                put(_HEAD.pack(MAGIC, VERSION, len(hjson)))
                put(hjson)
                for kr, vr in rows:
                    put(np.ascontiguousarray(kr, dtype="<u2").tobytes())
                    put(np.ascontiguousarray(vr, dtype="<u2").tobytes())
                f.write(h.digest())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: Union[str, os.PathLike], mode: Optional[str] = None, k: Optional[int] = None,
             cap: Optional[int] = None) -> "Memory":
        """A detached Memory with a saved file's content and options (mode, k and cap may be
        changed here); pass it as Model(..., memory=m) with the model that saved it."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise MemoryFileError(f"cannot read memory file {path}: {e.strerror}") from None
        if len(data) < _HEAD.size + 32 or data[:8] != MAGIC:
            raise MemoryFileError(f"{path} is not a pyllong memory file (no {MAGIC!r} magic)")
        _, version, hlen = _HEAD.unpack_from(data)
        if version != VERSION:
            raise MemoryFileError(f"{path} is a version {version} memory file; this pyllong reads version {VERSION}")
        if hashlib.sha256(data[:-32]).digest() != data[-32:]:
            raise MemoryFileError(f"{path} is corrupted or truncated (checksum mismatch); save the memory again")
        try:
            header = json.loads(data[_HEAD.size:_HEAD.size + hlen])
            layers, n, dims = header["layers"], int(header["tokens"]), header["dims"]
            kv_dim = int(dims["n_head_kv"]) * int(dims["head_dim"])
            # A forged file can carry a valid checksum: every count must make sense (item 32).
            if (not isinstance(layers, list) or not layers or any(type(l) is not int or l < 0 for l in layers)
                    or n < 0 or int(dims["n_head_kv"]) < 1 or int(dims["head_dim"]) < 1):
                raise ValueError("layers, tokens or dims out of range")
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise MemoryFileError(f"{path} has a malformed header: {e}") from None
        payload = np.frombuffer(data, dtype="<u2", offset=_HEAD.size + hlen, count=(len(data) - 32 - _HEAD.size - hlen) // 2)
        if payload.size != 2 * len(layers) * n * kv_dim:
            raise MemoryFileError(f"{path}: the rows do not match the header ({len(layers)} layers x {n} tokens)")
        per = n * kv_dim
        rows = [(payload[(2 * s) * per:(2 * s + 1) * per].reshape(n, kv_dim),
                 payload[(2 * s + 1) * per:(2 * s + 2) * per].reshape(n, kv_dim)) for s in range(len(layers))]
        try:
            mode = mode or header["mode"]
            m = cls(layers, mode, k or header["k"], header["dtype"], cap if cap is not None else header["cap"],
                    header["window"], header["last_context_length"],
                    header.get("index", "exact") if mode == "knn" else "exact", header.get("n_probe", 8),
                    header.get("ivf_min", 4096), header.get("distance"))
            file_model = (header["model"], dict(dims))
        except (KeyError, TypeError, ValueError) as e:  # InvalidArgumentError is a ValueError too
            raise MemoryFileError(f"{path} has a malformed header: {e}") from None
        m._state = dict(rows=rows, tokens=n)
        m._file_model = file_model
        return m


def _model_dims(model) -> dict:
    hp = model.model_file.hparams
    return dict(arch=str(hp.get("architecture", "")), n_layer=int(hp["n_layer"]), n_head_kv=int(hp["n_head_kv"]),
                head_dim=int(hp["head_dim"]), n_embd=int(hp["n_embd"]))


def _state_tokens(state) -> int:
    return int(state["tokens"]) if isinstance(state, dict) else int(state.size)
