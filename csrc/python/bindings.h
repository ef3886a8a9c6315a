// Each layer's bindings live in their own file; module.cpp calls them in order.
#pragma once
#include <pybind11/pybind11.h>

namespace pyllong::python {
void bind_gguf(pybind11::module_& m);
void bind_model(pybind11::module_& m);
void bind_quant(pybind11::module_& m);
void bind_tokenizer(pybind11::module_& m);
}  // namespace pyllong::python
