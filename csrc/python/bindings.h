// Each layer's bindings live in their own file; module.cpp calls them in order.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string_view>

#include "attention/self_extend.h"
#include "core/error.h"

namespace pyllong::python {

// Strings that come from a file may be any bytes: decode with replacement, never raise.
inline pybind11::str to_str(std::string_view s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
    if (!o) throw pybind11::error_already_set();
    return pybind11::reinterpret_steal<pybind11::str>(o);
}

using F32Array = pybind11::array_t<float, pybind11::array::c_style | pybind11::array::forcecast>;

// None, or a (G, W) pair checked by make_self_extend.
inline SelfExtend self_extend_arg(const pybind11::object& gw) {
    if (gw.is_none()) return SelfExtend{};
    const auto p = gw.cast<std::pair<int64_t, int64_t>>();
    return make_self_extend(p.first, p.second);
}

// The attention probes' inputs: q (n, H, D), k and v (n, Hkv, D) with H % Hkv == 0,
// an even n_rot <= D and chunk >= 1. Returns {n, H, Hkv, D}.
struct ProbeShape { int64_t n, n_head, n_head_kv, head_dim; };
inline ProbeShape probe_shape(const F32Array& q, const F32Array& k, const F32Array& v, int64_t n_rot, int64_t chunk) {
    if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3)
        throw InvalidArgument("q, k, v must be (n_tok, n_head, head_dim) arrays");
    const int64_t n = q.shape(0), H = q.shape(1), D = q.shape(2), Hkv = k.shape(1);
    if (k.shape(0) != n || v.shape(0) != n || k.shape(2) != D || v.shape(1) != Hkv || v.shape(2) != D ||
        Hkv < 1 || H % Hkv != 0 || chunk < 1 || n_rot < 0 || n_rot > D || n_rot % 2)
        throw InvalidArgument("attention probe: inconsistent shapes or parameters");
    return {n, H, Hkv, D};
}

void bind_gguf(pybind11::module_& m);
void bind_model(pybind11::module_& m);
void bind_context(pybind11::module_& m);
void bind_quant(pybind11::module_& m);
void bind_tokenizer(pybind11::module_& m);
void bind_state(pybind11::module_& m);
void bind_cuda(pybind11::module_& m);
void bind_sampling(pybind11::module_& m);
}  // namespace pyllong::python
