"""`pyllong bench`: llama-bench's measurements on pyllong's forward pass.

The method is llama-bench's (tools/llama-bench/llama-bench.cpp in llama.cpp), so the two
tables can be compared line by line:

- ppN: one `Context.eval` of N random token ids on an empty cache (after D depth tokens),
  logits of the last token only; tgN: N evals of one random token each. Tokenization and
  sampling are not part of it: token ids are drawn up front and logits are not read.
- one warm-up run first (a pp run for pp tests, a single-token eval for tg tests), then
  R timed repetitions; avg/stddev over the repetitions (stddev with n - 1, as llama-bench).
- depth D: D random tokens are evaluated once, untimed; each repetition starts from that
  cache (llama-bench restores a saved state, we truncate back to D: the same cells).

`--json` prints llama-bench's JSON records (its field names and types), plus pyllong's own
fields (`peak_rss_bytes`, `kv_bytes`, `kv_bytes_per_token`, `n_ctx`, `self_extend`, `runtime`,
`loop`: "eval" for the figures above; with --generate also "native", the same tgN from a C++
loop, and "generate", from `Model.generate`'s Python sampling loop).
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from . import _core
from .errors import InvalidArgumentError

# The fields of llama-bench's JSON record that pyllong fills with the same meaning
# (llama-bench.cpp, test::get_fields(), plus samples_ns/samples_ts of its JSON printer).
LLAMA_BENCH_FIELDS = (
    "build_commit", "build_number", "cpu_info", "gpu_info", "backends",
    "model_filename", "model_type", "model_size", "model_n_params", "n_batch",
    "n_ubatch", "n_threads", "cpu_mask", "cpu_strict", "poll",
    "type_k", "type_v", "n_gpu_layers", "n_cpu_moe", "split_mode",
    "main_gpu", "no_kv_offload", "flash_attn", "devices", "tensor_split",
    "tensor_buft_overrides", "load_mode", "lazy_mode", "embeddings",
    "no_op_offload", "no_host", "repack", "fit_target", "fit_min_ctx",
    "n_prompt", "n_gen", "n_depth",
    "test_time", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
)

# general.file_type -> llama.cpp's name for it (llama_model_ftype_name).
_FTYPE_NAMES = {0: "all F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
                10: "Q2_K - Medium", 11: "Q3_K - Small", 12: "Q3_K - Medium", 13: "Q3_K - Large",
                14: "Q4_K - Small", 15: "Q4_K - Medium", 16: "Q5_K - Small", 17: "Q5_K - Medium",
                18: "Q6_K", 32: "BF16"}


@dataclass
class Test:
    """One line of the table: n_prompt tokens of prefill or n_gen single-token evals, at depth."""
    n_prompt: int = 0
    n_gen: int = 0
    n_depth: int = 0
    samples_ns: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        base = f"pp{self.n_prompt}" if self.n_prompt else f"tg{self.n_gen}"
        return base + (f" @ d{self.n_depth}" if self.n_depth else "")

    def samples_ts(self) -> list[float]:
        n = self.n_prompt + self.n_gen
        return [1e9 * n / t for t in self.samples_ns]


def mean_stddev(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single sample), as llama-bench."""
    n = len(xs)
    if n == 0:
        return 0.0, 0.0
    m = sum(xs) / n
    if n < 2:
        return m, 0.0
    return m, math.sqrt(max(0.0, sum((x - m) ** 2 for x in xs) / (n - 1)))


def _random_ids(rng: np.random.Generator, n_vocab: int, n: int) -> np.ndarray:
    return rng.integers(0, n_vocab, size=n, dtype=np.int32)


def _fill(ctx, rng, n_vocab: int, n: int, n_batch: int) -> None:
    """Evaluate n random tokens in n_batch-sized calls (untimed depth, like llama-bench's)."""
    for start in range(0, n, n_batch):
        ctx.eval(_random_ids(rng, n_vocab, min(n_batch, n - start)), False)


