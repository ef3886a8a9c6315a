"""Micro-benchmark of the quantized matmul kernels: GEMV GB/s (weight bytes streamed per
second) and GEMM GFLOP/s, per format and SIMD path.

    PYTHONPATH=. python tools/bench_matmul.py [--threads 2] [--types Q4_1,Q8_0] [--paths avx2]

Compare GEMV GB/s with the machine's read bandwidth (about 31 GB/s on the dev machines,
see DESIGN.md). Timings are medians of repeated calls through one persistent pool."""
import argparse
import time

import numpy as np

from pyllong import _core

SHAPES = [(1536, 576), (4096, 4096)]  # (n_out, n_in): SmolLM2 FFN up, a 7B square projection


def median_time(fn, min_time=0.3, min_reps=5):
    fn()  # warm-up (page faults, pool wake-up)
    times = []
    t_end = time.perf_counter() + min_time
    while len(times) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--types", default="Q4_0,Q4_1,Q8_0,Q4_K,Q5_K,Q6_K,F16,F32")
    ap.add_argument("--paths", default=",".join(_core.simd_paths()))
    ap.add_argument("--gemm-tokens", type=int, default=64, help="batch size of the GEMM measurement (0: skip)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    pool = _core.ThreadPool(args.threads)
    print(f"threads={args.threads}  paths available: {', '.join(_core.simd_paths())}")
    print(f"{'type':6} {'path':11} {'shape':>11} {'GEMV us':>9} {'GEMV GB/s':>10} {'GEMM GFLOP/s':>13}")
    for name in args.types.split(","):
        for n_out, n_in in SHAPES:
            if n_in % _core.block_elems(name):
                continue
            w = _core.quantize(name, (rng.standard_normal((n_out, n_in)) * 0.02).astype(np.float32))
            x1 = rng.standard_normal(n_in).astype(np.float32)
            xb = rng.standard_normal((max(args.gemm_tokens, 1), n_in)).astype(np.float32)
            for path in args.paths.split(","):
                t = median_time(lambda: _core.matmul(name, w, n_out, n_in, x1, args.threads, path, pool))
                gemm = ""
                if args.gemm_tokens:
                    tb = median_time(lambda: _core.matmul(name, w, n_out, n_in, xb, args.threads, path, pool),
                                     min_time=0.2, min_reps=3)
                    gemm = f"{2 * n_out * n_in * args.gemm_tokens / tb / 1e9:13.1f}"
                print(f"{name:6} {path:11} {n_out:>5}x{n_in:<5} {t * 1e6:9.1f} {w.nbytes / t / 1e9:10.2f} {gemm}")


if __name__ == "__main__":
    main()
