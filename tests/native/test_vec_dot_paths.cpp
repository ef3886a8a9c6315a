// Standalone check of every SIMD path this CPU supports against the scalar path, for
// random rows of every weight format: dot products (single-row and 4-row kernels) and
// activation quantization. No Python needed, so it also runs on a cross-compiled target
// under qemu (tools/check_aarch64.sh) as well as natively (-DPYLLONG_NATIVE_TESTS=ON).
//
// Tolerance: all paths quantize the activations to the same bytes (checked here), and
// their integer block sums are exact, so the paths differ only by float rounding (order
// of accumulation, fused multiply-adds). With M = sum_i (|w_i| + |m_i|) * |a_i| the
// magnitude of the dot product's terms (w the dequantized weights, m the per-block min
// part of affine formats, a the dequantized activations), the test requires
//     |path - scalar| <= kRelTol * M,   kRelTol = 1e-5
// for rows of up to 4096 elements. (The largest ratio seen is printed for each format.)
//
// Usage: test_vec_dot_paths [path ...]   (default: every supported path but scalar)
// Exit status 0 when all pass, 1 on any mismatch, 2 on a usage error.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "gguf/types.h"
#include "quant/activation.h"
#include "quant/formats.h"
#include "quant/vec_dot.h"

using namespace pyllong;
using namespace pyllong::quant;

