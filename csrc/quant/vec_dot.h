// Dot products of one weight row with one (quantized) activation row, per weight format
// and per SIMD path. A DotTable is the read-only dispatch table of one path; it starts
// as the scalar reference and each ISA overrides the formats it accelerates.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gguf/types.h"

namespace pyllong::quant {

// n: elements in the row; w: the weight row (row_bytes(type, n) bytes); a: the activation
// row in act_format(type) (act_row_bytes bytes).
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

enum class SimdPath { Scalar, Avx2, Avx512, Avx512Vnni };

constexpr int kTypeSlots = 31;  // GGMLType ids 0..30
struct DotTable {
    VecDotFn fn[kTypeSlots] = {};
    VecDotFn operator[](GGMLType t) const { return fn[static_cast<uint32_t>(t)]; }
    void set(GGMLType t, VecDotFn f) { fn[static_cast<uint32_t>(t)] = f; }
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
void fill_dot_table_avx512(DotTable& t, bool vnni);

}  // namespace pyllong::quant
