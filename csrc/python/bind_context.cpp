// pyllong._core.Context: the forward pass over a KV cache. Native work releases the GIL.
#include <pybind11/numpy.h>

#include "core/error.h"
#include "model/context.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_context(py::module_& m) {
    py::class_<Context>(m, "Context", "A KV cache and scratch space for running one model.")
        .def(py::init([](std::shared_ptr<ModelFile> mf, int64_t n_ctx, int n_threads, int64_t n_batch,
                         const std::string& kv_type) {
            ContextParams p;
            p.kv_type = kv_type_from_name(kv_type);
            p.n_ctx = n_ctx;
            p.n_threads = n_threads;
            p.n_batch = n_batch;
            py::gil_scoped_release nogil;
            return std::make_unique<Context>(std::move(mf), p);
        }), py::arg("model_file"), py::arg("n_ctx") = 4096, py::arg("n_threads") = 0, py::arg("n_batch") = 512,
            py::arg("kv_type") = "f16")
        .def("eval", [](Context& c, py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens,
                        bool logits_all) {
            if (tokens.ndim() != 1) throw InvalidArgument("tokens must be a 1-D sequence of ids");
            std::vector<int32_t> ids(tokens.data(), tokens.data() + tokens.size());
            std::vector<float> logits;
            {
                py::gil_scoped_release nogil;
                logits = c.eval(ids.data(), static_cast<int64_t>(ids.size()), logits_all);
            }
            const int64_t rows = static_cast<int64_t>(logits.size()) / c.n_vocab();
            py::array_t<float> out({rows, c.n_vocab()});
            std::memcpy(out.mutable_data(), logits.data(), logits.size() * sizeof(float));
            return out;
        }, py::arg("tokens"), py::arg("logits_all") = false,
           "Append tokens to the cache; logits (n, n_vocab) if logits_all else (1, n_vocab) for the last.")
        .def_property_readonly("n_past", &Context::n_past)
        .def_property_readonly("n_ctx", &Context::n_ctx)
        .def_property_readonly("n_vocab", &Context::n_vocab)
        .def_property_readonly("kv_bytes", &Context::kv_bytes)
        .def_property_readonly("kv_type", [](const Context& c) { return kv_type_name(c.kv_type()); })
        .def("reset", &Context::reset)
        .def("truncate", [](Context& c, int64_t n) { c.truncate(n); }, py::arg("n_keep"))
        .def("shift", [](Context& c, int64_t n_keep, int64_t n_discard) {
            py::gil_scoped_release nogil;
            c.shift(n_keep, n_discard);
        }, py::arg("n_keep"), py::arg("n_discard"));
}

}  // namespace pyllong::python
