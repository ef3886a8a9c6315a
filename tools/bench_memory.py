"""Decode speed and bytes of the kNN memory as it grows (issue 7).

The memory is filled with random f16 rows (the exact scan's cost does not depend on their
values), then decode steps are timed: tokens/s for dense `fot` and exact `knn` at each size.
--cpu-time reports the best CPU milliseconds per token on one thread instead, which a busy
shared machine disturbs far less than wall-clock tokens/s.

    PYTHONPATH=. python tools/bench_memory.py --sizes 16k,64k,256k --threads 2
    PYTHONPATH=. python tools/bench_memory.py --sizes 16k,64k,256k --cpu-time
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import pyllong
from pyllong import _core


def _size(s: str) -> int:
    s = s.strip().lower()
    return int(s[:-1]) * 1024 if s.endswith("k") else int(s)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2")
    p.add_argument("--sizes", default="16k,64k,256k")
    p.add_argument("--modes", default="none,fot,knn,ivf", help="none, fot, knn (exact scan), ivf (knn, IVF index)")
    p.add_argument("--n-probe", type=int, default=8)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--layers", default=None, help="memory layers (default: Memory's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--cpu-time", action="store_true", help="best CPU ms per token, 1 thread")
    a = p.parse_args()
    from pyllong.hub import resolve
    from pyllong.memory import default_layers

    path = str(resolve(a.model, quiet=True))
    mf = _core.ModelFile(path)
    hp = mf.hparams
    layers = [int(x) for x in a.layers.split(",")] if a.layers else default_layers(int(hp["n_layer"]))
    kv_dim = int(hp["n_head_kv"]) * int(hp["head_dim"])
    rng = np.random.default_rng(0)

    if a.cpu_time:
        a.threads = 1
    print(f"model {path}\nmemory layers {layers}, kv_dim {kv_dim}, {a.threads} threads, {a.steps} decode steps")
    speed = "CPU ms/token" if a.cpu_time else "tok/s"
    print(f"{'memory tokens':>14} {'mode':>5} {speed:>12} {'memory MB':>10} {'append us/token':>16}")
    for n in [_size(s) for s in a.sizes.split(",")]:
        rows = (rng.standard_normal((n, kv_dim)) * 0.5).astype(np.float16).view(np.uint16)
        for mode in a.modes.split(","):
            W = 512
            mem = None if mode == "none" else dict(layers=layers, window=W, last_context_length=W // 2,
                                                    mode="fot" if mode == "fot" else "knn", k=a.k, cap=0,
                                                    ivf=mode == "ivf", n_probe=a.n_probe, ivf_min=4096)
            ctx = _core.Context(mf, n_ctx=W, n_threads=a.threads, n_batch=512, memory=mem)
            build = 0.0
            if mem:
                t0 = time.perf_counter()
                for slot in range(len(layers)):  # in windows of W rows, as flushes add them
                    for s in range(0, n, W):
                        ctx.memory.append_f16(slot, rows[s:s + W], rows[s:s + W])
                build = time.perf_counter() - t0
            ctx.eval(np.arange(100, 164, dtype=np.int32), False)  # a little local context
            t0, best = time.perf_counter(), float("inf")
            for i in range(a.steps):
                c0 = time.process_time()
                ctx.eval(np.array([200 + i], dtype=np.int32), False)
                best = min(best, time.process_time() - c0)
            dt = time.perf_counter() - t0
            mb = ctx.memory.bytes / 2**20 if mem else 0.0
            per_tok = 1e6 * build / n if mem else 0.0  # all memory layers: copy (+ index build for ivf)
            value = 1e3 * best if a.cpu_time else a.steps / dt
            print(f"{n:>14} {mode:>5} {value:>12.1f} {mb:>10.1f} {per_tok:>16.2f}", flush=True)


if __name__ == "__main__":
    main()
