// The NEON integer kernels again, compiled with -march=armv8.2-a+dotprod so that int8
// dot products use SDOT (vdotq_s32). Run only when the CPU reports DotProd; the float
// kernels and the activation quantizer come from the plain NEON table.
#if !defined(__ARM_FEATURE_DOTPROD)
#error "vec_dot_neon_dotprod.cpp must be compiled with +dotprod (see CMakeLists.txt)"
#endif
#include "quant/vec_dot_neon_impl.h"

namespace pyllong::quant {

void fill_dot_table_neon_dotprod(DotTable& t) { fill_integer_kernels(t); }

}  // namespace pyllong::quant
