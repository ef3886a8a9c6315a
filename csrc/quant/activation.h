// Activations are quantized on the fly to 8-bit blocks before a dot product with a
// quantized weight row, as ggml does: the weight's integer levels then multiply the
// activation's int8 values exactly, and only block scales are floats.
#pragma once
#include <cstddef>
#include <cstdint>

#include "gguf/types.h"
#include "quant/blocks.h"

namespace pyllong::quant {

enum class ActFormat {
    F32,   // float weights (F32/F16/BF16): activations stay f32
    Q8A,   // BlockQ8A per 32: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0
    Q8K,   // BlockQ8K per 256: the K-quants
};

ActFormat act_format(GGMLType weight_type);
// Bytes of one activation row of n elements (n a multiple of the block; checked by callers).
size_t act_row_bytes(ActFormat f, int64_t n);
// x: (n,) -> dst: act_row_bytes(f, n) bytes. Symmetric: d = max|x| / 127, q = round(x / d).
void quantize_activation_row(ActFormat f, const float* x, void* dst, int64_t n);
// The values the kernels actually see: src -> y (n,). For tests and oracles.
void dequantize_activation_row(ActFormat f, const void* src, float* y, int64_t n);

}  // namespace pyllong::quant