def run_test(ctx, test: Test, reps: int, n_vocab: int, n_batch: int, rng: np.random.Generator,
             warmup: bool = True, clock: Callable[[], int] = time.perf_counter_ns) -> Test:
    """Fill test.samples_ns with `reps` timings of the test on ctx (a `_core.Context`)."""
    ctx.reset()
    if warmup:
        if test.n_prompt:
            ctx.eval(_random_ids(rng, n_vocab, test.n_prompt), False)
        if test.n_gen:
            ctx.reset()
            ctx.eval(_random_ids(rng, n_vocab, 1), False)
        ctx.reset()
    if test.n_depth:
        _fill(ctx, rng, n_vocab, test.n_depth, n_batch)
    for _ in range(reps):
        ctx.truncate(test.n_depth)
        prompt = _random_ids(rng, n_vocab, test.n_prompt)
        gen = [_random_ids(rng, n_vocab, 1) for _ in range(test.n_gen)]  # (1,) arrays, made up front
        t0 = clock()
        if test.n_prompt:
            ctx.eval(prompt, False)  # one call: the context splits it into n_batch chunks itself
        for tok in gen:
            ctx.eval(tok, False)
        test.samples_ns.append(clock() - t0)
    return test


def peak_rss_bytes() -> int:
    """Peak resident set of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if platform.system() == "Darwin" else r * 1024)


def cpu_info() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _human_params(n: int) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= div:
            return f"{n / div:.0f}{unit}" if n / div >= 10 else f"{n / div:.1f}{unit}"
    return str(n)


def model_facts(mf) -> dict:
    """model_type / model_size / model_n_params as llama-bench reports them."""
    meta = mf.gguf.metadata
    arch = mf.hparams["architecture"]
    ftype = meta.get("general.file_type")
    if ftype is not None and int(ftype) in _FTYPE_NAMES:
        fname = _FTYPE_NAMES[int(ftype)]
    else:  # no file_type (e.g. written by `pyllong quantize`): name the largest share of the bytes
        mix = mf.quant_mix
        fname = max(mix, key=lambda t: mix[t][1]) if mix else "?"
    size = sum(b for _, b in mf.quant_mix.values())
    return {"model_type": f"{arch} {_human_params(mf.n_params)} {fname}", "model_size": int(size),
            "model_n_params": int(mf.n_params)}


def decode_weight_bytes(mf) -> int:
    """Bytes of weights one decoded token reads: every matrix once (the token embedding only
    as the output head, when the model ties them: one embedding row is negligible)."""
    tensors = mf.gguf.tensors
    total = sum(t.nbytes for name, t in tensors.items() if len(t.shape) >= 2 and name != "token_embd.weight")
    if "output.weight" not in tensors and "token_embd.weight" in tensors:
        total += tensors["token_embd.weight"].nbytes
    return int(total)


def add_roofline(r: dict, weight_bytes: int, read_bw: float) -> None:
    """For a tg record: bytes read per token (weights + the KV cells attended, on average over
    the test) and the fraction of the read bandwidth that tokens/s reaches."""
    cells = r["n_depth"] + (r["n_gen"] + 1) / 2
    per_token = weight_bytes + cells * r["kv_bytes_per_token"]
    r["read_bw_bytes_per_s"] = read_bw
    r["bytes_per_token"] = int(per_token)
    r["roofline_fraction"] = per_token * r["avg_ts"] / read_bw


def _git_commit() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(here, ".git"), encoding="utf-8") as f:  # a worktree: "gitdir: ..."
            gitdir = f.read().split(":", 1)[1].strip()
    except (OSError, IndexError):
        gitdir = os.path.join(here, ".git")
    try:
        with open(os.path.join(gitdir, "HEAD"), encoding="utf-8") as f:
            head = f.read().strip()
        if head.startswith("ref:"):
            ref = head.split(None, 1)[1]
            for base in (gitdir, os.path.join(gitdir, "..", "..")):  # worktrees share refs with the main repo
                p = os.path.join(base, ref)
                if os.path.exists(p):
                    with open(p, encoding="utf-8") as f:
                        return f.read().strip()[:7]
            return "unknown"
        return head[:7]
    except OSError:
        return "unknown"


def record(test: Test, facts: dict, *, model_path: str, n_threads: int, n_batch: int, kv_type: str,
           n_gpu_layers: int, kv_bytes: int, n_ctx: int, self_extend) -> dict:
    """One llama-bench JSON record (its field order and types) plus pyllong's fields."""
    ts = test.samples_ts()
    avg_ns, sd_ns = mean_stddev(test.samples_ns)
    avg_ts, sd_ts = mean_stddev(ts)
    from . import __version__

    return {
        "build_commit": _git_commit(), "build_number": 0, "cpu_info": cpu_info(), "gpu_info": "",
        "backends": "CUDA" if n_gpu_layers else "CPU",
        "model_filename": model_path, **facts,
        "n_batch": n_batch, "n_ubatch": n_batch, "n_threads": n_threads, "cpu_mask": "0x0", "cpu_strict": False,
        "poll": 0, "type_k": kv_type, "type_v": kv_type, "n_gpu_layers": n_gpu_layers, "n_cpu_moe": 0,
        "split_mode": "none", "main_gpu": 0, "no_kv_offload": False, "flash_attn": 1, "devices": "auto",
        "tensor_split": "0.00", "tensor_buft_overrides": "none", "load_mode": "mmap", "lazy_mode": "off",
        "embeddings": False, "no_op_offload": 0, "no_host": False, "repack": False, "fit_target": 0,
        "fit_min_ctx": 0,
        "n_prompt": test.n_prompt, "n_gen": test.n_gen, "n_depth": test.n_depth,
        "test_time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "avg_ns": int(avg_ns), "stddev_ns": int(sd_ns), "avg_ts": round(avg_ts, 6), "stddev_ts": round(sd_ts, 6),
        "samples_ns": [int(t) for t in test.samples_ns], "samples_ts": [round(t, 4) for t in ts],
        # pyllong's own
        "runtime": f"pyllong {__version__}", "peak_rss_bytes": peak_rss_bytes(), "kv_bytes": int(kv_bytes),
        "kv_bytes_per_token": int(kv_bytes // max(1, n_ctx)), "n_ctx": n_ctx,
        "self_extend": list(self_extend) if self_extend else None,
    }


ROOFLINE_BUFFER = 1 << 30  # bytes read per bandwidth pass: far beyond any last-level cache here


def _mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def markdown(records: list[dict]) -> str:
    """llama-bench's default table (same columns), then memory lines."""
    head = ["model", "size", "params", "backend", "threads", "test", "t/s"]
    rows = []
    for r in records:
        test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
        if r["n_depth"]:
            test += f" @ d{r['n_depth']}"
        if r.get("self_extend"):
            test += " se{}/{}".format(*r["self_extend"])
        if r.get("loop", "eval") != "eval":
            test += f" ({r['loop']})"
        rows.append([r["model_type"], f"{r['model_size'] / 2**20:.2f} MiB", _human_params(r["model_n_params"]),
                     r["backends"], str(r["n_threads"]), test, f"{r['avg_ts']:.2f} ± {r['stddev_ts']:.2f}"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    right = {1, 2, 4, 5, 6}

    def line(cells):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w)
                                 for i, (c, w) in enumerate(zip(cells, widths))) + " |"

    out = [line(head), "| " + " | ".join(("-" * (w - 1) + ":") if i in right else "-" * w
                                          for i, w in enumerate(widths)) + " |"]
    out += [line(row) for row in rows]
    if records:
        last = records[-1]
        out.append("")
        out.append(f"peak RSS {_mib(max(r['peak_rss_bytes'] for r in records))}; KV cache "
                   f"{_mib(last['kv_bytes'])} for n_ctx {last['n_ctx']} ({last['kv_bytes_per_token']} bytes/token, "
                   f"{last['type_k']})")
        for r in records:
            if "roofline_fraction" in r:
                test = f"tg{r['n_gen']}" + (f" @ d{r['n_depth']}" if r["n_depth"] else "")
                out.append(f"{test}: {r['bytes_per_token'] / 1e6:.1f} MB read per token x {r['avg_ts']:.2f} tok/s = "
                           f"{r['bytes_per_token'] * r['avg_ts'] / 1e9:.2f} GB/s, {100 * r['roofline_fraction']:.0f} % "
                           f"of the {r['read_bw_bytes_per_s'] / 1e9:.2f} GB/s this machine reads with "
                           f"{r['n_threads']} thread(s)")
        out.append(f"build: {last['build_commit']} ({last['runtime']})")
    out += loop_ratio_lines(records)
    return "\n".join(out)


def loop_ratios(records: list[dict]) -> list[tuple[str, float, float, float]]:
    """With --generate: for each tg test, Model.generate's speed over the native loop's, per
    repetition (the two ran interleaved, so each pair shares the machine's load): (test name,
    median, lowest, highest) of those ratios."""
    out = []
    for gen in records:
        if gen.get("loop") != "generate":
            continue
        key = (gen["n_gen"], gen["n_depth"])
        nat = next((r for r in records if r.get("loop") == "native" and (r["n_gen"], r["n_depth"]) == key), None)
        if nat is None or not gen["samples_ts"] or len(nat["samples_ts"]) != len(gen["samples_ts"]):
            continue
        ratios = sorted(g / n for g, n in zip(gen["samples_ts"], nat["samples_ts"]) if n > 0)
        if not ratios:
            continue
        mid = len(ratios) // 2
        med = ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2
        name = f"tg{gen['n_gen']}" + (f" @ d{gen['n_depth']}" if gen["n_depth"] else "")
        out.append((name, med, ratios[0], ratios[-1]))
    return out


def loop_ratio_lines(records: list[dict]) -> list[str]:
    return [f"{name}: generate / native = {med:.3f} (median of the per-repetition ratios; range {lo:.3f}-{hi:.3f})"
            for name, med, lo, hi in loop_ratios(records)]


def run_loops(model, test: Test, reps: int, rng: np.random.Generator) -> tuple[Test, Test, Test]:
    """tgN three ways, for the Python-overhead target, interleaved per repetition so that
    load drift on a shared machine hits all three alike: the Python eval loop (as run_test),
    the native C++ loop (`Context.eval_each`: one eval per token, logits left in C++) and
    `Model.generate` with its default sampling (penalties, top-k, top-p, min-p, temperature),
    end-of-generation tokens banned so it runs all N. generate's time is taken between its
    per-token callbacks: N evals + N samplings, no prefill."""
    tests = tuple(Test(n_gen=test.n_gen, n_depth=test.n_depth) for _ in range(3))
    py, native, gen = tests
    ctx, n_vocab = model.ctx, model.n_vocab
    model.reset()
    depth = _random_ids(rng, n_vocab, max(1, test.n_depth)).tolist()  # generate needs a non-empty prompt
    model.eval(depth, logits_all=False)
    ctx.eval_each(_random_ids(rng, n_vocab, 1))  # warm-up
    ban = {int(t): float("-inf") for t in model.eog_ids}

    def run_py():
        model._sync()
        ctx.truncate(len(depth))
        toks = [_random_ids(rng, n_vocab, 1) for _ in range(test.n_gen)]
        t0 = time.perf_counter_ns()
        for tok in toks:
            ctx.eval(tok, False)
        py.samples_ns.append(time.perf_counter_ns() - t0)

    def run_native():
        model._sync()
        ctx.truncate(len(depth))
        native.samples_ns.append(int(ctx.eval_each(_random_ids(rng, n_vocab, test.n_gen)).sum()))

    def run_generate():
        stamps: list[int] = []

        def stamp(_ids, _logits):
            stamps.append(time.perf_counter_ns())
            return False

        model._sync()
        model.generate(depth, max_tokens=test.n_gen + 1, logit_bias=ban, stopping_criteria=[stamp],
                       seed=int(rng.integers(1 << 31)))
        gen.samples_ns.append(stamps[-1] - stamps[0])

    # The order alternates (A B C, C B A, ...): on a machine whose memory bandwidth drifts
    # (other tenants), a fixed order would bias the per-repetition ratios.
    for rep in range(reps):
        for run in ((run_py, run_native, run_generate) if rep % 2 == 0 else (run_generate, run_native, run_py)):
            run()
    return py, native, gen


def bench(model_path: str, n_threads: int, n_prompt: Sequence[int] = (512,), n_gen: Sequence[int] = (128,),
          n_depth: Sequence[int] = (0,), reps: int = 5, n_batch: int = 512, kv_type: str = "f16",
          self_extend=None, n_gpu_layers: int = 0, seed: int = 0, warmup: bool = True, generate: bool = False,
          roofline: bool = False, on_record: Optional[Callable[[dict], None]] = None) -> list[dict]:
    """Run every (depth, pp) and (depth, tg) test like llama-bench; return the records.
    generate: also time each tg test with the native loop and with Model.generate (records
    with "loop": "native" / "generate"; the plain ones have "loop": "eval").
    roofline: measure this machine's read bandwidth with n_threads (after the tests), and give
    each tg record its bytes per token and the fraction of that bandwidth it reaches (CPU runs)."""
    if reps < 1:
        raise InvalidArgumentError(f"repetitions must be at least 1, got {reps}")
    if n_threads < 1:
        raise InvalidArgumentError(f"threads must be at least 1, got {n_threads}")
    for name, vals in (("-p", n_prompt), ("-n", n_gen), ("-d", n_depth)):
        if any(v < 0 for v in vals):
            raise InvalidArgumentError(f"{name} values must be >= 0, got {list(vals)}")
    mf = _core.ModelFile(model_path)
    facts = model_facts(mf)
    n_vocab = int(mf.hparams["n_vocab"])
    rng = np.random.default_rng(seed)
    tests = [Test(n_prompt=p, n_depth=d) for d in n_depth for p in n_prompt if p > 0]
    tests += [Test(n_gen=g, n_depth=d) for d in n_depth for g in n_gen if g > 0]
    # One context sized for the largest test, as llama-bench sizes each (n_prompt + n_gen + n_depth).
    n_ctx = max((t.n_prompt + t.n_gen + max(1, t.n_depth) for t in tests), default=1)
    se = tuple(self_extend) if self_extend else None
    model = None
    if generate:
        from .model import Model

        model = Model(model_path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch, kv_type=kv_type,
                      self_extend=se, n_gpu_layers=n_gpu_layers)
        ctx = model.ctx
    else:
        ctx = _core.Context(mf, n_ctx, n_threads, n_batch, kv_type, se, n_gpu_layers)

    out = []

    def emit(t: Test, loop: str) -> None:
        r = record(t, facts, model_path=model_path, n_threads=n_threads, n_batch=n_batch, kv_type=kv_type,
                   n_gpu_layers=n_gpu_layers, kv_bytes=ctx.kv_bytes, n_ctx=n_ctx, self_extend=se)
        r["loop"] = loop
        out.append(r)
        if on_record:
            on_record(r)

    for t in tests:
        if model is not None and t.n_gen:
            py, native, gen = run_loops(model, t, reps, rng)
            emit(py, "eval")
            emit(native, "native")
            emit(gen, "generate")
        else:
            emit(run_test(ctx, t, reps, n_vocab, n_batch, rng, warmup=warmup), "eval")
    if roofline:  # after the tests, so that its 1 GiB buffer is not in their peak RSS
        read_bw = _core.read_bandwidth(ROOFLINE_BUFFER, n_threads)
        weight_bytes = decode_weight_bytes(mf)
        for r in out:
            if r["n_gen"]:
                add_roofline(r, weight_bytes, read_bw)
    return out
