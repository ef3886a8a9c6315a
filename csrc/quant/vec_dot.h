// Dot products of one weight row with one (quantized) activation row, per weight format
// and per SIMD path. A DotTable is the read-only dispatch table of one path; it starts
// as the scalar reference and each ISA overrides the formats it accelerates.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/types.h"
#include "quant/activation.h"

namespace pyllong::quant {

// n: elements in the row; w: the weight row (row_bytes(type, n) bytes); a: the activation
// row in act_format(type) (act_row_bytes bytes).
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);
// The same for kDotRows activation rows at once (a + k * a_stride bytes, k < kDotRows),
// out: (kDotRows,). The weight row is unpacked once: the GEMM (prefill) kernel.
constexpr int kDotRows = 4;
using VecDotRowsFn = void (*)(int64_t n, const void* w, const void* a, size_t a_stride, float* out);

// A repacked group of kPackRows weight rows (quant/repack.h) times n_tok activation rows
// (a + t * a_stride bytes): y[t * y_stride + r] for t < n_tok and the group's first n_rows
// rows (n_rows <= kPackRows; the layout's padding rows are not stored).
using PackedGemmFn = void (*)(int64_t n_in, const void* w, const void* a, size_t a_stride, int64_t n_tok, float* y,
                              size_t y_stride, int n_rows);

// Neon: AArch64 Advanced SIMD; NeonDot: the same plus the ARMv8.2 SDOT instruction.
enum class SimdPath { Scalar, Avx2, Avx512, Avx512Vnni, Neon, NeonDot };

constexpr int kTypeSlots = 31;  // GGMLType ids 0..30
// x: (n,) -> the activation row in format f; every path's version gives the same bytes.
using ActQuantizeFn = void (*)(ActFormat f, const float* x, void* dst, int64_t n);

struct DotTable {
    ActQuantizeFn quantize_act = quantize_activation_row;
    VecDotFn fn[kTypeSlots] = {};
    VecDotRowsFn fn_rows[kTypeSlots] = {};  // optional: nullptr = use fn per row
    // optional: kernels over the repacked layout (nullptr = this path reads the ggml rows)
    PackedGemmFn fn_packed[kTypeSlots] = {};
    int packed_min_tok[kTypeSlots] = {};  // fewer tokens than this: the rows kernels are faster
    VecDotFn operator[](GGMLType t) const { return fn[static_cast<uint32_t>(t)]; }
    VecDotRowsFn rows(GGMLType t) const { return fn_rows[static_cast<uint32_t>(t)]; }
    PackedGemmFn packed(GGMLType t) const { return fn_packed[static_cast<uint32_t>(t)]; }
    void set_packed(GGMLType t, PackedGemmFn f, int min_tok = 1) {
        fn_packed[static_cast<uint32_t>(t)] = f;
        packed_min_tok[static_cast<uint32_t>(t)] = min_tok;
    }
    // The packed kernel for n_tok tokens, or nullptr where the rows kernels are used.
    PackedGemmFn packed_for(GGMLType t, int64_t n_tok) const {
        const auto i = static_cast<uint32_t>(t);
        return n_tok >= packed_min_tok[i] ? fn_packed[i] : nullptr;
    }
    // A faster ISA may replace only the single-row kernel; the multi-row one of a lower
    // ISA (AVX2 on an AVX-512 CPU) then stays in use for GEMM. Both are tested per path.
    void set(GGMLType t, VecDotFn f) { fn[static_cast<uint32_t>(t)] = f; }
    void set(GGMLType t, VecDotFn f, VecDotRowsFn f_rows) {
        fn[static_cast<uint32_t>(t)] = f;
        fn_rows[static_cast<uint32_t>(t)] = f_rows;
    }
};

const char* simd_path_name(SimdPath p);
SimdPath simd_path_from_name(const std::string& name);  // throws InvalidArgument
// Paths compiled in and supported by this CPU, slowest (scalar) first.
std::vector<SimdPath> supported_simd_paths();
// PYLLONG_SIMD if set (InvalidArgument when the CPU lacks it), else the best supported.
SimdPath default_simd_path();
// The table of a supported path; throws InvalidArgument for an unsupported one.
const DotTable& dot_table(SimdPath p);

// Per-ISA fillers, each in its own translation unit compiled with that ISA's flags.
void fill_dot_table_scalar(DotTable& t);
void fill_dot_table_avx2(DotTable& t);
void fill_act_quantizer_avx2(DotTable& t);
void fill_dot_table_avx512(DotTable& t, bool vnni);
void fill_packed_avx2(DotTable& t);
void fill_packed_avx512(DotTable& t);  // VNNI
void fill_dot_table_neon(DotTable& t);
void fill_act_quantizer_neon(DotTable& t);
void fill_dot_table_neon_dotprod(DotTable& t);

}  // namespace pyllong::quant
