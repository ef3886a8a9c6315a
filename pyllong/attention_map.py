"""Attention capture and the Ghost-Attention picture (Llama 2, §3.3; ../shared/spec/ghost-attention.md).

`capture_chat` runs a chat (system instruction + user messages) with the native attention loop
recording the probabilities of the chosen layers and heads (on request only: nothing is
recorded or paid for otherwise), and returns them with the token spans of the instruction and
of each turn. `draw` writes the PNG: the heat map of dialogue tokens (rows) against context
tokens (columns) with the instruction's columns marked, and the attention mass on the
instruction per turn.

    from pyllong import Model
    from pyllong.attention_map import capture_chat, draw
    cap = capture_chat(Model("smollm2", n_ctx=1024), "Always answer in French.", ["Hi!", "How are you?"])
    draw(cap, "gatt.png")
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from .errors import Error, InvalidArgumentError
from .model import Model


@dataclass
class CapturedAttention:
    probs: np.ndarray            # (n_layer_sel, n_head_sel, n, n): [layer, head, query position, key position]
    layers: list[int]
    heads: list[int]
    tokens: list[int]            # the n cached tokens
    pieces: list[str]            # their text
    instruction: tuple[int, int]  # token span [a, b) of the instruction
    turns: list[tuple[int, int]] = field(default_factory=list)  # token span of each user turn + its reply

    def mean(self) -> np.ndarray:
        """(n, n): averaged over the captured layers and heads."""
        return self.probs.mean(axis=(0, 1))

    def instruction_mass(self, per_head: bool = False) -> np.ndarray:
        """Attention mass on the instruction's columns, averaged over each turn's rows: (n_turns,),
        or (n_turns, n_head_sel) averaged over layers with per_head."""
        a, b = self.instruction
        mass = self.probs[..., a:b].sum(-1)  # (L, H, n)
        mass = mass.mean(0) if per_head else mass.mean((0, 1))
        return np.array([mass[..., s:e].mean(-1) for s, e in self.turns])


def _check_index_list(name: str, v, n: int) -> list[int]:
    try:
        out = sorted({int(x) for x in v})
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{name} must be a list of integers, got {v!r}") from None
    if not out or out[0] < 0 or out[-1] >= n:
        raise InvalidArgumentError(f"{name} must be non-empty indices in [0, {n}), got {v!r}")
    return out


def default_layers(n_layer: int, k: int = 4) -> list[int]:
    """k layers spread over the depth (first, last and between)."""
    return sorted({round(i * (n_layer - 1) / max(1, k - 1)) for i in range(k)})


def start_capture(model: Model, layers: Optional[Sequence[int]] = None, heads: Optional[Sequence[int]] = None):
    """Record these layers' and heads' attention from now on (all heads, default_layers() by default)."""
    hp = model.model_file.hparams
    n_layer, n_head = int(hp["n_layer"]), int(hp["n_head"])
    layers = default_layers(n_layer) if layers is None else _check_index_list("layers", layers, n_layer)
    heads = list(range(n_head)) if heads is None else _check_index_list("heads", heads, n_head)
    model.ctx.start_capture(layers, heads)
    return layers, heads


def _token_pieces(model: Model, tokens: Sequence[int]) -> list[bytes]:
    return [model.token_to_bytes(t, special=True) for t in tokens]


def find_span(model: Model, tokens: Sequence[int], text: str) -> tuple[int, int]:
    """Token span [a, b) covering the first occurrence of `text` in the tokens' bytes."""
    pieces = _token_pieces(model, tokens)
    blob = b"".join(pieces)
    at = blob.find(text.encode("utf-8"))
    if at < 0:
        raise InvalidArgumentError(f"the instruction {text[:40]!r} does not occur in the conversation's tokens")
    ends = np.cumsum([len(p) for p in pieces])
    a = int(np.searchsorted(ends, at, side="right"))
    b = int(np.searchsorted(ends, at + len(text.encode("utf-8")) - 1, side="right")) + 1
    return a, b


