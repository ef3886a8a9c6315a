// Row-level entry points over the ggml tensor formats: size of a row, dequantize, quantize.
// A "row" is n contiguous elements (n a multiple of the type's block size), as in ggml.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "gguf/types.h"

namespace pyllong::quant {

// The formats this module implements (the allow-list of issue 3, without the
// activation-only Q8_1 / Q8_K).
bool is_implemented(GGMLType t);
// "Q4_K" -> GGMLType::Q4_K (case-insensitive); throws InvalidArgument for anything else.
GGMLType type_from_name(const std::string& name);
const char* name_of(GGMLType t);
int64_t block_elems(GGMLType t);   // 1, 32 or 256
size_t block_bytes(GGMLType t);
// Bytes of a row of n elements; throws InvalidArgument when n is not a multiple of the block.
size_t row_bytes(GGMLType t, int64_t n);

// dst: (n,) floats; src: row_bytes(t, n) bytes. Bit-identical to gguf.quants.dequantize.
void dequantize_row(GGMLType t, const void* src, float* dst, int64_t n);
// dst: row_bytes(t, n) bytes; src: (n,) floats. ggml's reference (round-to-nearest /
// scale-search) quantizers.
void quantize_row(GGMLType t, const float* src, void* dst, int64_t n);

}  // namespace pyllong::quant
