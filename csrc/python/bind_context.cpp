// pyllong._core.Context: the forward pass over a KV cache. Native work releases the GIL.
#include <pybind11/numpy.h>

#include <cmath>

#include "core/error.h"
#include "model/context.h"
#include "model/memory_budget.h"
#include "python/bindings.h"
#include "python/busy_guard.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_context(py::module_& m) {
    py::class_<Context>(m, "Context", "A KV cache and scratch space for running one model.")
        .def(py::init([](std::shared_ptr<ModelFile> mf, int64_t n_ctx, int n_threads, int64_t n_batch,
                         const std::string& kv_type, py::object self_extend, int64_t n_gpu_layers) {
            ContextParams p;
            p.kv_type = kv_type_from_name(kv_type);
            p.self_extend = self_extend_arg(self_extend);
            p.n_ctx = n_ctx;
            p.n_threads = n_threads;
            p.n_batch = n_batch;
            const ModelFile& model = *mf;
            p.n_gpu_layers = n_gpu_layers;
            py::gil_scoped_release nogil;
            try {
                return std::make_unique<Context>(std::move(mf), p);
            } catch (const std::bad_alloc&) {  // the budget check passed but the allocator said no
                throw OutOfMemory("out of memory creating a context of n_ctx " + std::to_string(p.n_ctx) + ": it needs " +
                                  std::to_string(context_bytes(p, model.hparams())) + " bytes; use a smaller n_ctx");
            }
        }), py::arg("model_file"), py::arg("n_ctx") = 4096, py::arg("n_threads") = 0, py::arg("n_batch") = 512,
            py::arg("kv_type") = "f16", py::arg("self_extend") = py::none(), py::arg("n_gpu_layers") = 0)
        .def("eval", [](Context& c, py::object tokens, bool logits_all) {
            // Range-check in 64 bits first: a forcecast straight to int32 would wrap 2**32 + 5 to 5.
            py::array any = py::array::ensure(tokens);
            if (!any || any.ndim() != 1) throw InvalidArgument("tokens must be a 1-D sequence of ids");
            if (any.size() > 0 && any.dtype().kind() != 'i' && any.dtype().kind() != 'u')
                throw InvalidArgument("tokens must be integer ids, got an array of dtype " +
                                      std::string(py::str(any.dtype())));
            auto wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(any);
            std::vector<int32_t> ids(static_cast<size_t>(wide.size()));
            for (py::ssize_t i = 0; i < wide.size(); ++i) {
                const int64_t t = wide.data()[i];
                if (t < 0 || t >= c.n_vocab())
                    throw InvalidArgument("token id " + std::to_string(t) + " at index " + std::to_string(i) +
                                          " is outside the vocabulary [0, " + std::to_string(c.n_vocab()) + ")");
                ids[i] = static_cast<int32_t>(t);
            }
            std::vector<float> logits;
            {
                BusyGuard busy(&c);
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
        .def_property_readonly("n_gpu_layers", &Context::n_gpu_layers)
        .def_property_readonly("kv_type", [](const Context& c) { return kv_type_name(c.kv_type()); })
        .def_property_readonly("self_extend", [](const Context& c) -> py::object {
            if (!c.self_extend().enabled()) return py::none();
            return py::make_tuple(c.self_extend().group, c.self_extend().window);
        })
        .def("reset", [](Context& c) {
            BusyGuard busy(&c);
            c.reset();
        })
        .def("truncate", [](Context& c, int64_t n) {
            BusyGuard busy(&c);
            c.truncate(n);
        }, py::arg("n_keep"))
        .def("shift", [](Context& c, int64_t n_keep, int64_t n_discard) {
            BusyGuard busy(&c);
            py::gil_scoped_release nogil;
            c.shift(n_keep, n_discard);
        }, py::arg("n_keep"), py::arg("n_discard"));

    // The production attention step (rotation, cache write, the one attention loop) on
    // caller-given q/k/v, for oracle tests of the attention policies.
    m.def("attention_probe", [](F32Array q, F32Array k, F32Array v, int64_t n_rot,
                                float freq_base, bool neox, int64_t chunk, py::object self_extend,
                                const std::string& kv_type, int n_threads) {
        const auto [n, H, Hkv, D] = probe_shape(q, k, v, n_rot, chunk);
        chunk = std::min(chunk, n);
        AttentionParams p;
        p.n_head = H;
        p.n_head_kv = Hkv;
        p.head_dim = D;
        p.scale = 1.0f / std::sqrt(static_cast<float>(D));
        p.self_extend = self_extend_arg(self_extend);
        RopeParams rp;
        rp.mode = neox ? RopeMode::NeoX : RopeMode::Normal;
        rp.n_rot = n_rot;
        rp.freq_base = freq_base;
        KVCache cache(1, n, Hkv * D, kv_type_from_name(kv_type), p.self_extend.enabled());
        ThreadPool pool(std::max(1, n_threads));
        std::vector<float> qb(q.data(), q.data() + q.size()), kb(k.data(), k.data() + k.size());
        std::vector<float> sq(static_cast<size_t>(chunk * H * D)), sk(static_cast<size_t>(chunk * Hkv * D));
        py::array_t<float> out({n, H, D});
        std::vector<int32_t> pos(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
        {
            py::gil_scoped_release nogil;
            for (int64_t s = 0; s < n; s += chunk) {
                const int64_t len = std::min(chunk, n - s);
                cache.set_positions(s, pos.data() + s, len);
                attention_step(qb.data() + s * H * D, kb.data() + s * Hkv * D, v.data() + s * Hkv * D, pos.data() + s,
                               len, cache, 0, s, rp, p, sq.data(), sk.data(), out.mutable_data() + s * H * D, pool,
                               pool.size());
                cache.set_used(s + len);
            }
        }
        return out;
    }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("n_rot"), py::arg("freq_base") = 10000.0f,
       py::arg("neox") = false, py::arg("chunk") = 1 << 30, py::arg("self_extend") = py::none(),
       py::arg("kv_type") = "f16", py::arg("n_threads") = 1);
}

}  // namespace pyllong::python
