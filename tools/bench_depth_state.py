"""Decode speed at depth, from a saved cache state: the first run fills D random tokens and
saves the context's state (`_core.save_state`) under --state-dir; later runs load it in
seconds instead of refilling (a 16k fill takes minutes on 2 cores). Then R repetitions of N
single-token evals (as `pyllong bench`'s tgN), each truncating back to the D cached tokens.
Running plain and SelfExtend one after the other, several times, gives paired figures under
the same load:

    PYTHONPATH=. python tools/bench_depth_state.py -d 16384 -t 2 -n 16 -r 3
    PYTHONPATH=. python tools/bench_depth_state.py -d 16384 -t 2 -n 16 -r 3 --self-extend 8,1024
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from pyllong import _core
from pyllong.hub import resolve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-m", "--model", default="smollm2", help="registry name or .gguf path")
    ap.add_argument("-d", "--depth", type=int, default=16384)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-n", "--n-gen", type=int, default=16)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument("--self-extend", default=None, help="G,W")
    ap.add_argument("--state-dir", default="/tmp/pyllong-depth-states")
    a = ap.parse_args()
    path = a.model if a.model.endswith(".gguf") else str(resolve(a.model))
    se = tuple(int(x) for x in a.self_extend.split(",")) if a.self_extend else None
    mf = _core.ModelFile(path)
    n_vocab = int(mf.hparams["n_vocab"])
    ctx = _core.Context(mf, a.depth + a.n_gen + 1, a.threads, 512, "f16", se, 0)
    os.makedirs(a.state_dir, exist_ok=True)
    tag = f"se{se[0]}x{se[1]}" if se else "plain"
    state = os.path.join(a.state_dir, f"{os.path.basename(path)}.d{a.depth}.{tag}.state")
    rng = np.random.default_rng(0)
    if os.path.exists(state):
        with open(state, "rb") as f:
            _core.load_state(ctx, f.read(), lambda tokens, extra: None)
    else:
        t0 = time.time()
        for s in range(0, a.depth, 512):
            ctx.eval(rng.integers(0, n_vocab, min(512, a.depth - s), dtype=np.int32), False)
        print(f"filled {a.depth} tokens in {time.time() - t0:.1f} s", flush=True)
        with open(state, "wb") as f:
            f.write(_core.save_state(ctx, np.zeros(a.depth, np.int32), b""))
    ctx.eval(rng.integers(0, n_vocab, 1, dtype=np.int32), False)  # warm-up
    ctx.truncate(a.depth)
    ts = []
    for _ in range(a.repetitions):
        t0 = time.perf_counter()
        for _ in range(a.n_gen):
            ctx.eval(rng.integers(0, n_vocab, 1, dtype=np.int32), False)
        ts.append(a.n_gen / (time.perf_counter() - t0))
        ctx.truncate(a.depth)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"tg{a.n_gen} @ d{a.depth} {tag} t{a.threads}: " + " ".join(f"{x:.2f}" for x in ts) +
          f" tok/s (load {load})")


if __name__ == "__main__":
    main()
