// pyllong._core.Context: the forward pass over a KV cache. Native work releases the GIL.
#include <pybind11/numpy.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "attention/attention_decode.h"
#include "model/context.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_context(py::module_& m) {
    py::class_<Context>(m, "Context", "A KV cache and scratch space for running one model.")
        .def(py::init([](std::shared_ptr<ModelFile> mf, int64_t n_ctx, int n_threads, int64_t n_batch,
                         const std::string& kv_type, py::object self_extend, int64_t n_gpu_layers) {
            ContextParams p;
            p.kv_type = kv_type_from_name(kv_type);
            if (!self_extend.is_none()) {
                auto gw = self_extend.cast<std::pair<int64_t, int64_t>>();
                p.self_extend = make_self_extend(gw.first, gw.second);
            }
            p.n_ctx = n_ctx;
            p.n_threads = n_threads;
            p.n_batch = n_batch;
            p.n_gpu_layers = n_gpu_layers;
            py::gil_scoped_release nogil;
            return std::make_unique<Context>(std::move(mf), p);
        }), py::arg("model_file"), py::arg("n_ctx") = 4096, py::arg("n_threads") = 0, py::arg("n_batch") = 512,
            py::arg("kv_type") = "f16", py::arg("self_extend") = py::none(), py::arg("n_gpu_layers") = 0)
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
        .def("eval_each", [](Context& c, py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens) {
            // The native decode loop, for `pyllong bench --generate`: each token is one eval of
            // one token, as a C++ caller would run it; logits stay in C++. Returns (n,) ns each.
            if (tokens.ndim() != 1) throw InvalidArgument("tokens must be a 1-D sequence of ids");
            std::vector<int32_t> ids(tokens.data(), tokens.data() + tokens.size());
            py::array_t<int64_t> ns(static_cast<py::ssize_t>(ids.size()));
            int64_t* out = ns.mutable_data();
            py::gil_scoped_release nogil;
            for (size_t i = 0; i < ids.size(); ++i) {
                const auto t0 = std::chrono::steady_clock::now();
                c.eval(&ids[i], 1, false);
                out[i] = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
            }
            return ns;
        }, py::arg("tokens"), "Evaluate each token alone (the native decode loop); nanoseconds per token.")
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
        .def("reset", &Context::reset)
        .def("truncate", [](Context& c, int64_t n) { c.truncate(n); }, py::arg("n_keep"))
        .def("shift", [](Context& c, int64_t n_keep, int64_t n_discard) {
            py::gil_scoped_release nogil;
            c.shift(n_keep, n_discard);
        }, py::arg("n_keep"), py::arg("n_discard"));

    m.def("attention_decode_splits", &attention_decode_splits, py::arg("n_pairs"), py::arg("n_kv"),
          py::arg("n_threads"), "Key ranges per (token, kv head) pair that decode attention splits into.");

    // The production attention step (rotation, cache write, the one attention loop) on
    // caller-given q/k/v, for oracle tests of the attention policies.
    m.def("attention_probe", [](py::array_t<float, py::array::c_style | py::array::forcecast> q,
                                py::array_t<float, py::array::c_style | py::array::forcecast> k,
                                py::array_t<float, py::array::c_style | py::array::forcecast> v, int64_t n_rot,
                                float freq_base, bool neox, int64_t chunk, py::object self_extend,
                                const std::string& kv_type, int n_threads) {
        if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3)
            throw InvalidArgument("q, k, v must be (n_tok, n_head, head_dim) arrays");
        const int64_t n = q.shape(0), H = q.shape(1), D = q.shape(2), Hkv = k.shape(1);
        if (k.shape(0) != n || v.shape(0) != n || k.shape(2) != D || v.shape(1) != Hkv || v.shape(2) != D ||
            Hkv < 1 || H % Hkv != 0 || chunk < 1 || n_rot < 0 || n_rot > D || n_rot % 2)
            throw InvalidArgument("attention_probe: inconsistent shapes or parameters");
        chunk = std::min(chunk, n);
        AttentionParams p;
        p.n_head = H;
        p.n_head_kv = Hkv;
        p.head_dim = D;
        p.scale = 1.0f / std::sqrt(static_cast<float>(D));
        if (!self_extend.is_none()) {
            auto gw = self_extend.cast<std::pair<int64_t, int64_t>>();
            p.self_extend = make_self_extend(gw.first, gw.second);
        }
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
