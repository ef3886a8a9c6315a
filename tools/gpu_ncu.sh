#!/usr/bin/env bash
# Nsight Compute on a few decode kernels of the 7B-shaped benchmark model (GPU machine only).
# Run after tools/gpu_check.sh has built build/gpu in this checkout.
set -uo pipefail
export PYTHONPATH=$PWD:$PWD/tests:/tmp/site
cat > /tmp/ncu_decode.py <<'PY'
import os, sys, numpy as np
sys.path.insert(0, os.getcwd())
from pyllong import _core
from pyllong.models import synthetic as syn
p = "/tmp/llama-7b-q4_0-raw.gguf"
if not os.path.exists(p):
    syn.build_raw_random(p, **syn.PRESETS["llama-7b"])
ctx = _core.Context(_core.ModelFile(p), n_ctx=1024, n_batch=512, n_gpu_layers=-1)
ctx.eval(list(range(1, 600)), False)
for t in range(4):
    ctx.eval([t + 7], False)
PY
ncu --kernel-name regex:"${1:-gemv|attention_kernel}" --launch-skip "${2:-200}" --launch-count "${3:-3}" \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    python3 /tmp/ncu_decode.py 2>&1 | grep -vE "^==PROF==|^\s*$" | grep -E "gemv|attention|Duration|Throughput|Achieved Occupancy|Registers|Block Size|Grid Size|DRAM|L1/TEX Hit|Mem Busy|Max Bandwidth|Waves" 
