"""Saving and restoring a Model's state: the KV cache cells in use (with their positions and
token ids, serialized natively by `_core.save_state`, see csrc/model/state.h) plus the Python
side the cache does not know about — the sampler's random generator and the prompt length
that `n_keep=-1` refers to — carried as a small JSON blob inside the same checksummed file.

A state file is untrusted: the native loader checks magic, version, a SHA-256 over the whole
file, the model fingerprint, kv type, SelfExtend and n_ctx before it writes the cache, and the
JSON here is checked field by field before it touches the generator. Anything wrong raises
StateError and leaves the Model as it was. Files are written atomically: a temporary file in
the same folder, fsync, rename, fsync of the folder — a crash mid-write leaves the old file.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from . import _core
from .errors import Error, StateError

_EXTRA_VERSION = 1
_RNG_KEYS = {"bit_generator", "state", "has_uint32", "uinteger"}


def _extra_blob(rng: np.random.Generator, prompt_len: int) -> bytes:
    st = rng.bit_generator.state
    return json.dumps({"v": _EXTRA_VERSION, "rng": st, "prompt_len": int(prompt_len)},
                      separators=(",", ":")).encode()


def _uint(v, bits: int, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << bits):
        raise StateError(f"state file: {what} must be an integer in [0, 2**{bits}), got {v!r}")
    return v


def _parse_extra(blob: bytes, n_tokens: int, rng: np.random.Generator) -> tuple[dict, int]:
    """The validated RNG state (for `rng`'s bit generator) and prompt length from the blob."""
    try:
        d = json.loads(blob.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise StateError(f"state file: the sampler section is not valid JSON ({e})") from None
    if not isinstance(d, dict) or d.get("v") != _EXTRA_VERSION:
        raise StateError(f"state file: unsupported sampler section (version {d.get('v') if isinstance(d, dict) else d!r})")
    st = d.get("rng")
    name = type(rng.bit_generator).__name__
    if not isinstance(st, dict) or set(st) != _RNG_KEYS or st.get("bit_generator") != name \
            or not isinstance(st.get("state"), dict) or set(st["state"]) != {"state", "inc"}:
        raise StateError(f"state file: the sampler section does not hold a {name} generator state")
    _uint(st["state"]["state"], 128, "rng state")
    _uint(st["state"]["inc"], 128, "rng increment")
    _uint(st["has_uint32"], 1, "rng has_uint32")
    _uint(st["uinteger"], 32, "rng uinteger")
    prompt_len = d.get("prompt_len")
    if isinstance(prompt_len, bool) or not isinstance(prompt_len, int) or not 0 <= prompt_len <= n_tokens:
        raise StateError(f"state file: prompt_len {prompt_len!r} is outside [0, {n_tokens}]")
    return st, prompt_len


def state_bytes(model) -> bytes:
    """The model's state as bytes (see module doc)."""
    ctx = _native(model)
    model._sync()
    tokens = np.asarray(model._tokens, dtype=np.int32)
    # _prompt_len outlives a reset or a truncation (it is only read while generating): clamp it.
    return _core.save_state(ctx, tokens, _extra_blob(model._rng, min(model._prompt_len, len(tokens))))


def load_state_bytes(model, data: bytes) -> None:
    ctx = _native(model)
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise StateError(f"a state is bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > _core.state_max_bytes(ctx):
        raise StateError(f"state of {len(data)} bytes is larger than any this context can hold "
                         f"({_core.state_max_bytes(ctx)} bytes at n_ctx {ctx.n_ctx})")
    if model._active is not None:
        model._active.close()
    parsed = {}

    def accept(tokens, extra):  # runs after the native checks, before the cache is written
        probe = np.random.Generator(type(model._rng.bit_generator)())
        st, prompt_len = _parse_extra(extra, len(tokens), probe)
        try:
            probe.bit_generator.state = st
        except (ValueError, TypeError) as e:
            raise StateError(f"state file: bad sampler state ({e})") from None
        parsed.update(st=st, prompt_len=prompt_len)

    model._mirror_valid = False  # an interrupt between the native load and the lines below resets the cache
    try:
        tokens, _ = _core.load_state(ctx, data, accept)
    except StateError:
        model._mirror_valid = True  # refused before anything was written
        raise
    model._rng.bit_generator.state = parsed["st"]
    model._tokens = [int(t) for t in tokens]
    model._prompt_len = parsed["prompt_len"]
    model._mirror_valid = True


def save_state(model, path) -> None:
    _atomic_write(os.fspath(path), state_bytes(model))


def load_state(model, path) -> None:
    path = os.fspath(path)
    ctx = _native(model)
    size = os.path.getsize(path)
    limit = _core.state_max_bytes(ctx)
    if size > limit:
        raise StateError(f"{path}: {size} bytes is larger than any state this context can hold ({limit} bytes at "
                         f"n_ctx {ctx.n_ctx}); is it a state file of this model?")
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    try:
        load_state_bytes(model, data)
    except StateError as e:
        raise StateError(f"{path}: {e}") from None


def _native(model):
    ctx = model.ctx
    if not isinstance(ctx, _core.Context):
        raise Error("save_state/load_state need the native context (_core.Context)")
    return ctx


def _atomic_write(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pyllong-state-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
