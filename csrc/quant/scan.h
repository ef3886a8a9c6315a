// Load-time integrity pass over quantized blocks (hardening item 24): every fp16 block
// scale (d, and dmin where the format has one) must be finite.
#pragma once
#include <cstdint>

namespace pyllong {

// Index of the first block whose scale is NaN or Inf, or -1. Types without block
// scales (F32, F16, BF16) return -1.
int64_t first_nonfinite_scale_block(uint32_t type, const uint8_t* data, int64_t n_blocks);

// Index of the first non-finite float, or -1.
int64_t first_nonfinite_f32(const uint8_t* data, int64_t n);

}  // namespace pyllong
