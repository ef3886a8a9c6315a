#include "quant/vec_dot.h"
namespace pyllong::quant {
void fill_dot_table_avx512(DotTable&, bool) {}
}
