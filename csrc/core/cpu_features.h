// The x86 SIMD features the kernels can use, read once from CPUID (and the OS's
// XSAVE state, via the compiler's __builtin_cpu_supports).
#pragma once

namespace pyllong {

struct CpuFeatures {
    bool avx2_fma_f16c = false;  // what the *_avx2.cpp files need
    bool avx512 = false;         // F + BW + VL + DQ: what the *_avx512.cpp files need
    bool avx512_vnni = false;    // additionally VNNI (vpdpbusd)
};

const CpuFeatures& cpu_features();

}  // namespace pyllong