def capture_chat(model: Model, instruction: str, messages: Sequence[str], layers=None, heads=None,
                 max_tokens: int = 48, as_system: bool = True, **sampling) -> CapturedAttention:
    """Chat with `instruction` as the system prompt (or, as_system=False, prefixed to the first
    user message), capturing attention over the whole conversation. The conversation must fit
    in model.n_ctx (a capture follows positions; dropped turns would leave nothing to draw)."""
    from .session import ChatSession

    if not messages:
        raise InvalidArgumentError("give at least one user message")
    sampling.setdefault("temperature", 0)
    layers, heads = start_capture(model, layers, heads)
    try:
        model.reset()
        s = ChatSession(model, system=instruction if as_system else None, max_tokens=max_tokens, **sampling)
        bounds = []
        for i, msg in enumerate(messages):
            before = model.n_past
            s.send(msg if as_system or i else f"{instruction} {msg}")
            if s.dropped_turns:
                raise InvalidArgumentError(f"the conversation outgrew n_ctx={model.n_ctx} at message {i + 1}; "
                                           "use a larger n_ctx or fewer/shorter messages to capture it whole")
            bounds.append(before)
        bounds.append(model.n_past)
        probs = model.ctx.captured()
    finally:
        model.ctx.stop_capture()
    tokens = model.cached_tokens
    span = find_span(model, tokens, instruction)
    turns = [(max(bounds[i], span[1]), bounds[i + 1]) for i in range(len(messages))]
    pieces = [p.decode("utf-8", "replace") for p in _token_pieces(model, tokens)]
    return CapturedAttention(probs, layers, heads, tokens, pieces, span, turns)


def capture_prompt(model: Model, prompt: str, instruction: str, layers=None, heads=None) -> CapturedAttention:
    """One prompt (text, special tokens parsed), captured in its prefill; the whole prompt is one turn."""
    layers, heads = start_capture(model, layers, heads)
    try:
        model.reset()
        model.eval(model.tokenize(prompt, add_special=True, parse_special=True), logits_all=False)
        probs = model.ctx.captured()
    finally:
        model.ctx.stop_capture()
    tokens = model.cached_tokens
    span = find_span(model, tokens, instruction)
    pieces = [p.decode("utf-8", "replace") for p in _token_pieces(model, tokens)]
    return CapturedAttention(probs, layers, heads, tokens, pieces, span, [(span[1], len(tokens))])


def _pyplot():
    """matplotlib.pyplot without a display, or a clear error when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise Error("drawing the attention map needs matplotlib: pip install matplotlib") from None
    return plt


def draw(cap: CapturedAttention, path: str, title: Optional[str] = None, per_head: bool = False) -> None:
    """PNG: heat map (dialogue tokens x context tokens, instruction columns marked; log colour
    scale) and the attention mass on the instruction per turn."""
    plt = _pyplot()
    from matplotlib.colors import LogNorm

    a, b = cap.instruction
    n = len(cap.tokens)
    mats = [cap.mean()] if not per_head else [cap.probs[:, h].mean(0) for h in range(len(cap.heads))]
    rows = slice(b, n)  # the dialogue after the instruction
    ncol = 1 if not per_head else min(4, len(mats))
    nrow = 1 if not per_head else -(-len(mats) // ncol)
    fig = plt.figure(figsize=(5 * ncol + 1, 4.2 * nrow + 3))
    grid = fig.add_gridspec(nrow + 1, ncol, height_ratios=[4.2] * nrow + [2.2])
    for i, mat in enumerate(mats):
        ax = fig.add_subplot(grid[i // ncol, i % ncol])
        m = np.maximum(mat[rows], 1e-5)
        im = ax.imshow(m, aspect="auto", cmap="magma", norm=LogNorm(vmin=1e-4, vmax=1.0), interpolation="nearest",
                       extent=(-0.5, n - 0.5, n - 0.5, b - 0.5))
        ax.axvspan(a - 0.5, b - 0.5, color="cyan", alpha=0.15, lw=0)
        ax.axvline(a - 0.5, color="cyan", lw=0.8)
        ax.axvline(b - 0.5, color="cyan", lw=0.8)
        for s, _ in cap.turns[1:]:
            ax.axhline(s - 0.5, color="white", lw=0.4, alpha=0.6)
        ax.set_xlabel("context token (key position)")
        ax.set_ylabel("dialogue token (query position)")
        ax.set_title(f"head {cap.heads[i]}" if per_head else
                     f"layers {cap.layers}, mean of {len(cap.heads)} heads; instruction = cyan")
        fig.colorbar(im, ax=ax, fraction=0.04)
    ax = fig.add_subplot(grid[nrow, :])
    mass = cap.instruction_mass()
    ax.plot(range(1, len(mass) + 1), mass, "o-", color="#1f77b4")
    ax.set_xlabel("turn")
    ax.set_ylabel("attention on instruction")
    ax.set_ylim(0, max(0.05, float(mass.max()) * 1.15))
    ax.set_xticks(range(1, len(mass) + 1))
    ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
