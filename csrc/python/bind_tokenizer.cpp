#include "python/bindings.h"

namespace pyllong::python {
// Tokenizers are bound here (issue: the model runs).
void bind_tokenizer(pybind11::module_&) {}
}  // namespace pyllong::python
