#!/usr/bin/env bash
# Build the CUDA backend for the CPU emulator (csrc/cuda/emu, -DPYLLONG_CUDA_EMU=ON) into
# build/emu and run the GPU tests against it: every kernel and the whole device forward pass
# checked on a machine without a GPU. Needs the CUDA headers (nvcc's toolkit), not a GPU.
#
#   tools/cuda_emu.sh                          # build, then tests/test_cuda_backend.py
#   tools/cuda_emu.sh tests/test_cuda_backend.py -k attention   # build, then these pytest arguments
#
# The emulated _core module goes to build/emu/pkg/pyllong/ (beside symlinks to the Python
# sources), never over the development module in pyllong/. Each GPU thread is a fiber, blocks
# are shared over the cores: correct, slow; timings mean nothing here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build/emu
PKG=$BUILD/pkg

gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
cmake -S . -B "$BUILD" "${gen[@]}" -DPYLLONG_CUDA_EMU=ON -DCMAKE_BUILD_TYPE=Release \
      -DPYLLONG_MODULE_OUTPUT_DIR="$PKG/pyllong" >/dev/null
nice cmake --build "$BUILD" --target _core -j "$(nproc)"

mkdir -p "$PKG/pyllong"
for f in "$ROOT"/pyllong/*.py; do ln -sf "$f" "$PKG/pyllong/"; done
ln -sfn "$ROOT/models" "$PKG/models"  # pyllong.models, as in a source checkout
export PYTHONPATH=$PKG
export PATH=$BUILD:$PATH

# Refuse to report results for the wrong build (-P: no checkout on sys.path, as under pytest).
python -P -c '
import os, pyllong._core as c
assert c.__file__.startswith(os.environ["PYTHONPATH"]), f"not the emulated module: {c.__file__}"
assert c.cuda_device_count() == 1 and "emulator" in c.cuda_device_name(0), "not an emulated CUDA build"
print("emulated CUDA module:", c.__file__)
'
[ $# -eq 0 ] && set -- tests/test_cuda_backend.py -q -p no:cacheprovider
# `pytest`, not `python -m pytest`: the latter puts the checkout's pyllong/ first on sys.path.
nice pytest "$@"
