"""Perplexity over a text, by llama-perplexity's method so the numbers compare:

the text is tokenized once (BOS per the vocabulary), cut into chunks of n_ctx tokens (a
chunk's first token replaced by BOS when the vocabulary adds one), each chunk evaluated from
an empty cache, and only the second half of each chunk scored (every scored token has at
least n_ctx/2 tokens of context). The error is the standard error of the mean NLL, scaled
to PPL, as llama.cpp prints it.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from .errors import InvalidArgumentError
from .model import Model


def _nll_rows(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits[i])[targets[i]] for each row, in float64."""
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    return lse - z[np.arange(len(targets)), targets]


def perplexity(model: Model, text: str, max_chunks: Optional[int] = None,
               on_chunk: Optional[Callable[[int, int, float], None]] = None) -> dict:
    """PPL of `text` with chunks of model.n_ctx tokens. on_chunk(i, n_chunks, running_ppl)
    is called after each chunk. Returns {ppl, stderr, n_chunks, n_ctx, n_tokens, n_scored}."""
    n_ctx = model.n_ctx
    if n_ctx < 4:
        raise InvalidArgumentError(f"perplexity needs a context of at least 4 tokens, got {n_ctx}")
    tokens = np.asarray(model.tokenize(text, add_special=True, parse_special=False), dtype=np.int64)
    if len(tokens) < 2 * n_ctx:
        raise InvalidArgumentError(
            f"the text has {len(tokens)} tokens; perplexity with a context of {n_ctx} needs at least "
            f"{2 * n_ctx} (two chunks). Use a longer text or a smaller --ctx")
    n_chunks = len(tokens) // n_ctx
    if max_chunks is not None:
        n_chunks = min(n_chunks, max_chunks)
    add_bos = bool(model.model_file.vocab["add_bos"]) and model.bos >= 0
    first = n_ctx // 2
    nll = nll2 = 0.0
    count = 0
    for c in range(n_chunks):
        chunk = tokens[c * n_ctx:(c + 1) * n_ctx].copy()
        if add_bos:
            chunk[0] = model.bos
        model.reset()
        logits = model.eval(chunk.tolist(), logits_all=True)
        # row j predicts token j + 1; score rows first .. n_ctx - 2
        v = _nll_rows(np.asarray(logits[first:n_ctx - 1]), tokens[c * n_ctx + first + 1:(c + 1) * n_ctx])
        nll += float(v.sum())
        nll2 += float((v * v).sum())
        count += len(v)
        if on_chunk:
            on_chunk(c, n_chunks, math.exp(nll / count))
    model.reset()
    mean = nll / count
    ppl = math.exp(mean)
    var = nll2 / count - mean * mean
    stderr = math.sqrt(var / (count - 1)) * ppl if var > 0 and count > 1 else 0.0
    return {"ppl": ppl, "stderr": stderr, "n_chunks": n_chunks, "n_ctx": n_ctx, "n_tokens": int(len(tokens)),
            "n_scored": count, "mean_nll": mean}
