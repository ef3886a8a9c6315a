// Kernels over the repacked layouts with VNNI (vpdpbusd on 256-bit registers: AVX512-VL;
// 512-bit registers are double-pumped on Zen 4 and measured slower for these formats).
#include "quant/repack_x86_impl.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {
void fill_packed_avx512(DotTable& t) { fill_packed<IsaVnni>(t); }
}  // namespace pyllong::quant
