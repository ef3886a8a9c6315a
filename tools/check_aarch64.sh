#!/usr/bin/env bash
# Cross-compile pyllong for 64-bit ARM Linux and, where qemu-user is installed, run the
# standalone kernel test (tests/native/test_vec_dot_paths.cpp) under emulation: once on
# a CPU with DotProd (paths scalar, neon, neondot) and once on one without (scalar, neon).
#
#   tools/check_aarch64.sh [BUILD_DIR]        (default build/aarch64)
#
# Needs (Debian/Ubuntu): apt-get install g++-aarch64-linux-gnu cmake ninja-build
# and to run the test: apt-get install qemu-user (or qemu-user-static).
# Environment: JOBS (parallel compile jobs, default 2). Exit status non-zero on any
# failure: configure, build, wrong target architecture, or a kernel mismatch.
set -euo pipefail

cd "$(dirname "$0")/.."
BUILD="${1:-build/aarch64}"
JOBS="${JOBS:-2}"
SYSROOT=/usr/aarch64-linux-gnu

command -v aarch64-linux-gnu-g++ >/dev/null ||
    { echo "check_aarch64: aarch64-linux-gnu-g++ not found (apt-get install g++-aarch64-linux-gnu)" >&2; exit 2; }
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
# Never reuse a native build directory for the cross build.
if [[ -f "$BUILD/CMakeCache.txt" ]] && ! grep -q "^CMAKE_TOOLCHAIN_FILE:[A-Z]*=.*aarch64-linux-gnu\.cmake" "$BUILD/CMakeCache.txt"; then
    echo "check_aarch64: $BUILD holds a non-cross build; use another directory" >&2; exit 2
fi

mkdir -p "$BUILD"
echo "== configure ($BUILD): toolchain cmake/aarch64-linux-gnu.cmake, PYLLONG_NATIVE=OFF"
cmake -S . -B "$BUILD" "${GEN[@]}" \
    -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release -DPYLLONG_NATIVE=OFF -DPYLLONG_NATIVE_TESTS=ON | tee "$BUILD/configure.log"
grep -q "skipping the Python module" "$BUILD/configure.log" ||
    { echo "check_aarch64: the cross build did not skip the Python module" >&2; exit 1; }
if grep -q -- "-march=native" "$BUILD/build.ninja" "$BUILD"/CMakeFiles/pyllong_core.dir/flags.make 2>/dev/null; then
    echo "check_aarch64: -march=native leaked into the cross build" >&2; exit 1
fi

echo "== build pyllong_core, pyllong-chat, test_vec_dot_paths (-j$JOBS)"
cmake --build "$BUILD" -j "$JOBS" --target pyllong_core pyllong-chat test_vec_dot_paths

for bin in "$BUILD/pyllong-chat" "$BUILD/test_vec_dot_paths"; do
    machine=$(aarch64-linux-gnu-readelf -h "$bin" | sed -n 's/^ *Machine: *//p')
    [[ "$machine" == "AArch64" ]] || { echo "check_aarch64: $bin is for '$machine', not AArch64" >&2; exit 1; }
    echo "built $bin ($machine)"
done
# The SDOT kernels must be in the library, and only in the +dotprod translation unit.
aarch64-linux-gnu-objdump -d "$BUILD/libpyllong_core.a" > "$BUILD/libpyllong_core.dis"
n_sdot=$(grep -c $'\tsdot\t' "$BUILD/libpyllong_core.dis" || true)
echo "sdot instructions in libpyllong_core.a: $n_sdot"
[[ "$n_sdot" -gt 0 ]] || { echo "check_aarch64: no SDOT code was built" >&2; exit 1; }

QEMU=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
if [[ -z "$QEMU" ]]; then
    echo "check_aarch64: built; qemu-aarch64 not found, so nothing was run (apt-get install qemu-user)"
    exit 0
fi

run() {  # run CPU ARGS...: the test under qemu with that CPU model
    local cpu=$1; shift
    "$QEMU" -cpu "$cpu" -L "$SYSROOT" "$BUILD/test_vec_dot_paths" "$@"
}
status=0
echo "== qemu -cpu max (DotProd): every path against scalar"
out=$(run max) || status=1
echo "$out"
grep -q "^supported paths: scalar neon neondot; default: neondot" <<<"$out" ||
    { echo "check_aarch64: expected paths scalar, neon, neondot (default neondot) on -cpu max" >&2; status=1; }

# A CPU model without DotProd (ARMv8.0): the SDOT table must be neither chosen nor allowed.
echo "== qemu -cpu cortex-a72 (no DotProd)"
out=$(run cortex-a72) || status=1
echo "$out"
grep -q "^supported paths: scalar neon; default: neon" <<<"$out" ||
    { echo "check_aarch64: expected paths scalar, neon (default neon) on cortex-a72" >&2; status=1; }
rc=0
run cortex-a72 neondot >/dev/null 2>&1 || rc=$?
[[ $rc -eq 2 ]] || { echo "check_aarch64: neondot was not refused on cortex-a72 (exit $rc)" >&2; status=1; }
echo "neondot refused on cortex-a72: ok"

echo "== qemu: pyllong-chat --help"
# Whole output, then its first line: `| head -1` would close the pipe early, and a help text
# longer than stdio's buffer then dies of SIGPIPE, which pipefail counts as a failure.
help_text=$("$QEMU" -L "$SYSROOT" "$BUILD/pyllong-chat" --help) || status=1
echo "${help_text%%$'\n'*}"

if [[ $status -eq 0 ]]; then echo "check_aarch64: OK"; else echo "check_aarch64: FAILED"; fi
exit $status
