#!/usr/bin/env python3
"""GPU benchmarks of the CUDA backend (run on the GPU machine; figures go to BENCHMARKS.md).

- decode and prefill of a 7B-shaped Q4_0 llama (random weights: speed is what counts), with
  the bandwidth decode achieves (weight + KV bytes read per token) against the measured
  device-to-device copy bandwidth;
- decode at depth D of a SmolLM2-shaped model (or a real GGUF via --model) with plain
  attention, SelfExtend and the kNN memory (D tokens read into memory, a window of
  --memory-window on the device), all layers on the GPU.

    python tools/bench_gpu.py [--skip-7b] [--depths 4096,32768] [--model PATH] [--memory knn,64] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyllong import _core  # noqa: E402
from pyllong.bench import decode_weight_bytes  # noqa: E402
from pyllong.memory import default_layers  # noqa: E402
from pyllong.models import synthetic as syn  # noqa: E402

SMOLLM2_SHAPE = dict(arch="llama", vocab="bpe", qtype="Q4_1", n_layer=30, n_embd=576, n_head=9, n_head_kv=3,
                     n_ff=1536, n_ctx_train=8192, n_vocab=49152, tied_embeddings=True, embd_qtype="Q8_0")


def copy_bandwidth() -> float | None:
    """Device-to-device copy, bytes read + written per second (torch, where installed)."""
    try:
        import torch
    except ImportError:
        return None
    a = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        b.copy_(a)
    end.record()
    torch.cuda.synchronize()
    bw = 2 * a.numel() * 20 / (start.elapsed_time(end) / 1e3)
    del a, b
    torch.cuda.empty_cache()
    return bw


def timed_decode(ctx, n_gen: int, rng) -> float:
    toks = rng.integers(0, ctx.n_vocab, n_gen).tolist()
    t0 = time.perf_counter()
    for t in toks:
        ctx.eval([t], False)
    return n_gen / (time.perf_counter() - t0)


def bench_model(path: str, n_prompt: int, n_gen: int, depth: int, reps: int, self_extend=None, n_batch=512):
    mf = _core.ModelFile(path)
    hp = mf.hparams
    rng = np.random.default_rng(0)
    n_ctx = depth + n_prompt + n_gen + 16
    ctx = _core.Context(mf, n_ctx=n_ctx, n_threads=4, n_batch=n_batch, self_extend=self_extend, n_gpu_layers=-1)
    pp, tg = [], []
    for _ in range(reps):
        ctx.reset()
        if depth:
            t0 = time.perf_counter()
            ctx.eval(rng.integers(0, hp["n_vocab"], depth).tolist(), False)
            fill = depth / (time.perf_counter() - t0)
        else:
            fill = None
        prompt = rng.integers(0, hp["n_vocab"], n_prompt).tolist()
        t0 = time.perf_counter()
        ctx.eval(prompt, False)
        pp.append(n_prompt / (time.perf_counter() - t0))
        tg.append(timed_decode(ctx, n_gen, rng))
    kv_row = 2 * hp["n_head_kv"] * hp["head_dim"] * 2 * hp["n_layer"]  # K + V, f16, all layers
    depth_mid = depth + n_prompt + n_gen / 2
    kv_read = kv_row * depth_mid * (1.5 if self_extend else 1.0)  # grouped keys are read past W
    return dict(model=os.path.basename(path), n_prompt=n_prompt, n_gen=n_gen, n_depth=depth,
                self_extend=self_extend, pp_ts=float(np.mean(pp)), pp_std=float(np.std(pp)),
                tg_ts=float(np.mean(tg)), tg_std=float(np.std(tg)), fill_ts=fill,
                bytes_per_token=decode_weight_bytes(mf) + kv_read, kv_bytes=ctx.kv_bytes)


def bench_memory(path: str, depth: int, mode: str, k: int, window: int, n_gen: int = 64) -> dict:
    """Decode after depth tokens went into the memory (LongLLaMA's input rule: all but the last
    window/2 tokens in chunks of the window), the memory at its default layers."""
    mf = _core.ModelFile(path)
    hp = mf.hparams
    rng = np.random.default_rng(0)
    mem = dict(layers=default_layers(hp["n_layer"]), window=window, last_context_length=window // 2, mode=mode, k=k,
               cap=0, ivf=mode == "knn")
    ctx = _core.Context(mf, n_ctx=window, n_threads=4, n_batch=512, memory=mem, n_gpu_layers=-1)
    t0 = time.perf_counter()
    ctx.eval(rng.integers(0, hp["n_vocab"], depth).tolist(), False)
    fill = depth / (time.perf_counter() - t0)
    tg = timed_decode(ctx, n_gen, rng)
    return dict(model=os.path.basename(path), n_depth=depth, memory=f"{mode},k={k},window={window}",
                memory_tokens=ctx.memory.size, n_gen=n_gen, tg_ts=tg, fill_ts=fill)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--skip-7b", action="store_true")
    ap.add_argument("--depths", default="4096,32768")
    ap.add_argument("--model", default=None, help="GGUF for the depth runs (default: a SmolLM2-shaped synthetic)")
    ap.add_argument("--self-extend", default="8,1024", help="G,W for the depth runs")
    ap.add_argument("--memory", default="knn,64", help="mode,k for the memory depth runs ('' = none)")
    ap.add_argument("--memory-window", type=int, default=2048)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    print(f"device: {_core.cuda_device_name(0)}", flush=True)
    bw = copy_bandwidth()
    if bw:
        print(f"device-to-device copy: {bw / 1e9:.0f} GB/s (read + write)", flush=True)
    out = {"device": _core.cuda_device_name(0), "copy_bw": bw, "runs": []}
    work = os.environ.get("TMPDIR", "/tmp")
    if not a.skip_7b:
        p7 = os.path.join(work, "llama-7b-q4_0-raw.gguf")
        if not os.path.exists(p7):
            t0 = time.perf_counter()
            syn.build_raw_random(p7, **{k: v for k, v in syn.PRESETS["llama-7b"].items()})
            print(f"built {p7} in {time.perf_counter() - t0:.0f} s", flush=True)
        r = bench_model(p7, 512, 128, 0, 3)
        r["bw_fraction"] = r["bytes_per_token"] * r["tg_ts"] / bw if bw else None
        out["runs"].append(r)
        print(json.dumps(r), flush=True)
    path = a.model
    if path is None:
        path = os.path.join(work, "smollm2-shape-raw.gguf")
        if not os.path.exists(path):
            syn.build_raw_random(path, **SMOLLM2_SHAPE)
    g, w = (int(x) for x in a.self_extend.split(","))
    for depth in [int(d) for d in a.depths.split(",") if d]:
        for se in (None, (g, w)):
            r = bench_model(path, 512, 64, depth, 1, self_extend=se, n_batch=2048)
            out["runs"].append(r)
            print(json.dumps(r), flush=True)
        if a.memory:
            mode, k = a.memory.split(",")
            r = bench_memory(path, depth, mode, int(k), a.memory_window)
            out["runs"].append(r)
            print(json.dumps(r), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
