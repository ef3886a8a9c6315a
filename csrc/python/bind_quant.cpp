// Python face of csrc/quant and ops/matmul: numpy in, numpy out, GIL released around
// the kernels. pyllong/quant.py wraps these with shapes and type names.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "python/bindings.h"
#include "core/page_buffer.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "quant/activation.h"
#include "quant/formats.h"
#include "quant/repack.h"
#include "quant/vec_dot.h"

namespace py = pybind11;

namespace pyllong::python {

namespace {
using U8Array = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

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
quant::SimdPath path_or_default(const std::optional<std::string>& simd) {
    return simd ? quant::simd_path_from_name(*simd) : quant::default_simd_path();
}

// The repacked copy of w (quant/repack.h) when the path has kernels for it and repack asks
// for it (None: as a model load does, PYLLONG_REPACK permitting); empty otherwise.
PageBuffer maybe_repack(GGMLType t, const uint8_t* w, int64_t n_out, int64_t n_in, quant::SimdPath path,
                                  std::optional<bool> repack) {
    const bool want = repack ? *repack : quant::repack_enabled();
    if (!want || !quant::dot_table(path).packed(t)) return {};
    PageBuffer out(quant::packed_bytes(t, n_in, n_out));
    quant::repack_rows(t, w, 0, n_in, n_out, out.data());
    return out;
}

// x: (n,) -> the activation values the dot kernels of weight type_name see, (n,) floats
py::array_t<float> quantize_activation(const std::string& type_name, const F32Array& x,
                                       const std::optional<std::string>& simd) {
    const GGMLType t = quant::type_from_name(type_name);
    const int64_t n = x.size();
    quant::row_bytes(t, n);
    const quant::ActFormat af = quant::act_format(t);
    std::vector<uint8_t> buf(quant::act_row_bytes(af, n));
    py::array_t<float> out(n);
    quant::dot_table(path_or_default(simd)).quantize_act(af, x.data(), buf.data(), n);
    quant::dequantize_activation_row(af, buf.data(), out.mutable_data(), n);
    return out;
}

// w_raw: (n_out * row_bytes(n_in),) bytes; x: (n_tok, n_in) or (n_in,) -> y: (n_tok, n_out) or (n_out,)
py::array_t<float> matmul(const std::string& type_name, const U8Array& w_raw, int64_t n_out, int64_t n_in,
                          const F32Array& x, int n_threads, const std::optional<std::string>& simd,
                          ThreadPool* pool, std::optional<bool> repack) {
    const GGMLType t = quant::type_from_name(type_name);
    const size_t rb = quant::row_bytes(t, n_in);
    if (n_out < 0 || static_cast<size_t>(w_raw.size()) != rb * static_cast<size_t>(n_out))
        throw InvalidArgument("weight bytes do not match (" + std::to_string(n_out) + ", " + std::to_string(n_in) +
                              ") " + type_name);
    if (x.ndim() < 1 || x.ndim() > 2 || x.shape(x.ndim() - 1) != n_in)
        throw InvalidArgument("x must have shape (n_tok, n_in) or (n_in,)");
    const int64_t n_tok = x.ndim() == 2 ? x.shape(0) : 1;
    const quant::SimdPath path = path_or_default(simd);
    py::array_t<float> y = x.ndim() == 2 ? py::array_t<float>({n_tok, n_out}) : py::array_t<float>(n_out);
    const PageBuffer packed = maybe_repack(t, w_raw.data(), n_out, n_in, path, repack);
    const QTensorView W{t, w_raw.data(), n_in, n_out, rb, packed.empty() ? nullptr : packed.data()};
    const float* xp = x.data();
    float* yp = y.mutable_data();
    {
        py::gil_scoped_release nogil;
        if (pool) {
            pyllong::matmul(W, xp, yp, n_tok, *pool, n_threads, path);
        } else {
            ThreadPool local(std::max(1, n_threads));  // convenience for one-off calls
            pyllong::matmul(W, xp, yp, n_tok, local, n_threads, path);
        }
    }
    return y;
}
// Median seconds per matmul call, timed in C++ (no Python overhead per call), cycling
// through the weight copies ws so they can be made to exceed the caches.
double matmul_timed(const std::string& type_name, const std::vector<U8Array>& ws, int64_t n_out, int64_t n_in,
                    const F32Array& x, int n_threads, const std::optional<std::string>& simd, ThreadPool& pool,
                    int reps, std::optional<bool> repack) {
    const GGMLType t = quant::type_from_name(type_name);
    const size_t rb = quant::row_bytes(t, n_in);
    if (ws.empty() || reps < 1) throw InvalidArgument("need at least one weight copy and one repetition");
    for (const auto& w : ws)
        if (static_cast<size_t>(w.size()) != rb * static_cast<size_t>(n_out)) throw InvalidArgument("weight size mismatch");
    if (x.size() % n_in != 0) throw InvalidArgument("x size is not a multiple of n_in");
    const int64_t n_tok = x.size() / n_in;
    const quant::SimdPath path = path_or_default(simd);
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));  // (n_tok, n_out)
    std::vector<double> times;
    std::vector<PageBuffer> packed;  // one repacked copy per weight copy (or none)
    for (const auto& w : ws) packed.push_back(maybe_repack(t, w.data(), n_out, n_in, path, repack));
    py::gil_scoped_release nogil;
    for (int r = -1; r < reps; ++r) {  // r = -1: warm-up
        const size_t c = static_cast<size_t>(r + 1) % ws.size();
        const QTensorView W{t, ws[c].data(), n_in, n_out, rb, packed[c].empty() ? nullptr : packed[c].data()};
        const auto t0 = std::chrono::steady_clock::now();
        pyllong::matmul(W, x.data(), y.data(), n_tok, pool, n_threads, path);
        if (r >= 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
    return times[times.size() / 2];
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
    m.def("quantize_activation", &quantize_activation, py::arg("type_name"), py::arg("x"), py::arg("simd") = py::none(),
          "The 8-bit-quantized activation values that type_name's dot kernels consume (as float32).");
    py::class_<ThreadPool>(m, "ThreadPool", "A persistent pool of worker threads for the kernels.")
        .def(py::init<int>(), py::arg("n_threads"))
        .def_property_readonly("size", &ThreadPool::size);
    m.def("matmul", &matmul, py::arg("type_name"), py::arg("w_raw"), py::arg("n_out"), py::arg("n_in"),
          py::arg("x"), py::arg("n_threads") = 1, py::arg("simd") = py::none(), py::arg("pool") = nullptr,
          py::arg("repack") = py::none(),
          "y = W x for W quantized as type_name with shape (n_out, n_in); x: (n_tok, n_in) or (n_in,). "
          "repack: use the row-interleaved layout where the path has kernels for it (None: as a model "
          "load does, unless PYLLONG_REPACK=0).");
    m.def("matmul_timed", &matmul_timed, py::arg("type_name"), py::arg("ws"), py::arg("n_out"), py::arg("n_in"),
          py::arg("x"), py::arg("n_threads"), py::arg("simd"), py::arg("pool"), py::arg("reps"),
          py::arg("repack") = py::none(),
          "Median seconds of one matmul, timed natively, cycling over the weight copies ws (benchmarks).");
    m.def("simd_paths", [] {
        std::vector<std::string> out;
        for (auto p : quant::supported_simd_paths()) out.push_back(quant::simd_path_name(p));
        return out;
    }, "SIMD paths this CPU and build support, slowest first.");
    m.def("packed_types", [](const std::optional<std::string>& simd) {
        std::vector<std::string> out;
        const quant::DotTable& t = quant::dot_table(path_or_default(simd));
        for (int i = 0; i < quant::kTypeSlots; ++i)
            if (t.fn_packed[i]) out.push_back(quant::name_of(static_cast<GGMLType>(i)));
        return out;
    }, py::arg("simd") = py::none(), "Weight types with kernels over the repacked layout on this path.");
    m.def("simd_path", [] { return std::string(quant::simd_path_name(quant::default_simd_path())); },
          "The path used by default (PYLLONG_SIMD or the best supported).");
}

}  // namespace pyllong::python
