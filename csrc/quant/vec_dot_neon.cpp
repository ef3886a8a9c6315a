// NEON dot products for AArch64 (Advanced SIMD is baseline there: no extra flags). The
// kernels live in vec_dot_neon_impl.h, shared with vec_dot_neon_dotprod.cpp; here the
// int8 products use widening multiplies unless the whole build targets DotProd.
#include "quant/vec_dot_neon_impl.h"

namespace pyllong::quant {

void fill_dot_table_neon(DotTable& t) {
    t.set(GGMLType::F32, dot_f32);
    t.set(GGMLType::F16, dot_f16);
    t.set(GGMLType::BF16, dot_bf16);
    // Q2_K and Q3_K stay scalar on this path.
    fill_integer_kernels(t);
}

}  // namespace pyllong::quant
