#include "python/bindings.h"

namespace pyllong::python {
// Quantized formats and kernels are bound here (issue: quantized kernels on the CPU).
void bind_quant(pybind11::module_&) {}
}  // namespace pyllong::python
