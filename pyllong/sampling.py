"""The sampler chain, in numpy, with llama.cpp's semantics and default order:

    logit bias -> logits processors -> penalties -> top-k -> typical -> top-p -> min-p
    -> temperature -> sample

Each filter takes a candidate set `(ids, logits)` — parallel 1-D arrays, `ids` the vocabulary
ids still allowed — and returns a smaller one. Top-k runs first among the truncating filters
and uses `argpartition` (O(n_vocab)), so everything after it works on k entries; only a
disabled top-k makes top-p sort the whole vocabulary. Per token this is a handful of numpy
calls, no Python loop over the vocabulary.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from .errors import InvalidArgumentError

LogitsProcessor = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (input_ids, scores) -> scores


# ---------------------------------------------------------------------------------------------
# Parameters

@dataclass
class SamplingParams:
    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    typical_p: float = 1.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64          # 0 = no penalty window, -1 = the whole context
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: Mapping[int, float] = field(default_factory=dict)
    logits_processor: Sequence[LogitsProcessor] = ()

    def validate(self, n_vocab: int) -> "SamplingParams":
        """Raise InvalidArgumentError naming the parameter, its value and the valid range."""
        def number(name, lo=None, hi=None, lo_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
                raise InvalidArgumentError(f"{name} must be a finite number, got {v!r}")
            if lo is not None and (v <= lo if lo_open else v < lo):
                raise InvalidArgumentError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v}")
            if hi is not None and v > hi:
                raise InvalidArgumentError(f"{name} must be <= {hi}, got {v}")

        def integer(name, lo):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise InvalidArgumentError(f"{name} must be an integer, got {v!r}")
            if v < lo:
                raise InvalidArgumentError(f"{name} must be >= {lo}, got {v}")

        number("temperature", 0)
        integer("top_k", 0)
        number("top_p", 0, 1, lo_open=True)
        number("min_p", 0, 1)
        number("typical_p", 0, 1, lo_open=True)
        number("repeat_penalty", 0, lo_open=True)
        integer("repeat_last_n", -1)
        number("frequency_penalty", -2, 2)
        number("presence_penalty", -2, 2)
        if not isinstance(self.logit_bias, Mapping):
            raise InvalidArgumentError(f"logit_bias must be a dict {{token_id: bias}}, got {type(self.logit_bias).__name__}")
        for tok, bias in self.logit_bias.items():
            if isinstance(tok, bool) or not isinstance(tok, (int, np.integer)) or not 0 <= tok < n_vocab:
                raise InvalidArgumentError(f"logit_bias key {tok!r} is not a token id in [0, {n_vocab})")
            if isinstance(bias, bool) or not isinstance(bias, (int, float, np.integer, np.floating)) or math.isnan(bias):
                raise InvalidArgumentError(f"logit_bias[{tok}] must be a number (-inf bans the token), got {bias!r}")
        if callable(self.logits_processor):
            self.logits_processor = [self.logits_processor]
        for p in self.logits_processor or ():
            if not callable(p):
                raise InvalidArgumentError(f"logits_processor entries must be callables (input_ids, scores) -> scores, got {p!r}")
        return self


# ---------------------------------------------------------------------------------------------
# Filters on a candidate set (ids, logits)

def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max())
    return z / z.sum()


def apply_penalties(logits: np.ndarray, window: np.ndarray, repeat_penalty: float,
                    frequency_penalty: float, presence_penalty: float) -> None:
    """In place, llama.cpp's formula for each token seen `count` times in `window`:
    logit > 0 -> logit / repeat_penalty, else logit * repeat_penalty; then
    logit -= count * frequency_penalty + (count > 0) * presence_penalty."""
    if len(window) == 0 or (repeat_penalty == 1.0 and frequency_penalty == 0.0 and presence_penalty == 0.0):
        return
    ids, counts = np.unique(np.asarray(window, dtype=np.int64), return_counts=True)
    seen = logits[ids]
    seen = np.where(seen > 0, seen / repeat_penalty, seen * repeat_penalty)
    logits[ids] = seen - counts * frequency_penalty - presence_penalty


_BLOCK = 64


def largest_indices(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, unordered, in about O(n) with a small constant.

    argpartition over a 50k vocabulary costs ~1.4 ms; instead take the k-th largest of the
    per-block maxima — at least k values are >= it, so it bounds the k-th largest value from
    below — and argpartition only the few values above that bound."""
    n = len(values)
    n_blocks = n // _BLOCK
    if k >= n:
        return np.arange(n)
    if n_blocks < 4 * k:
        return np.argpartition(-values, k - 1)[:k]
    block_max = values[:n_blocks * _BLOCK].reshape(n_blocks, _BLOCK).max(axis=1)
    bound = np.partition(block_max, n_blocks - k)[n_blocks - k]
    cand = np.flatnonzero(values >= bound)
    if n_blocks * _BLOCK < n:  # the tail outside whole blocks is always a candidate
        cand = np.union1d(cand, np.arange(n_blocks * _BLOCK, n))
    if len(cand) <= k:
        return cand
    return cand[np.argpartition(-values[cand], k - 1)[:k]]


