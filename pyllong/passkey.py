"""The passkey retrieval test (llama.cpp's llama-passkey prompt): a 5-digit key hidden at a
chosen depth in repeated filler text, answered greedily and checked by its digits."""
from __future__ import annotations

import random
import re
from typing import Callable, Optional

PREFIX = ("There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
          "I will quiz you about the important information there.")
FILLER = " The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
KEY_LINE = " The pass key is {key}. Remember it. {key} is the pass key."
QUESTION = " What is the pass key? The pass key is"


def build_prompt(tokenize: Callable[[str], list], n_tokens: int, depth: float, key: int) -> str:
    """A prompt of about n_tokens tokens with the key line at `depth` (0 = start, 1 = end) of the filler."""
    fixed = len(tokenize(PREFIX + KEY_LINE.format(key=key) + QUESTION))
    per_filler = len(tokenize(FILLER * 8)) / 8
    n_filler = max(1, int((n_tokens - fixed) / per_filler))
    at = round(depth * n_filler)
    return PREFIX + FILLER * at + KEY_LINE.format(key=key) + FILLER * (n_filler - at) + QUESTION


def run(model, lengths: list[int], depths: list[float], trials: int = 1, seed: int = 0,
        on_result: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """One greedy answer per (length, depth, trial); returns the records."""
    rng = random.Random(seed)
    tok = lambda s: model.tokenize(s, add_special=False)  # noqa: E731
    records = []
    for n in lengths:
        for d in depths:
            for t in range(trials):
                key = rng.randint(10000, 99999)
                prompt = build_prompt(tok, n, d, key)
                model.reset()
                out = model.generate(prompt, max_tokens=8, temperature=0, repeat_penalty=1.0)
                digits = re.findall(r"\d+", str(out))
                rec = {"length": n, "n_prompt": len(model.tokenize(prompt)), "depth": d, "trial": t, "key": key,
                       "answer": str(out).strip(), "correct": bool(digits) and digits[0] == str(key)}
                records.append(rec)
                if on_result:
                    on_result(rec)
    return records


def table(records: list[dict]) -> str:
    lengths = sorted({r["length"] for r in records})
    depths = sorted({r["depth"] for r in records})
    head = "length \\ depth " + " ".join(f"{d:>6.2f}" for d in depths) + "    all"
    lines = [head]
    for n in lengths:
        row = []
        for d in depths:
            rs = [r for r in records if r["length"] == n and r["depth"] == d]
            row.append(f"{sum(r['correct'] for r in rs) / len(rs):>6.0%}")
        rs = [r for r in records if r["length"] == n]
        lines.append(f"{n:>14} " + " ".join(row) + f" {sum(r['correct'] for r in rs) / len(rs):>6.0%}")
    return "\n".join(lines)


def _pyplot():
    """matplotlib.pyplot without a display, or a clear error when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plot needs matplotlib: pip install matplotlib") from None
    return plt


def plot(records: list[dict], path: str, title: str) -> None:
    """The green/red length x depth accuracy grid."""
    plt = _pyplot()
    from matplotlib.colors import LinearSegmentedColormap
    import numpy as np

    lengths = sorted({r["length"] for r in records})
    depths = sorted({r["depth"] for r in records})
    acc = np.array([[np.mean([r["correct"] for r in records if r["length"] == n and r["depth"] == d])
                     for n in lengths] for d in depths])
    cmap = LinearSegmentedColormap.from_list("rg", ["#d62728", "#ffdd57", "#2ca02c"])
    fig, ax = plt.subplots(figsize=(1.2 * len(lengths) + 2, 0.6 * len(depths) + 1.5))
    im = ax.imshow(acc, cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(lengths)), [f"{n // 1024}k" if n >= 1024 else str(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{d:.0%}" for d in depths])
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("passkey depth")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
