// Choice of the SIMD path: compiled-in ISAs x CPU features x the PYLLONG_SIMD override.
// The tables are built once and never change afterwards.
#include <cctype>
#include <cstdlib>

#include "core/cpu_features.h"
#include "core/error.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {

namespace {
// Indexed by the enum's value; within one architecture, slower paths first.
constexpr SimdPath kAll[] = {SimdPath::Scalar, SimdPath::Avx2,  SimdPath::Avx512,
                             SimdPath::Avx512Vnni, SimdPath::Neon, SimdPath::NeonDot};

bool supported(SimdPath p) {
    const CpuFeatures& f = cpu_features();
    (void)f;  // unused on architectures without SIMD paths
    switch (p) {
        case SimdPath::Scalar: return true;
#ifdef PYLLONG_X86
        case SimdPath::Avx2: return f.avx2_fma_f16c;
        case SimdPath::Avx512: return f.avx512;
        case SimdPath::Avx512Vnni: return f.avx512_vnni;
#endif
#ifdef PYLLONG_AARCH64
        case SimdPath::Neon: return f.neon;
        case SimdPath::NeonDot: return f.neon_dotprod;
#endif
        default: return false;
    }
}

DotTable build(SimdPath p) {
    DotTable t;
    fill_dot_table_scalar(t);
    // Never even call another ISA's filler (compiled with that ISA's flags) on a CPU
    // without it: an unsupported path's table stays scalar and dot_table refuses it.
    if (!supported(p)) return t;
#ifdef PYLLONG_X86
    if (p == SimdPath::Avx2 || p == SimdPath::Avx512 || p == SimdPath::Avx512Vnni) {  // AVX-512 CPUs run AVX2 code too
        fill_dot_table_avx2(t);
        fill_act_quantizer_avx2(t);
        fill_packed_avx2(t);
    }
    if (p == SimdPath::Avx512 || p == SimdPath::Avx512Vnni) fill_dot_table_avx512(t, p == SimdPath::Avx512Vnni);
    if (p == SimdPath::Avx512Vnni) fill_packed_avx512(t);
#endif
#ifdef PYLLONG_AARCH64
    if (p == SimdPath::Neon || p == SimdPath::NeonDot) {  // the SDOT table overrides the integer kernels
        fill_dot_table_neon(t);
        fill_act_quantizer_neon(t);
    }
    if (p == SimdPath::NeonDot) fill_dot_table_neon_dotprod(t);
#endif
    return t;
}

SimdPath choose_default() {
    if (const char* env = std::getenv("PYLLONG_SIMD"); env && *env) {
        const SimdPath p = simd_path_from_name(env);
        if (!supported(p))
            throw InvalidArgument(std::string("PYLLONG_SIMD=") + env + ": this CPU (or build) does not support it");
        return p;
    }
    return supported_simd_paths().back();
}
}  // namespace

const char* simd_path_name(SimdPath p) {
    switch (p) {
        case SimdPath::Scalar: return "scalar";
        case SimdPath::Avx2: return "avx2";
        case SimdPath::Avx512: return "avx512";
        case SimdPath::Avx512Vnni: return "avx512vnni";
        case SimdPath::Neon: return "neon";
        case SimdPath::NeonDot: return "neondot";
    }
    return "?";
}

SimdPath simd_path_from_name(const std::string& name) {
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (SimdPath p : kAll)
        if (lower == simd_path_name(p)) return p;
    throw InvalidArgument("unknown SIMD path '" + name + "' (expected scalar, avx2, avx512, avx512vnni, neon or neondot)");
}

std::vector<SimdPath> supported_simd_paths() {
    std::vector<SimdPath> out;
    for (SimdPath p : kAll)
        if (supported(p)) out.push_back(p);
    return out;
}

SimdPath default_simd_path() {
    static const SimdPath p = choose_default();  // a throw here is retried on the next call
    return p;
}

const DotTable& dot_table(SimdPath p) {
    static const DotTable tables[] = {build(kAll[0]), build(kAll[1]), build(kAll[2]),
                                     build(kAll[3]), build(kAll[4]), build(kAll[5])};
    if (!supported(p)) throw InvalidArgument(std::string("SIMD path ") + simd_path_name(p) + " is not supported here");
    return tables[static_cast<int>(p)];
}

}  // namespace pyllong::quant
