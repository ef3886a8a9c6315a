#!/usr/bin/env bash
# Nsight Compute on the 7B-shaped Q4_0 benchmark model's decode (GPU machine only; run after
# tools/gpu_check.sh has built build/gpu in this checkout).
#   tools/gpu_ncu.sh step                      every kernel of three decode steps (the captured
#                                              graph's nodes), summed by name per step, with
#                                              the DRAM bytes each read
#   tools/gpu_ncu.sh [REGEX [SKIP [COUNT]]]    full sections for a few kernels matching REGEX
set -uo pipefail
export PYTHONPATH=$PWD:$PWD/tests:/tmp/site
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
mode=${1:-gemv|attention_kernel}
cat > /tmp/ncu_decode.py <<PY
import os, sys
sys.path.insert(0, os.getcwd())
from pyllong import _core
from pyllong.models import synthetic as syn
p = "/tmp/llama-7b-q4_0-raw.gguf"
if not os.path.exists(p):
    syn.build_raw_random(p, **syn.PRESETS["llama-7b"])
ctx = _core.Context(_core.ModelFile(p), n_ctx=256 if "$mode" == "step" else 1024, n_batch=512, n_gpu_layers=-1)
if "$mode" != "step":
    ctx.eval(list(range(1, 600)), False)
for t in range(3 if "$mode" == "step" else 4):
    ctx.eval([t + 7], True)
PY
if [ "$mode" != step ]; then
  ncu --kernel-name regex:"$mode" --launch-skip "${2:-200}" --launch-count "${3:-3}" \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
      python3 /tmp/ncu_decode.py 2>&1 | grep -vE "^==PROF==|^\s*$" | grep -E "gemv|attention|Duration|Throughput|Achieved Occupancy|Registers|Block Size|Grid Size|DRAM|L1/TEX Hit|Mem Busy|Max Bandwidth|Waves"
  exit 0
fi
ncu --csv --clock-control none --metrics gpu__time_duration.sum,dram__bytes_read.sum \
    python3 /tmp/ncu_decode.py >"$OUT/ncu_step.csv" 2>"$OUT/ncu_step.err" || { tail -20 "$OUT/ncu_step.err"; exit 1; }
python3 - "$OUT/ncu_step.csv" <<'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
head, rows = rows[0], rows[1:]
K, M, U, V = head.index("Kernel Name"), head.index("Metric Name"), head.index("Metric Unit"), head.index("Metric Value")
scale = {"ns": 1e-3, "us": 1.0, "usecond": 1.0, "nsecond": 1e-3, "msecond": 1e3, "ms": 1e3,
         "byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}
t, b, n = collections.Counter(), collections.Counter(), collections.Counter()
for r in rows:
    name = r[K].split("(")[0].split("<")[0].replace("void ", "").strip()
    v = float(r[V].replace(",", "")) * scale.get(r[U], 1.0)
    if r[M] == "gpu__time_duration.sum":
        t[name] += v / 3; n[name] += 1 / 3
    else:
        b[name] += v / 3
total = sum(t.values())
print(f"{'kernel':28s} {'per step':>9s} {'us':>9s} {'MB read':>9s} {'GB/s':>7s}")
for k, v in t.most_common():
    print(f"{k:28s} {n[k]:9.0f} {v:9.1f} {b[k] / 1e6:9.1f} {b[k] / v / 1e3 if v else 0:7.0f}")
print(f"{'total':28s} {sum(n.values()):9.0f} {total:9.1f} {sum(b.values()) / 1e6:9.1f} {sum(b.values()) / total / 1e3:7.0f}")
PY
