"""A pure-numpy stand-in for the native `_core.Context`, with the same interface.

It keeps the token ids of its "cache" and recomputes `reference_logits` over all of them on
every eval (positions 0..n-1, which is also what a shifted cache's re-rotated keys mean):
slow, exact, fine for the tiny synthetic models. Tests use the native Context when the build
has one (`context_factory()` below) and say which one ran in pytest's header.
"""
from __future__ import annotations

import numpy as np

import pyllong
from pyllong.errors import ContextOverflowError, InvalidArgumentError
from reference.forward import reference_logits


class FakeContext:
    def __init__(self, model_file, n_ctx: int, n_threads: int = 1, n_batch: int = 512, kv_type: str = "f16"):
        self.path = model_file.gguf.path
        self.n_vocab = int(model_file.hparams["n_vocab"])
        self.n_ctx = int(n_ctx)
        self._cells: list[int] = []
        self.n_evaluated = 0      # tokens passed to eval, over the context's life
        self.eval_calls = 0

    @property
    def n_past(self) -> int:
        return len(self._cells)

    def eval(self, tokens, logits_all: bool = False) -> np.ndarray:
        tokens = [int(t) for t in np.asarray(tokens).reshape(-1)]
        if not tokens:
            raise InvalidArgumentError("eval needs at least one token")
        if self.n_past + len(tokens) > self.n_ctx:
            raise ContextOverflowError(f"{self.n_past} + {len(tokens)} > n_ctx {self.n_ctx}")
        bad = [t for t in tokens if not 0 <= t < self.n_vocab]
        if bad:
            raise InvalidArgumentError(f"token id {bad[0]} is outside the vocabulary [0, {self.n_vocab})")
        n_before = self.n_past
        self._cells.extend(tokens)
        self.n_evaluated += len(tokens)
        self.eval_calls += 1
        logits = reference_logits(self.path, self._cells).astype(np.float32)
        return logits[n_before:] if logits_all else logits[-1:]

    def reset(self) -> None:
        self._cells = []

    def truncate(self, n_keep_tokens: int) -> None:
        del self._cells[n_keep_tokens:]

    def shift(self, n_keep: int, n_discard: int) -> None:
        if n_keep < 0 or n_discard < 0 or n_keep + n_discard > self.n_past:
            raise InvalidArgumentError(f"bad shift({n_keep}, {n_discard}) of {self.n_past} cells")
        del self._cells[n_keep:n_keep + n_discard]


def native_available() -> bool:
    return hasattr(pyllong._core, "Context")


def context_kind() -> str:
    return "native _core.Context" if native_available() else "FakeContext (numpy reference; no native Context in this build)"


def context_factory():
    """The factory tests hand to pyllong.Model: the native Context when built, else the fake."""
    if native_available():
        return None  # Model's default: the native context
    return FakeContext
