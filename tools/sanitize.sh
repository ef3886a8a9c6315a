#!/usr/bin/env bash
# Build pyllong with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan and run a
# chosen subset of the test suite against that build.
#
#   tools/sanitize.sh                 # build, then the default subset below
#   tools/sanitize.sh tests/test_state.py -k corrupt   # build, then these pytest arguments
#   PYLLONG_SANITIZE_CUDA_EMU=1 tools/sanitize.sh       # the CUDA emulator's build (build/asan-emu),
#                                                       # then tests/test_cuda_backend.py: the
#   kernels' device memory is host memory there, so an out-of-bounds access in a kernel is
#   reported like any other (what compute-sanitizer's memcheck does on a GPU).
#
# The sanitized _core module goes to build/asan/pkg/pyllong/ (beside symlinks to the Python
# sources), never over the development module in pyllong/; the sanitized pyllong-chat is put
# first on PATH so the chat tests run it. Python itself is not instrumented, so libasan is
# LD_PRELOADed and leak detection is off (CPython's own allocations would drown it). Any ASan
# or UBSan report aborts the process, which fails the test that triggered it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD=$ROOT/build/asan
EMU=${PYLLONG_SANITIZE_CUDA_EMU:-0}
options=()
if [ "$EMU" = 1 ]; then
  BUILD=$ROOT/build/asan-emu
  options=(-DPYLLONG_CUDA_EMU=ON)
fi
PKG=$BUILD/pkg

cmake -S . -B "$BUILD" -G Ninja -DPYLLONG_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo "${options[@]}" \
      -DPYLLONG_MODULE_OUTPUT_DIR="$PKG/pyllong" >/dev/null
nice ninja -C "$BUILD"

# A package folder: the Python sources by symlink, the sanitized module for real.
mkdir -p "$PKG/pyllong"
for f in "$ROOT"/pyllong/*.py; do ln -sf "$f" "$PKG/pyllong/"; done
ln -sfn "$ROOT/models" "$PKG/models"  # pyllong.models, as in a source checkout

LIBASAN=$(${CXX:-c++} -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "sanitize.sh: libasan.so not found ($LIBASAN)" >&2; exit 1; }

# Reports also go to files: pytest captures stderr, and a process that halts on a report takes
# its captured output with it.
REPORTS=$BUILD/reports
rm -rf "$REPORTS" && mkdir -p "$REPORTS"
# libstdc++ preloaded too: Python does not link it, and ASan's __cxa_throw interceptor must find
# the real one at start-up (else "CHECK failed: real___cxa_throw" at the first C++ exception).
export LD_PRELOAD="$LIBASAN $(${CXX:-c++} -print-file-name=libstdc++.so.6)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:check_initialization_order=1:strict_string_checks=1:log_path=$REPORTS/asan
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$REPORTS/ubsan
export PYTHONPATH=$PKG
export PATH=$BUILD:$PATH
export PYLLONG_SANITIZED=1

# Refuse to report "clean" for the wrong build (-P: no checkout on sys.path, as under pytest).
python -P -c '
import os, pyllong._core as c
assert c.__file__.startswith(os.environ["PYTHONPATH"]), f"not the sanitized module: {c.__file__}"
print("sanitized module:", c.__file__)
'

if [ $# -eq 0 ] && [ "$EMU" = 1 ]; then
  set -- tests/test_cuda_backend.py -q -p no:cacheprovider
elif [ $# -eq 0 ]; then
  set -- tests/test_state.py tests/test_runtime_inputs.py tests/test_interrupts_threads.py \
         tests/test_gguf_hardening.py tests/test_gguf_reader.py tests/test_model_api.py tests/test_forward.py \
         tests/test_self_extend.py tests/test_tokenizer_bpe.py tests/test_tokenizer_spm.py tests/test_sampling.py \
         tests/test_pyllong_chat.py tests/test_fuzz.py tests/fuzz/test_fuzz_tokenizer.py tests/fuzz/test_fuzz_state.py \
         tests/test_soak.py -q -p no:cacheprovider
fi
# `pytest`, not `python -m pytest`: the latter puts the checkout (and its unsanitized
# pyllong/) first on sys.path.
status=0
nice pytest "$@" || status=$?
if compgen -G "$REPORTS/*" >/dev/null; then
  for f in "$REPORTS"/*; do echo "==== $f"; head -40 "$f"; done
  echo "sanitize.sh: sanitizer reports above (all in $REPORTS)" >&2
  exit 1
fi
[ $status -eq 0 ] && echo "sanitize.sh: clean (no ASan/UBSan reports)"
exit $status