namespace {

constexpr double kRelTol = 1e-5;

const GGMLType kTypes[] = {GGMLType::F32,  GGMLType::F16,  GGMLType::BF16, GGMLType::Q4_0, GGMLType::Q4_1,
                           GGMLType::Q5_0, GGMLType::Q5_1, GGMLType::Q8_0, GGMLType::Q2_K, GGMLType::Q3_K,
                           GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K};

struct ScaleFields {
    int d = -1, m = -1;  // byte offsets in the block of the fp16 scale and of the fp16 min (-1: none)
};
ScaleFields scale_fields(GGMLType t) {
    switch (t) {
        case GGMLType::Q4_0: case GGMLType::Q5_0: case GGMLType::Q8_0: return {0, -1};
        case GGMLType::Q4_1: case GGMLType::Q5_1: return {0, 2};
        case GGMLType::Q2_K: return {80, 82};
        case GGMLType::Q3_K: return {108, -1};
        case GGMLType::Q4_K: case GGMLType::Q5_K: return {0, 2};
        case GGMLType::Q6_K: return {208, -1};
        default: return {};
    }
}

void put_f16(uint8_t* p, float v) {
    const uint16_t h = fp32_to_fp16(v);
    std::memcpy(p, &h, 2);
}

// One weight row of n elements. random_bits: every byte random (all level patterns,
// Q8_0 levels of -128, extreme sub-block scales), then sane fp16 scales; otherwise the
// library's quantizer applied to Gaussian values of a random magnitude.
std::vector<uint8_t> make_row(GGMLType t, int64_t n, bool random_bits, std::mt19937& rng) {
    std::vector<uint8_t> row(row_bytes(t, n));
    std::normal_distribution<float> gauss;
    std::uniform_real_distribution<float> uni(0.5f, 2.0f);
    const float mag = std::exp2(static_cast<float>(static_cast<int>(rng() % 9) - 4));
    if (t == GGMLType::F32 || t == GGMLType::F16 || t == GGMLType::BF16 || !random_bits) {
        std::vector<float> x(static_cast<size_t>(n));
        for (float& v : x) v = gauss(rng) * mag;
        if (t == GGMLType::F32) std::memcpy(row.data(), x.data(), row.size());
        else if (t == GGMLType::F16) for (int64_t i = 0; i < n; ++i) { const uint16_t h = fp32_to_fp16(x[i]); std::memcpy(&row[2 * i], &h, 2); }
        else if (t == GGMLType::BF16) for (int64_t i = 0; i < n; ++i) { const uint16_t h = fp32_to_bf16(x[i]); std::memcpy(&row[2 * i], &h, 2); }
        else quantize_row(t, x.data(), row.data(), n);
        return row;
    }
    for (uint8_t& b : row) b = static_cast<uint8_t>(rng());
    const ScaleFields f = scale_fields(t);
    const size_t bb = block_bytes(t);
    for (size_t off = 0; off < row.size(); off += bb) {
        put_f16(&row[off + f.d], (rng() & 1 ? 1.f : -1.f) * uni(rng) * 1e-2f * mag);
        if (f.m >= 0) put_f16(&row[off + f.m], uni(rng) * 1e-2f * mag);
    }
    return row;
}

// Per-element min part of an affine format (the dequantized row with every d zeroed);
// zeros for the others.
std::vector<float> min_part(GGMLType t, const std::vector<uint8_t>& row, int64_t n) {
    std::vector<float> m(static_cast<size_t>(n), 0.f);
    const ScaleFields f = scale_fields(t);
    if (f.m < 0) return m;
    std::vector<uint8_t> r = row;
    for (size_t off = 0; off < r.size(); off += block_bytes(t)) put_f16(&r[off + f.d], 0.f);
    dequantize_row(t, r.data(), m.data(), n);
    return m;
}

std::vector<float> make_activation(int64_t n, std::mt19937& rng) {
    std::normal_distribution<float> gauss;
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[i] = gauss(rng) * std::exp2(static_cast<float>(static_cast<int>(rng() % 13) - 6));
    if (n >= 64) std::fill(x.begin() + 32, x.begin() + 64, 0.f);  // an all-zero 32-block
    return x;
}

struct Failures {
    int count = 0;
    void fail(const std::string& what) {
        if (++count <= 20) std::printf("  FAIL %s\n", what.c_str());
    }
};

// Activation quantization of the path must give the scalar path's bytes exactly.
void check_activation(SimdPath p, Failures& fails, std::mt19937& rng) {
    const DotTable& ref = dot_table(SimdPath::Scalar);
    const DotTable& tab = dot_table(p);
    for (ActFormat f : {ActFormat::Q8A, ActFormat::Q8K}) {
        for (int64_t n : {256, 4096}) {
            std::vector<float> x = make_activation(n, rng);
            x[5] = 0x1.fffffep+30f;  // a huge value: the rest of its block rounds to 0
            x[300 % n] = -x[300 % n];
            const size_t nb = act_row_bytes(f, n);
            std::vector<uint8_t> a(nb), b(nb);
            ref.quantize_act(f, x.data(), a.data(), n);
            tab.quantize_act(f, x.data(), b.data(), n);
            if (std::memcmp(a.data(), b.data(), nb) != 0)
                fails.fail(std::string(simd_path_name(p)) + ": activation bytes differ (" +
                           (f == ActFormat::Q8A ? "Q8A" : "Q8K") + ", n=" + std::to_string(n) + ")");
        }
    }
}

void check_type(SimdPath p, GGMLType t, Failures& fails, std::mt19937& rng) {
    const DotTable& ref = dot_table(SimdPath::Scalar);
    const DotTable& tab = dot_table(p);
    const int64_t be = block_elems(t);
    const ActFormat af = act_format(t);
    const int64_t sizes[] = {4096, be == 1 ? 1003 : be * 5, be == 1 ? 7 : be};
    double worst = 0;
    for (int64_t n : sizes) {
        // kDotRows activation rows, one buffer with a row stride (as the GEMM passes them)
        const size_t astride = act_row_bytes(af, n);
        std::vector<uint8_t> act(astride * kDotRows);
        std::vector<std::vector<float>> adq(kDotRows, std::vector<float>(static_cast<size_t>(n)));
        for (int k = 0; k < kDotRows; ++k) {
            const std::vector<float> x = make_activation(n, rng);
            quantize_activation_row(af, x.data(), act.data() + k * astride, n);
            dequantize_activation_row(af, act.data() + k * astride, adq[k].data(), n);
        }
        for (int r = 0; r < 12; ++r) {
            const bool random_bits = r % 2 == 1;
            const std::vector<uint8_t> row = make_row(t, n, random_bits, rng);
            std::vector<float> w(static_cast<size_t>(n));
            dequantize_row(t, row.data(), w.data(), n);
            const std::vector<float> m = min_part(t, row, n);
            float rows_out[kDotRows];
            const VecDotRowsFn rows_fn = tab.rows(t);
            if (rows_fn) rows_fn(n, row.data(), act.data(), astride, rows_out);
            for (int k = 0; k < kDotRows; ++k) {
                const uint8_t* ak = act.data() + k * astride;
                double mag = 0;
                for (int64_t i = 0; i < n; ++i) mag += (std::fabs(double(w[i])) + std::fabs(double(m[i]))) * std::fabs(double(adq[k][i]));
                const float s = ref[t](n, row.data(), ak);
                const float v = tab[t](n, row.data(), ak);
                const double tol = kRelTol * mag;
                const std::string where = std::string(simd_path_name(p)) + " " + name_of(t) + " n=" +
                                          std::to_string(n) + " row " + std::to_string(r) +
                                          (random_bits ? " (random bits)" : " (quantized)") + " act " + std::to_string(k);
                auto check = [&](float got, const char* kind) {
                    const double err = std::fabs(double(got) - double(s));
                    if (mag > 0) worst = std::max(worst, err / mag);
                    if (!(err <= tol))  // also catches NaN
                        fails.fail(where + " " + kind + ": scalar " + std::to_string(s) + " vs " +
                                   std::to_string(got) + " (|err| " + std::to_string(err) + " > tol " +
                                   std::to_string(tol) + ")");
                };
                check(v, "gemv");
                if (rows_fn) check(rows_out[k], "4-row");
            }
        }
    }
    std::printf("  %-5s %-6s max |err|/M = %.2e %s%s\n", simd_path_name(p), name_of(t), worst,
                tab[t] == ref[t] ? "(scalar kernel)" : "", tab.rows(t) ? " +4-row kernel" : "");
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<SimdPath> paths;
    try {
        if (argc > 1) {
            for (int i = 1; i < argc; ++i) paths.push_back(simd_path_from_name(argv[i]));
        } else {
            for (SimdPath p : supported_simd_paths())
                if (p != SimdPath::Scalar) paths.push_back(p);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 2;
    }
    std::printf("supported paths:");
    for (SimdPath p : supported_simd_paths()) std::printf(" %s", simd_path_name(p));
    std::printf("; default: %s; tolerance |path - scalar| <= %.0e * sum(|w|+|m|)|a|\n",
                simd_path_name(default_simd_path()), kRelTol);
    if (paths.empty()) {
        std::printf("no SIMD path besides scalar on this CPU: nothing to compare\n");
        return 0;
    }
    Failures fails;
    std::mt19937 rng(1234);
    for (SimdPath p : paths) {
        try {
            dot_table(p);
        } catch (const std::exception& e) {
            std::printf("%s\n", e.what());
            return 2;
        }
        std::printf("path %s:\n", simd_path_name(p));
        check_activation(p, fails, rng);
        for (GGMLType t : kTypes) check_type(p, t, fails, rng);
    }
    if (fails.count) {
        std::printf("FAILED: %d mismatches\n", fails.count);
        return 1;
    }
    std::printf("OK: every path matches scalar\n");
    return 0;
}
