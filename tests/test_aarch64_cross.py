"""AArch64 (NEON) build check on an x86 machine: tools/check_aarch64.sh cross-compiles
pyllong_core, pyllong-chat and tests/native/test_vec_dot_paths.cpp for aarch64 and runs
the kernel test under qemu-user on a CPU with DotProd (scalar, neon, neondot paths) and
one without (scalar, neon), every path against the scalar one. Skipped, with the reason,
where the cross compiler or qemu is missing. See docs/arm.md."""
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL_HINT = ("on Debian/Ubuntu: apt-get install g++-aarch64-linux-gnu qemu-user "
                "(or qemu-user-static), plus cmake")


def _missing_tools():
    missing = [t for t in ("aarch64-linux-gnu-g++", "cmake") if shutil.which(t) is None]
    if shutil.which("qemu-aarch64") is None and shutil.which("qemu-aarch64-static") is None:
        missing.append("qemu-aarch64")
    return missing


@pytest.mark.skipif(platform.machine().lower() in ("aarch64", "arm64"),
                    reason="native AArch64 host: the NEON paths run in the regular tests (test_quant_matmul)")
@pytest.mark.skipif(bool(_missing_tools()),
                    reason=f"cross-check needs {', '.join(_missing_tools())} ({INSTALL_HINT})")
def test_aarch64_cross_build_and_neon_kernels_under_qemu():
    build = os.environ.get("PYLLONG_AARCH64_BUILD", str(ROOT / "build" / "aarch64"))
    r = subprocess.run(["bash", str(ROOT / "tools" / "check_aarch64.sh"), build], cwd=ROOT,
                       capture_output=True, text=True, timeout=1800)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-6000:]
    assert "check_aarch64: OK" in out
    # both qemu CPU models ran the comparison, and the SDOT table was refused without DotProd
    assert out.count("OK: every path matches scalar") == 2, out[-6000:]
    assert "path neondot:" in out and "neondot refused on cortex-a72: ok" in out
