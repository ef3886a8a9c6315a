"""Soak: thousands of generate calls with random options and random bytes as prompts on a tiny
synthetic model, watching for crashes, untyped exceptions and memory growth.

    PYTHONPATH=. python tools/soak.py --calls 3000 --seed 1

Each call draws its sampling options (temperature, top-k/p, min-p, typical, penalties, seeds,
logit bias, logprobs, stop strings, stream or not, a stream closed early), and its prompt (random
bytes, random token ids, a chat). Every few calls it also saves and restores the state or resets
the model. Only pyllong's typed errors for inputs that really are bad (an empty or too long
prompt) are expected; anything else stops the soak with exit status 1. RSS is sampled every
--every calls after a warm-up; growth beyond --max-growth-mb between the first sample and the
last also fails. Prints one JSON summary line (the figures recorded in BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import traceback

# The pyllong under test: the installed one, or PYTHONPATH=. in a built checkout.
import pyllong  # noqa: E402
from pyllong.errors import ContextOverflowError, InvalidArgumentError  # noqa: E402
from pyllong.models.synthetic import cached_model, preset_params  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def random_options(rng: random.Random, n_vocab: int) -> dict:
    o = {"max_tokens": rng.choice([0, 1, 2, rng.randint(1, 48), None if rng.random() < 0.05 else 16])}
    o["temperature"] = rng.choice([0.0, rng.uniform(0.01, 2.0), 1.0])
    o["top_k"] = rng.choice([0, 1, rng.randint(1, 100), n_vocab + 5])
    o["top_p"] = rng.choice([1.0, rng.uniform(0.01, 1.0)])
    o["min_p"] = rng.choice([0.0, rng.uniform(0.0, 0.5)])
    o["typical_p"] = rng.choice([1.0, rng.uniform(0.05, 1.0)])
    o["repeat_penalty"] = rng.choice([1.0, rng.uniform(0.5, 2.0)])
    o["repeat_last_n"] = rng.choice([-1, 0, rng.randint(1, 128)])
    o["frequency_penalty"] = rng.uniform(-2, 2) if rng.random() < 0.3 else 0.0
    o["presence_penalty"] = rng.uniform(-2, 2) if rng.random() < 0.3 else 0.0
    o["seed"] = rng.choice([None, rng.randrange(2**32)])
    if rng.random() < 0.3:
        o["logit_bias"] = {rng.randrange(n_vocab): rng.choice([-100.0, 5.0, float("-inf")]) for _ in range(rng.randint(1, 5))}
    if rng.random() < 0.2:
        o["logprobs"] = rng.randint(0, 5)
    if rng.random() < 0.3:
        o["stop"] = [bytes(rng.randrange(32, 127) for _ in range(rng.randint(1, 3))).decode() for _ in range(rng.randint(1, 3))]
    return o


def random_prompt(rng: random.Random, n_vocab: int):
    r = rng.random()
    if r < 0.7:
        return bytes(rng.randrange(256) for _ in range(rng.choice([0, rng.randint(1, 40), rng.randint(1, 400)])))
    if r < 0.9:
        return [rng.randrange(n_vocab) for _ in range(rng.randint(0, 120))]
    return "".join(chr(rng.choice([rng.randrange(32, 127), rng.randrange(0x80, 0x2FFF)])) for _ in range(rng.randint(0, 60)))


def one_call(m: pyllong.Model, rng: random.Random, stats: dict) -> None:
    opts = random_options(rng, m.n_vocab)
    prompt = random_prompt(rng, m.n_vocab)
    try:
        if rng.random() < 0.1:
            text = prompt.decode("utf-8", "replace") if isinstance(prompt, bytes) else str(prompt)
            res = m.chat([{"role": "user", "content": text}], **opts)
        elif rng.random() < 0.3:
            s = m.generate(prompt, stream=True, **opts)
            stop_after = rng.choice([None, 0, 1, 3])
            for i, _ in enumerate(s):
                if stop_after is not None and i >= stop_after:
                    s.close()
                    break
            res = s.result
        else:
            res = m.generate(prompt, **opts)
        stats["tokens"] += len(res.tokens) if res is not None else 0
        stats["ok"] += 1
    except (ContextOverflowError, InvalidArgumentError) as e:
        # Bad inputs that really are bad: an empty prompt, or one longer than the context.
        msg = str(e)
        if "empty" not in msg and "context" not in msg and "do not fit" not in msg:
            raise
        stats[type(e).__name__] = stats.get(type(e).__name__, 0) + 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--preset", default="tiny-llama-bpe")
    ap.add_argument("--n-ctx", type=int, default=256)
    ap.add_argument("--every", type=int, default=100, help="sample RSS every N calls")
    ap.add_argument("--warmup", type=int, default=200, help="calls before the first RSS sample")
    ap.add_argument("--max-growth-mb", type=float, default=16.0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    path = cached_model(**preset_params(args.preset))
    models = [pyllong.Model(path, n_ctx=args.n_ctx, n_threads=1, seed=args.seed),
              pyllong.Model(path, n_ctx=args.n_ctx, n_threads=1, context_shift=True)]
    stats = {"ok": 0, "tokens": 0, "state_round_trips": 0, "resets": 0}
    samples = []
    t0 = time.time()
    for i in range(args.calls):
        m = models[rng.random() < 0.3]
        try:
            one_call(m, rng, stats)
            r = rng.random()
            if r < 0.03:
                blob = m.state_bytes()
                m.load_state_bytes(blob)
                stats["state_round_trips"] += 1
            elif r < 0.05:
                m.reset()
                stats["resets"] += 1
        except Exception:
            traceback.print_exc()
            print(json.dumps({"failed_at_call": i, **stats}), flush=True)
            return 1
        if i + 1 >= args.warmup and (i + 1 - args.warmup) % args.every == 0:
            samples.append(round(rss_mb(), 1))
    samples.append(round(rss_mb(), 1))
    growth = samples[-1] - samples[0]
    summary = {"calls": args.calls, "seconds": round(time.time() - t0, 1), "rss_mb_start": samples[0],
               "rss_mb_end": samples[-1], "rss_mb_max": max(samples), "rss_growth_mb": round(growth, 1),
               "rss_samples": len(samples), **stats}
    print(json.dumps(summary), flush=True)
    if growth > args.max_growth_mb:
        print(f"soak: RSS grew by {growth:.1f} MB (> {args.max_growth_mb})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
