#!/usr/bin/env bash
# Everything the GPU machine is for, in one call (device time is scarce): build with CUDA,
# run the GPU tests, then the GPU benchmarks. Logs and JSON go to $OUT (default /tmp/gpu-out).
#   tools/gpu_check.sh [test|bench|all] [extra bench_gpu.py args...]
# Carry .whl (the gguf wheel) and .gpu (a cut SmolLM2, tools/gguf_keep_layers.py) along.
set -uo pipefail
what=${1:-all}; shift || true
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=$PWD:$PWD/tests:${PYTHONPATH:-}
[ -f .gpu/smollm2-8l.gguf ] && export PYLLONG_SMOLLM2_GGUF=$PWD/.gpu/smollm2-8l.gguf
t0=$(date +%s)
# The system compiler: the lent machine's PATH also has a newer /opt/gcc, whose libstdc++
# headers do not match the libstdc++ that python3 loads (iostreams then misread numbers).
compilers=()
[ -x /usr/bin/g++ ] && compilers=(-DCMAKE_C_COMPILER=/usr/bin/gcc -DCMAKE_CXX_COMPILER=/usr/bin/g++ -DCMAKE_CUDA_HOST_COMPILER=/usr/bin/g++)
cmake -S . -B build/gpu -G Ninja -DPYLLONG_CUDA=ON -DPYLLONG_CUDA_ARCHS=90 "${compilers[@]}" \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" >"$OUT/cmake.log" 2>&1 \
  || { tail -30 "$OUT/cmake.log"; exit 1; }
ninja -C build/gpu >"$OUT/build.log" 2>&1 || { grep -E -B2 -A12 "error" "$OUT/build.log" | head -80; exit 1; }
echo "build: $(( $(date +%s) - t0 )) s"
if [ "$what" = test ] || [ "$what" = all ]; then
  timeout 420 python3 -m pytest tests/test_cuda_backend.py tests/test_forward.py -q -rs --tb=short 2>&1 \
    | tee "$OUT/pytest.log" | tail -45
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  timeout 400 python3 tools/bench_gpu.py --json "$OUT/bench.json" "$@" 2>&1 | tee "$OUT/bench.log" | tail -20
fi
