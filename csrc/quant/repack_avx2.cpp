// Kernels over the repacked layouts with AVX2 integer dots (maddubs + madd).
#include "quant/repack_x86_impl.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {
void fill_packed_avx2(DotTable& t) { fill_packed<IsaAvx2>(t); }
}  // namespace pyllong::quant
