// pyllong._core.Context: the forward pass over a KV cache. Native work releases the GIL.
#include <pybind11/numpy.h>

#include <cmath>

#include "core/error.h"
#include "model/context.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyllong::python {

// (alpha, beta, bands) from Python, checked.
static Transition transition_from_tuple(const py::object& o) {
    auto t = o.cast<std::tuple<float, float, int64_t>>();
    return make_transition(std::get<0>(t), std::get<1>(t), std::get<2>(t));
}

void bind_context(py::module_& m) {
    py::class_<Context>(m, "Context", "A KV cache and scratch space for running one model.")
        .def(py::init([](std::shared_ptr<ModelFile> mf, int64_t n_ctx, int n_threads, int64_t n_batch,
                         const std::string& kv_type, py::object self_extend, int64_t n_gpu_layers,
                         py::object transition) {
            ContextParams p;
            if (!transition.is_none()) p.transition = transition_from_tuple(transition);
            p.kv_type = kv_type_from_name(kv_type);
            p.self_extend = self_extend_arg(self_extend);
            p.n_ctx = n_ctx;
            p.n_threads = n_threads;
            p.n_batch = n_batch;
            p.n_gpu_layers = n_gpu_layers;
            py::gil_scoped_release nogil;
            return std::make_unique<Context>(std::move(mf), p);
        }), py::arg("model_file"), py::arg("n_ctx") = 4096, py::arg("n_threads") = 0, py::arg("n_batch") = 512,
            py::arg("kv_type") = "f16", py::arg("self_extend") = py::none(), py::arg("n_gpu_layers") = 0,
            py::arg("transition") = py::none())
        .def("eval", [](Context& c, py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens,
                        bool logits_all, int64_t prompt_len) {
            if (tokens.ndim() != 1) throw InvalidArgument("tokens must be a 1-D sequence of ids");
            std::vector<int32_t> ids(tokens.data(), tokens.data() + tokens.size());
            std::vector<float> logits;
            {
                py::gil_scoped_release nogil;
                logits = c.eval(ids.data(), static_cast<int64_t>(ids.size()), logits_all, prompt_len);
            }
            const int64_t rows = static_cast<int64_t>(logits.size()) / c.n_vocab();
            py::array_t<float> out({rows, c.n_vocab()});
            std::memcpy(out.mutable_data(), logits.data(), logits.size() * sizeof(float));
            return out;
        }, py::arg("tokens"), py::arg("logits_all") = false, py::arg("prompt_len") = -1,
           "Append tokens to the cache; logits (n, n_vocab) if logits_all else (1, n_vocab) for the last. "
           "prompt_len: N of the prompt these tokens belong to (Attention Transition); -1 = n_past + n "
           "when n > 1, 0 = decoding.")
        .def_property_readonly("transition", [](const Context& c) -> py::object {
            if (!c.transition().enabled) return py::none();
            return py::make_tuple(c.transition().alpha, c.transition().beta, c.transition().bands);
        })
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
        .def("start_capture", [](Context& c, std::vector<int32_t> layers, std::vector<int32_t> heads) {
            c.start_capture(std::move(layers), std::move(heads));
        }, py::arg("layers"), py::arg("heads"),
           "Record the attention probabilities of these layers and heads from now on (CPU layers).")
        .def("stop_capture", &Context::stop_capture)
        .def("captured", [](const Context& c) -> py::object {
            const AttentionCapture* cap = c.capture();
            if (!cap) return py::none();
            const auto L = static_cast<int64_t>(cap->layers().size()), H = static_cast<int64_t>(cap->heads().size());
            const int64_t n = c.n_past(), N = cap->n_pos();
            py::array_t<float> out({L, H, n, n});  // (layers, heads, query position, key position)
            float* o = out.mutable_data();
            for (int64_t m = 0; m < L * H; ++m)
                for (int64_t r = 0; r < n; ++r)
                    std::memcpy(o + (m * n + r) * n, cap->data() + (m * N + r) * N, n * sizeof(float));
            return py::object(out);
        }, "The captured probabilities (n_layer_sel, n_head_sel, n_past, n_past), or None when not capturing.")
        .def("reset", &Context::reset)
        .def("truncate", [](Context& c, int64_t n) { c.truncate(n); }, py::arg("n_keep"))
        .def("shift", [](Context& c, int64_t n_keep, int64_t n_discard) {
            py::gil_scoped_release nogil;
            c.shift(n_keep, n_discard);
        }, py::arg("n_keep"), py::arg("n_discard"));

    // The production attention step (rotation, cache write, the one attention loop) on
    // caller-given q/k/v, for oracle tests of the attention policies.
    m.def("attention_probe", [](F32Array q, F32Array k, F32Array v, int64_t n_rot,
                                float freq_base, bool neox, int64_t chunk, py::object self_extend,
                                const std::string& kv_type, int n_threads, py::object transition) {
        const auto [n, H, Hkv, D] = probe_shape(q, k, v, n_rot, chunk);
        chunk = std::min(chunk, n);
        AttentionParams p;
        p.n_head = H;
        p.n_head_kv = Hkv;
        p.head_dim = D;
        p.scale = 1.0f / std::sqrt(static_cast<float>(D));
        p.self_extend = self_extend_arg(self_extend);
        // transition: (alpha, beta, bands, n_layer, layer): the probed layer's place in a model,
        // with the n probed tokens as the prompt.
        Transition tr;
        int64_t tr_n_layer = 0, tr_layer = 0;
        if (!transition.is_none()) {
            auto t = transition.cast<std::tuple<float, float, int64_t, int64_t, int64_t>>();
            tr = make_transition(std::get<0>(t), std::get<1>(t), std::get<2>(t));
            tr_n_layer = std::get<3>(t);
            tr_layer = std::get<4>(t);
        }
        p.transition = transition_layer(tr, tr_n_layer, tr_layer, n);
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
       py::arg("kv_type") = "f16", py::arg("n_threads") = 1, py::arg("transition") = py::none());

    // The Attention Transition's row edit (spec steps 1-4) on caller-given probability rows, for
    // the numpy oracle: rows (n_rows, n_keys) of query positions r (n_rows,) in a prompt of N
    // tokens at `layer` of an n_layer model. Rows outside the layer's bands come back as given.
    m.def("transition_probe", [](py::array_t<float, py::array::c_style | py::array::forcecast> rows,
                                 py::array_t<int64_t, py::array::c_style | py::array::forcecast> r, int64_t N,
                                 int64_t n_layer, int64_t layer, float alpha, float beta, int64_t bands) {
        if (rows.ndim() != 2 || r.ndim() != 1 || r.shape(0) != rows.shape(0))
            throw InvalidArgument("transition_probe: rows must be (n_rows, n_keys) and r (n_rows,)");
        const int64_t n_rows = rows.shape(0), n_keys = rows.shape(1);
        const TransitionLayer tl = transition_layer(make_transition(alpha, beta, bands), n_layer, layer, N);
        py::array_t<float> out({n_rows, n_keys});
        std::memcpy(out.mutable_data(), rows.data(), n_rows * n_keys * sizeof(float));
        for (int64_t i = 0; i < n_rows; ++i) {
            const int64_t ri = r.data()[i];
            if (ri < 0 || ri >= n_keys) throw InvalidArgument("transition_probe: each r must be in [0, n_keys)");
            if (tl.active() && tl.in_band(ri))
                transition_edit_row(out.mutable_data() + i * n_keys, ri + 1, tl.band_start(ri), tl);
        }
        return py::make_tuple(out, py::make_tuple(tl.I, tl.lo, tl.hi));
    }, py::arg("rows"), py::arg("r"), py::arg("N"), py::arg("n_layer"), py::arg("layer"), py::arg("alpha") = 0.5f,
       py::arg("beta") = 0.1f, py::arg("bands") = 2);
}

}  // namespace pyllong::python
