// The SIMD features the kernels can use, read once at startup: on x86 from CPUID (and
// the OS's XSAVE state, via the compiler's __builtin_cpu_supports); on AArch64 from the
// kernel's HWCAP bits (Linux) or sysctl (macOS). Fields of the other architecture stay false.
#pragma once

namespace pyllong {

struct CpuFeatures {
    // x86
    bool avx2_fma_f16c = false;  // what the *_avx2.cpp files need
    bool avx512 = false;         // F + BW + VL + DQ: what the *_avx512.cpp files need
    bool avx512_vnni = false;    // additionally VNNI (vpdpbusd)
    // AArch64
    bool neon = false;           // Advanced SIMD: mandatory on AArch64, what *_neon.cpp needs
    bool neon_dotprod = false;   // additionally SDOT/UDOT (ARMv8.2 DotProd): *_neon_dotprod.cpp
};

const CpuFeatures& cpu_features();

}  // namespace pyllong
