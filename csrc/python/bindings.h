// Each layer's bindings live in their own file; module.cpp calls them in order.
#pragma once
#include <pybind11/pybind11.h>

#include <string_view>

namespace pyllong::python {

// Strings that come from a file may be any bytes: decode with replacement, never raise.
inline pybind11::str to_str(std::string_view s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
    if (!o) throw pybind11::error_already_set();
    return pybind11::reinterpret_steal<pybind11::str>(o);
}

void bind_gguf(pybind11::module_& m);
void bind_model(pybind11::module_& m);
void bind_context(pybind11::module_& m);
void bind_quant(pybind11::module_& m);
void bind_tokenizer(pybind11::module_& m);
void bind_state(pybind11::module_& m);
void bind_cuda(pybind11::module_& m);
}  // namespace pyllong::python
