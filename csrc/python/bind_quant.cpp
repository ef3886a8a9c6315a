// Python face of csrc/quant and ops/matmul: numpy in, numpy out, GIL released around
// the kernels. pyllong/quant.py wraps these with shapes and type names.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>

#include "core/error.h"
#include "python/bindings.h"
#include "quant/formats.h"

namespace py = pybind11;

namespace pyllong::python {

namespace {
using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
using F32Array = py::array_t<float, py::array::c_style | py::array::forcecast>;

// raw: (n_rows * row_bytes(n_per_row),) bytes -> (n_elements,) floats
py::array_t<float> dequantize(const std::string& type_name, const U8Array& raw, int64_t n_elements) {
    const GGMLType t = quant::type_from_name(type_name);
    const int64_t be = quant::block_elems(t);
    if (n_elements < 0 || n_elements % be != 0)
        throw InvalidArgument("n_elements must be a non-negative multiple of " + std::to_string(be));
    const size_t need = quant::row_bytes(t, n_elements);
    if (static_cast<size_t>(raw.size()) != need)
        throw InvalidArgument("expected " + std::to_string(need) + " bytes of " + type_name + " data, got " +
                              std::to_string(raw.size()));
    py::array_t<float> out(n_elements);
    const uint8_t* src = raw.data();
    float* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        quant::dequantize_row(t, src, dst, n_elements);
    }
    return out;
}

// x: (..., n) floats, quantized row by row along the last axis -> flat bytes
py::array_t<uint8_t> quantize(const std::string& type_name, const F32Array& x) {
    const GGMLType t = quant::type_from_name(type_name);
    if (x.ndim() < 1) throw InvalidArgument("quantize needs at least one dimension");
    const int64_t n = x.shape(x.ndim() - 1);
    const int64_t rows = n ? x.size() / n : 0;
    const size_t rb = quant::row_bytes(t, n);
    py::array_t<uint8_t> out(static_cast<py::ssize_t>(rb * rows));
    const float* src = x.data();
    uint8_t* dst = out.mutable_data();
    {
        py::gil_scoped_release nogil;
        for (int64_t r = 0; r < rows; ++r) quant::quantize_row(t, src + r * n, dst + r * rb, n);
    }
    return out;
}
}  // namespace

void bind_quant(py::module_& m) {
    m.def("dequantize", &dequantize, py::arg("type_name"), py::arg("raw"), py::arg("n_elements"),
          "Dequantize raw GGML blocks of type_name to a flat float32 array.");
    m.def("quantize", &quantize, py::arg("type_name"), py::arg("x"),
          "Quantize float32 rows (last axis) to raw GGML blocks (flat uint8 array).");
    m.def("row_bytes", [](const std::string& t, int64_t n) { return quant::row_bytes(quant::type_from_name(t), n); },
          py::arg("type_name"), py::arg("n"));
    m.def("block_elems", [](const std::string& t) { return quant::block_elems(quant::type_from_name(t)); },
          py::arg("type_name"));
}

}  // namespace pyllong::python
