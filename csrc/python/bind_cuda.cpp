// The CUDA backend from Python: device queries, and kernel probes that the tests compare
// with the CPU path. Without a CUDA build the probes raise DeviceError.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>

#include "core/error.h"
#include "cuda/backend.h"
#include "cuda/device.h"
#include "python/bindings.h"
#include "quant/formats.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_cuda(py::module_& m) {
    m.def("cuda_built", &cuda::built, "Whether this build includes the CUDA backend.");
    m.def("cuda_device_count", &cuda::device_count, "Visible CUDA devices (0 without a GPU or a CUDA build).");
    m.def("cuda_device_name", &cuda::device_name, py::arg("index"));

    m.def("cuda_matmul_probe", [](uint32_t type, py::array_t<uint8_t, py::array::c_style> w, int64_t n_in,
                                  F32Array x) {
        const auto t = static_cast<GGMLType>(type);
        const size_t rb = quant::row_bytes(t, n_in);  // validates type and length
        if (x.ndim() != 2 || x.shape(1) != n_in) throw InvalidArgument("x must be (n_tok, n_in)");
        if (w.size() == 0 || static_cast<size_t>(w.size()) % rb != 0)
            throw InvalidArgument("w must hold whole rows of " + std::to_string(rb) + " bytes");
        const int64_t n_out = static_cast<int64_t>(w.size() / rb), n_tok = x.shape(0);
        std::vector<float> y;
        {
            py::gil_scoped_release nogil;
            y = cuda::matmul_probe(t, w.data(), n_in, n_out, x.data(), n_tok);
        }
        py::array_t<float> out({n_tok, n_out});
        std::memcpy(out.mutable_data(), y.data(), y.size() * sizeof(float));
        return out;
    }, py::arg("type"), py::arg("w"), py::arg("n_in"), py::arg("x"),
       "y (n_tok, n_out) = x · Wᵀ on the device, W given as raw rows of a ggml type.");

    m.def("cuda_attention_probe", [](F32Array q, F32Array k, F32Array v, int64_t n_rot, float freq_base, bool neox,
                                     int64_t chunk, py::object self_extend) {
        const auto [n, H, Hkv, D] = probe_shape(q, k, v, n_rot, chunk);
        const SelfExtend se = self_extend_arg(self_extend);
        RopeParams rp;
        rp.mode = neox ? RopeMode::NeoX : RopeMode::Normal;
        rp.n_rot = n_rot;
        rp.freq_base = freq_base;
        std::vector<float> o;
        {
            py::gil_scoped_release nogil;
            o = cuda::attention_probe(q.data(), k.data(), v.data(), n, H, Hkv, D, rp, se, chunk);
        }
        py::array_t<float> out({n, H, D});
        std::memcpy(out.mutable_data(), o.data(), o.size() * sizeof(float));
        return out;
    }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("n_rot"), py::arg("freq_base") = 10000.0f,
       py::arg("neox") = false, py::arg("chunk") = 1 << 30, py::arg("self_extend") = py::none(),
       "The device attention step, as attention_probe on the CPU.");
}

}  // namespace pyllong::python
