"""Does the Attention Transition help? Facts placed mid-prompt in long prompts (inside the
training window) and perplexity, with and without it, on one model (default SmolLM2).

Facts: each prompt is real English filler (the pydoc topics text of tools/peer/make_ppl_text.py)
with three "The access code for room NAME is NNNNN." sentences at depths 0.4, 0.5 and 0.6 and a
question about one of them at the end. Scored teacher-forced in one pass: the code's mean
log-probability and whether every code token is the argmax (what greedy decoding would write).
Perplexity: pyllong.perplexity on the same text, chunks of --ppl-ctx tokens.

    PYTHONPATH=. nice python tools/transition_eval.py --lengths 1000,1800 --trials 10 --json out.json
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "peer"))

import pyllong  # noqa: E402
from pyllong.perplexity import perplexity  # noqa: E402

NAMES = ["Amber", "Birch", "Cobalt", "Dune", "Ember", "Fjord", "Garnet", "Harbor", "Indigo", "Juniper", "Kestrel",
         "Lumen", "Maple", "Nimbus", "Onyx", "Pebble"]


def filler_text() -> str:
    from make_ppl_text import text
    return text()


def make_case(model, filler_tokens: list[int], length: int, rng) -> tuple[list[int], list[int], dict]:
    """Prompt tokens (about `length`), the answer's tokens, and what was placed where."""
    names = rng.choice(NAMES, 3, replace=False)
    codes = [str(c) for c in rng.integers(10000, 99999, 3)]
    facts = [model.tokenize(f" The access code for room {n} is {c}. ", add_special=False) for n, c in zip(names, codes)]
    ask = int(rng.integers(0, 3))
    q = model.tokenize(f"\n\nQuestion: What is the access code for room {names[ask]}?\nAnswer: The access code for "
                       f"room {names[ask]} is", add_special=False)
    body_len = length - sum(map(len, facts)) - len(q)
    start = int(rng.integers(0, len(filler_tokens) - body_len))
    body = list(filler_tokens[start:start + body_len])
    out, at = [], 0
    for depth, f in zip((0.4, 0.5, 0.6), facts):
        cut = int(depth * body_len)
        out += body[at:cut] + f
        at = cut
    out += body[at:] + q
    answer = model.tokenize(" " + codes[ask], add_special=False)
    return out, answer, {"ask": str(names[ask]), "code": codes[ask], "depth": (0.4, 0.5, 0.6)[ask]}


def score(model, prompt: list[int], answer: list[int]) -> tuple[float, bool]:
    model.reset()
    logits = np.asarray(model.eval(prompt + answer, logits_all=True), dtype=np.float64)
    rows = logits[len(prompt) - 1:len(prompt) - 1 + len(answer)]
    lse = rows.max(1) + np.log(np.exp(rows - rows.max(1, keepdims=True)).sum(1))
    lp = rows[np.arange(len(answer)), answer] - lse
    return float(lp.mean()), bool((rows.argmax(1) == np.asarray(answer)).all())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="smollm2")
    ap.add_argument("--lengths", default="1000,1800", help="prompt lengths in tokens (comma-separated)")
    ap.add_argument("--trials", type=int, default=10, help="prompts per length")
    ap.add_argument("--ppl-ctx", type=int, default=1024)
    ap.add_argument("--ppl-chunks", type=int, default=4)
    ap.add_argument("--transition", default="0.5,0.1,2", help="ALPHA,BETA,BANDS of the run with the edit")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the records here")
    a = ap.parse_args(argv)
    from pyllong.transition import parse_transition
    configs = {"off": None, "on": parse_transition(a.transition)}
    lengths = [int(x) for x in a.lengths.split(",")]
    text = filler_text()
    res = {"model": None, "transition": a.transition, "facts": [], "ppl": {}}
    for label, tr in configs.items():
        t0 = time.time()
        model = pyllong.Model(a.model, n_ctx=max(lengths) + 64, n_threads=a.threads, transition=tr)
        res["model"] = model.path
        filler = model.tokenize(text, add_special=False)
        rng = np.random.default_rng(a.seed)  # the same prompts for both settings
        for length in lengths:
            for i in range(a.trials):
                prompt, answer, info = make_case(model, filler, length, rng)
                lp, hit = score(model, prompt, answer)
                res["facts"].append({"setting": label, "length": length, "trial": i, "logprob": lp, "hit": hit, **info})
        pm = pyllong.Model(a.model, n_ctx=a.ppl_ctx, n_threads=a.threads, transition=tr)
        res["ppl"][label] = perplexity(pm, text, max_chunks=a.ppl_chunks)
        print(f"{label}: {time.time() - t0:.0f} s", file=sys.stderr)
    print(f"| setting | length | facts retrieved (greedy) | mean log p(code) |\n|---|---:|---:|---:|")
    for length in lengths:
        for label in configs:
            rs = [r for r in res["facts"] if r["setting"] == label and r["length"] == length]
            print(f"| {label} | {length} | {sum(r['hit'] for r in rs)}/{len(rs)} | "
                  f"{np.mean([r['logprob'] for r in rs]):.3f} |")
    for label in configs:
        p = res["ppl"][label]
        print(f"PPL {label}: {p['ppl']:.4f} ± {p['stderr']:.4f} (ctx {p['n_ctx']}, {p['n_chunks']} chunks)")
    pairs = [(r, s) for r in res["facts"] if r["setting"] == "off"
             for s in res["facts"] if s["setting"] == "on" and (s["length"], s["trial"]) == (r["length"], r["trial"])]
    d = np.array([s["logprob"] - r["logprob"] for r, s in pairs])
    print(f"paired log p difference (on - off): mean {d.mean():+.4f}, sd {d.std(ddof=1):.4f}, n {len(d)}, "
          f"better in {(d > 0).sum()}, worse in {(d < 0).sum()}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
