"""Micro-benchmark of the quantized matmul kernels: GEMV GB/s (weight bytes streamed per
second) and GEMM GFLOP/s, per format and SIMD path.

    PYTHONPATH=. python tools/bench_matmul.py [--threads 2] [--types Q4_1,Q8_0] [--paths avx2]

Compare GEMV GB/s with the machine's read bandwidth (about 31 GB/s on the dev machines,
see DESIGN.md). Each measurement cycles through enough copies of the weight matrix
(--cold-mb, default 128 MB, 4x the dev machine's L3) that the weights come from DRAM,
as in a real model; --cold-mb 0 measures a cache-resident matrix instead. Timings are
medians of repeated calls timed natively (_core.matmul_timed), through one persistent pool."""
import argparse
import numpy as np

from pyllong import _core

SHAPES = [(1536, 576), (4096, 4096)]  # (n_out, n_in): SmolLM2 FFN up, a 7B square projection


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--types", default="Q4_0,Q4_1,Q5_0,Q5_1,Q8_0,Q2_K,Q3_K,Q4_K,Q5_K,Q6_K,F16,BF16,F32")
    ap.add_argument("--paths", default=",".join(_core.simd_paths()))
    ap.add_argument("--cold-mb", type=float, default=128.0,
                    help="total size of the weight copies cycled through (0: one cache-resident copy)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="report the best of this many medians (other processes on a shared machine "
                         "only ever slow a run down)")
    ap.add_argument("--layouts", default="rows,packed",
                    help="rows: the ggml rows as stored; packed: the row-interleaved copy made at model load "
                         "(quant/repack.h), where the path has kernels for the type (else skipped)")
    ap.add_argument("--gemm-tokens", type=int, default=64, help="batch size of the GEMM measurement (0: skip)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    pool = _core.ThreadPool(args.threads)
    print(f"threads={args.threads}  cold-mb={args.cold_mb:g}  gemm-tokens={args.gemm_tokens}  repeat={args.repeat}  "
          f"paths available: {', '.join(_core.simd_paths())}")
    print(f"{'type':6} {'path':11} {'layout':7} {'shape':>11} {'GEMV us':>9} {'GEMV GB/s':>10} {'GEMM GFLOP/s':>13}")
    for name in args.types.split(","):
        for n_out, n_in in SHAPES:
            if n_in % _core.block_elems(name):
                continue
            w = _core.quantize(name, (rng.standard_normal((n_out, n_in)) * 0.02).astype(np.float32))
            n_copies = max(1, int(np.ceil(args.cold_mb * 1e6 / w.nbytes)))
            ws = [w] + [w.copy() for _ in range(n_copies - 1)]
            x1 = rng.standard_normal(n_in).astype(np.float32)
            xb = rng.standard_normal((max(args.gemm_tokens, 1), n_in)).astype(np.float32)
            for path in args.paths.split(","):
              for layout in args.layouts.split(","):
                if layout == "packed" and name not in _core.packed_types(path):
                    continue
                rp = layout == "packed"
                reps = max(50, 2 * n_copies)
                t = min(_core.matmul_timed(name, ws, n_out, n_in, x1, args.threads, path, pool, reps, repack=rp)
                        for _ in range(args.repeat))
                gemm = ""
                if args.gemm_tokens:
                    tb = min(_core.matmul_timed(name, [w], n_out, n_in, xb, args.threads, path, pool, 5, repack=rp)
                             for _ in range(args.repeat))
                    gemm = f"{2 * n_out * n_in * args.gemm_tokens / tb / 1e9:13.1f}"
                print(f"{name:6} {path:11} {layout:7} {n_out:>5}x{n_in:<5} {t * 1e6:9.1f} {w.nbytes / t / 1e9:10.2f} {gemm}",
                      flush=True)


if __name__ == "__main__":
    main()