def _ranked(ids: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The order of a candidate set: logit descending, ties by ascending id. The native chain
    (csrc/sampling/sampler.cpp) orders its candidates the same, so for one uniform draw both
    pick the same token."""
    return np.lexsort((ids, -logits))


def top_k(ids: np.ndarray, logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k highest logits (k <= 0 or k >= n: unchanged), ranked (see _ranked)."""
    if k <= 0 or k >= len(logits):
        return ids, logits
    keep = largest_indices(logits, k)
    keep = keep[_ranked(ids[keep], logits[keep])]
    return ids[keep], logits[keep]


def typical(ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Locally typical sampling: keep the tokens whose surprise is closest to the entropy,
    until their probability mass exceeds p."""
    if p >= 1.0:
        return ids, logits
    probs = softmax(logits)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(probs)
        entropy = -np.nansum(probs * logp)
    shifted = np.abs(-logp - entropy)
    order = np.argsort(shifted, kind="stable")
    cum = np.cumsum(probs[order])
    n = max(int(np.searchsorted(cum, p, side="right")) + 1, min_keep)  # first index with cum > p, inclusive
    keep = order[:min(n, len(order))]
    return ids[keep], logits[keep]


def top_p(ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus: the smallest most-probable prefix whose probability reaches p. Sorts the set.

    Without a top-k before it the set is the whole vocabulary; rather than sort it all, sort
    the m most probable (m = 256, 1024, ...) until their mass, normalized over everything,
    reaches p."""
    if p >= 1.0:
        return ids, logits
    n = len(logits)
    w = np.exp(logits.astype(np.float64) - float(logits.max()))
    total = w.sum()
    m = min(n, 256)
    while True:
        sel = np.arange(n) if m >= n else largest_indices(logits, m)
        sel = sel[_ranked(ids[sel], logits[sel])]
        cum = np.cumsum(w[sel]) / total
        cut = int(np.searchsorted(cum, p, side="left"))  # first index with cum >= p
        if cut < len(sel) or m >= n:
            break
        m = min(n, m * 4)
    keep = sel[:min(max(cut + 1, min_keep), len(sel))]
    return ids[keep], logits[keep]


def min_p(ids: np.ndarray, logits: np.ndarray, p: float, min_keep: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Keep tokens with probability >= p * the top probability (logit >= max + log p)."""
    if p <= 0.0:
        return ids, logits
    keep = logits >= logits.max() + math.log(p)
    if keep.sum() < min_keep:
        return top_k(ids, logits, min_keep)
    return ids[keep], logits[keep]


# ---------------------------------------------------------------------------------------------
# The chain

class Sampler:
    """One generation's sampler: parameters, precomputed bias arrays and the random generator.

    Without logits processors or typical sampling, `sample` runs the same chain natively
    (`_core.Sampler`, csrc/sampling/sampler.cpp: no numpy calls per token), fed this
    generator's uniform draw, so a seed gives the same tokens either way (up to float
    rounding at a draw's boundary, and which of exactly tied logits top-k keeps).
    native=False forces the numpy chain."""

    def __init__(self, params: SamplingParams, n_vocab: int, rng: np.random.Generator, native: bool = True):
        self.p = params
        self.n_vocab = n_vocab
        self.rng = rng
        bias = params.logit_bias or {}
        self._bias_ids = np.fromiter(bias.keys(), dtype=np.int64, count=len(bias))
        self._bias_vals = np.fromiter(bias.values(), dtype=np.float32, count=len(bias))
        self._all_ids = np.arange(n_vocab)
        self._native = None
        if native and not params.logits_processor and params.typical_p >= 1.0:
            from . import _core

            self._native = _core.Sampler(
                n_vocab, temperature=float(params.temperature), top_k=int(params.top_k), top_p=float(params.top_p),
                min_p=float(params.min_p), repeat_penalty=float(params.repeat_penalty),
                repeat_last_n=int(params.repeat_last_n), frequency_penalty=float(params.frequency_penalty),
                presence_penalty=float(params.presence_penalty),
                logit_bias=[(int(t), float(np.float32(b))) for t, b in bias.items()])

    def prepare(self, logits: np.ndarray, history: np.ndarray) -> np.ndarray:
        """Logits after bias, processors and penalties (a float32 copy; `logits` is untouched)."""
        p = self.p
        logits = np.array(logits, dtype=np.float32, copy=True).reshape(-1)
        if len(self._bias_ids):
            logits[self._bias_ids] += self._bias_vals
        for proc in p.logits_processor or ():
            out = proc(history, logits)
            logits = np.asarray(logits if out is None else out, dtype=np.float32).reshape(-1)
            if logits.shape[0] != self.n_vocab:
                raise InvalidArgumentError(f"a logits_processor returned {logits.shape[0]} scores, expected {self.n_vocab}")
        if p.repeat_last_n != 0:
            window = history if p.repeat_last_n < 0 else history[-p.repeat_last_n:]
            apply_penalties(logits, window, p.repeat_penalty, p.frequency_penalty, p.presence_penalty)
        return logits

    def candidates(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The truncated candidate set after top-k, typical, top-p and min-p (before temperature)."""
        p = self.p
        ids, cand = top_k(self._all_ids, logits, p.top_k)
        ids, cand = typical(ids, cand, p.typical_p)
        ids, cand = top_p(ids, cand, p.top_p)
        ids, cand = min_p(ids, cand, p.min_p)
        return ids, cand

    def sample(self, logits: np.ndarray, history: np.ndarray) -> int:
        """Next token id from one row of raw logits; `history` are the ids before it (for penalties
        and processors)."""
        if self._native is not None:
            u = self.rng.random() if self.p.temperature > 0 else 0.0  # greedy draws nothing, as below
            return self._native.sample(logits, history, u)
        logits = self.prepare(logits, history)
        if not np.isfinite(logits.max()):
            raise InvalidArgumentError("every token has logit -inf or NaN after logit_bias/logits_processor; "
                                       "nothing can be sampled")
        if self.p.temperature == 0.0:  # greedy: what llama.cpp's temp <= 0 reduces to
            return int(np.argmax(logits))
        ids, cand = self.candidates(logits)
        probs = softmax(cand.astype(np.float64) / self.p.temperature)
        cum = np.cumsum(probs)
        i = int(np.searchsorted(cum, self.rng.random() * cum[-1], side="right"))
        return int(ids[min(i, len(ids) - 1)])


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    m = z.max()
    return z - (m + math.log(np.exp(z - m).sum()))


def make_rng(seed: Optional[int]) -> np.random.Generator:
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise InvalidArgumentError(f"seed must be a non-negative integer or None, got {seed!r}")
    return np.random.default_rng(seed)
