"""pyllong bench vs llama.cpp's llama-bench on the same model, threads and tests, alternating.

    PYTHONPATH=. python tools/compare_llamacpp.py -m MODEL[,MODEL2] -t 2 -p 512 -n 128 [-d 0,4096]
        [-r 3] [--rounds 2] [--no-append]

The machines are shared: an absolute tok/s drifts with the neighbours' load, so each round runs
pyllong then llama.cpp back to back (A B A B ...), and the ratio is taken within a round, where
both saw about the same load. Printed per test: mean tok/s of each runtime over the rounds, and
the median of the per-round ratios (pyllong / llama.cpp, > 1 means pyllong is faster) with
their range. The result is appended to BENCHMARKS.md as a dated section with the machine line,
the load average and this command, unless --no-append.

The peer is located with ../shared/peer/build_llamacpp.sh (builds it on first use; prints the
bin folder), or given with --peer-bin / $PYLLONG_PEER_BIN. llama-bench runs with its defaults
otherwise (flash attention auto, weight repacking on, n_batch 2048 / n_ubatch 512); pyllong with
n_batch 512, so both process the prompt in chunks of 512.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the pyllong of this tree, also for the bench subprocesses (PYTHONPATH below)

from pyllong.bench import _git_commit  # noqa: E402  (after the path above)


def find_peer(explicit: str | None) -> str:
    """The folder with llama-bench: --peer-bin, $PYLLONG_PEER_BIN, or the build script's answer."""
    for d in (explicit, os.environ.get("PYLLONG_PEER_BIN")):
        if d:
            if not os.path.exists(os.path.join(d, "llama-bench")):
                sys.exit(f"compare_llamacpp: no llama-bench in {d}")
            return d
    script = os.path.join(ROOT, "..", "shared", "peer", "build_llamacpp.sh")
    if not os.path.exists(script):
        # A copy of the tree elsewhere (e.g. pinned under /tmp): the script's default build folder.
        default = os.path.join(os.environ.get("PYLLONG_PEER_DIR", os.path.expanduser("~/.cache/pyllong-peer")),
                               "llama-cpp-python-0.3.36", "src", "vendor", "llama.cpp", "build", "bin")
        if os.path.exists(os.path.join(default, "llama-bench")):
            return default
        sys.exit(f"compare_llamacpp: {script} not found; pass --peer-bin DIR (the folder holding llama-bench)")
    out = subprocess.run(["bash", script], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"compare_llamacpp: building the peer failed:\n{out.stderr[-2000:]}")
    return out.stdout.strip().splitlines()[-1]


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            fl = next(line for line in f if line.startswith("flags")).split()
        flags = ", ".join(x for x in ("avx2", "avx512f", "avx512_vnni") if x in fl)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores ({flags}), {platform.system()} {platform.release()}"


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def run_json(cmd: list[str], env=None) -> list[dict]:
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit(f"compare_llamacpp: {' '.join(map(shlex.quote, cmd))} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def test_name(r: dict) -> str:
    name = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    return name + (f" @ d{r['n_depth']}" if r["n_depth"] else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--models", required=True, help="comma-separated .gguf paths (or pyllong registry names)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", "--n-prompt", default="512")
    ap.add_argument("-n", "--n-gen", default="128")
    ap.add_argument("-d", "--n-depth", default="0")
    ap.add_argument("-r", "--repetitions", type=int, default=3, help="repetitions per test in each run")
    ap.add_argument("--rounds", type=int, default=2, help="A B rounds (pyllong, then llama.cpp)")
    ap.add_argument("--peer-bin", default=None, help="folder holding llama-bench")
    ap.add_argument("--no-append", action="store_true", help="do not append the result to BENCHMARKS.md")
    ap.add_argument("--benchmarks", default=os.path.join(ROOT, "BENCHMARKS.md"))
    ap.add_argument("--note", default="", help="a line to put under the section title")
    a = ap.parse_args()

    peer = find_peer(a.peer_bin)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    from pyllong.hub import resolve

    models = [str(resolve(m.strip(), quiet=True)) for m in a.models.split(",") if m.strip()]
    load_before = load()
    started = datetime.datetime.now(datetime.timezone.utc)
    # results[model][test] = {"pyllong": [ts per round], "llama.cpp": [...]}
    results: dict[str, dict[str, dict[str, list[float]]]] = {}
    for m in models:
        common = ["-t", str(a.threads), "-p", a.n_prompt, "-n", a.n_gen, "-d", a.n_depth, "-r", str(a.repetitions)]
        ours = [sys.executable, "-m", "pyllong.cli", "bench", "-m", m, *common, "--json"]
        theirs = [os.path.join(peer, "llama-bench"), "-m", m, *common, "-o", "json"]
        per = results.setdefault(m, {})
        for rnd in range(a.rounds):
            for label, cmd in (("pyllong", ours), ("llama.cpp", theirs)):
                for r in run_json(cmd, env):
                    per.setdefault(test_name(r), {"pyllong": [], "llama.cpp": []})[label].append(r["avg_ts"])
                print(f"[{m.rsplit('/', 1)[-1]} round {rnd + 1}/{a.rounds}] {label} done (load {load()})",
                      file=sys.stderr, flush=True)

    rows = []
    for m, per in results.items():
        for test, v in per.items():
            ratios = [x / y for x, y in zip(v["pyllong"], v["llama.cpp"])]
            rows.append((os.path.basename(m), test, statistics.mean(v["pyllong"]), statistics.mean(v["llama.cpp"]),
                         statistics.median(ratios), min(ratios), max(ratios)))
    table = ["| model | test | pyllong tok/s | llama.cpp tok/s | ratio (median of rounds) | range |",
             "|---|---|---:|---:|---:|---|"]
    table += [f"| {m} | {t} | {x:.2f} | {y:.2f} | **{r:.2f}×** | {lo:.2f}–{hi:.2f} |" for m, t, x, y, r, lo, hi in rows]
    cmd = "PYTHONPATH=. python tools/compare_llamacpp.py " + " ".join(map(shlex.quote, sys.argv[1:]))
    section = [
        "",
        f"### {started:%Y-%m-%d %H:%M} UTC: pyllong vs llama.cpp, {a.threads} thread(s)",
        "",
        *( [a.note, ""] if a.note else [] ),
        f"Machine: {machine_line()}. Load average (1/5/15 min) {load_before} before, {load()} after. "
        f"pyllong build {_git_commit()}.",
        f"Peer: `{peer}/llama-bench` (defaults otherwise). {a.rounds} rounds of pyllong then llama.cpp, "
        f"{a.repetitions} repetitions per test per run.",
        "",
        "    " + cmd,
        "",
        *table,
        "",
    ]
    text = "\n".join(section)
    print(text)
    if not a.no_append:
        with open(a.benchmarks, "a", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
