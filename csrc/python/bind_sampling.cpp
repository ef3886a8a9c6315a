// The native sampler chain (sampling/sampler.h) for Model.generate's loop: one call per token
// instead of numpy's many passes over the vocabulary. The uniform draw comes from the
// caller's numpy generator, so seeds keep their meaning.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "core/error.h"
#include "python/bindings.h"
#include "sampling/sampler.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_sampling(py::module_& m) {
    using I32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
    py::class_<Sampler>(m, "Sampler", "pyllong/sampling.py's chain without typical sampling or logits processors")
        .def(py::init([](int32_t n_vocab, double temperature, int32_t top_k, double top_p, double min_p,
                         double repeat_penalty, int32_t repeat_last_n, double frequency_penalty, double presence_penalty,
                         std::vector<std::pair<int32_t, float>> logit_bias) {
                 if (n_vocab <= 0) throw InvalidArgument("Sampler: n_vocab must be > 0");
                 SamplingParams p;
                 p.temperature = temperature;
                 p.top_k = top_k;
                 p.top_p = top_p;
                 p.min_p = min_p;
                 p.repeat_penalty = repeat_penalty;
                 p.repeat_last_n = repeat_last_n;
                 p.frequency_penalty = frequency_penalty;
                 p.presence_penalty = presence_penalty;
                 p.logit_bias = std::move(logit_bias);
                 return std::make_unique<Sampler>(p, n_vocab, 0);
             }),
             py::arg("n_vocab"), py::arg("temperature") = 0.8, py::arg("top_k") = 40, py::arg("top_p") = 0.95,
             py::arg("min_p") = 0.05, py::arg("repeat_penalty") = 1.1, py::arg("repeat_last_n") = 64,
             py::arg("frequency_penalty") = 0.0, py::arg("presence_penalty") = 0.0,
             py::arg("logit_bias") = std::vector<std::pair<int32_t, float>>{})
        .def("sample", [](Sampler& s, F32Array logits, I32Array history, double u) {
                 if (logits.size() != s.n_vocab())
                     throw InvalidArgument("Sampler.sample: expected " + std::to_string(s.n_vocab()) + " logits, got " +
                                           std::to_string(logits.size()));
                 if (!(u >= 0.0 && u < 1.0)) throw InvalidArgument("Sampler.sample: u must be in [0, 1)");
                 return s.sample_u(logits.data(), history.data(), static_cast<size_t>(history.size()), u);
             },
             py::arg("logits"), py::arg("history"), py::arg("u"),
             "Next token from one row of raw logits (n_vocab,) after `history`, with the uniform draw u.");
}

}  // namespace pyllong::python
