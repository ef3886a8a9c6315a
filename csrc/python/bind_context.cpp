// pyllong._core.Context: the forward pass over a KV cache. Native work releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>

#include "core/error.h"
#include "attention/attention_decode.h"
#include "core/fp16.h"
#include "model/context.h"
#include "model/memory_budget.h"
#include "python/bindings.h"
#include "python/busy_guard.h"

namespace py = pybind11;

namespace pyllong::python {

// (alpha, beta, bands) from Python, checked.
static Transition transition_from_tuple(const py::object& o) {
    auto t = o.cast<std::tuple<float, float, int64_t>>();
    return make_transition(std::get<0>(t), std::get<1>(t), std::get<2>(t));
}

namespace {

using U16Array = py::array_t<uint16_t, py::array::c_style | py::array::forcecast>;

// A 1-D sequence of token ids, range-checked in 64 bits first: a forcecast straight to int32
// would wrap 2**32 + 5 to 5.
std::vector<int32_t> token_ids(const py::object& tokens, int64_t n_vocab) {
    py::array any = py::array::ensure(tokens);
    if (!any || any.ndim() != 1) throw InvalidArgument("tokens must be a 1-D sequence of ids");
    if (any.size() > 0 && any.dtype().kind() != 'i' && any.dtype().kind() != 'u')
        throw InvalidArgument("tokens must be integer ids, got an array of dtype " + std::string(py::str(any.dtype())));
    auto wide = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(any);
    std::vector<int32_t> ids(static_cast<size_t>(wide.size()));
    for (py::ssize_t i = 0; i < wide.size(); ++i) {
        const int64_t t = wide.data()[i];
        if (t < 0 || t >= n_vocab)
            throw InvalidArgument("token id " + std::to_string(t) + " at index " + std::to_string(i) +
                                  " is outside the vocabulary [0, " + std::to_string(n_vocab) + ")");
        ids[i] = static_cast<int32_t>(t);
    }
    return ids;
}

// memory: None, or a dict of MemoryParams fields (layers, window, last_context_length,
// mode, k, cap), as pyllong.Memory builds it.
MemoryParams memory_params(const py::object& memory) {
    MemoryParams p;
    if (memory.is_none()) return p;
    auto d = memory.cast<py::dict>();
    p.layers = d["layers"].cast<std::vector<int64_t>>();
    p.window = d["window"].cast<int64_t>();
    p.last_context_length = d["last_context_length"].cast<int64_t>();
    p.mode = memory_mode_from_name(d["mode"].cast<std::string>());
    p.k = d["k"].cast<int64_t>();
    p.cap = d["cap"].cast<int64_t>();
    if (d.contains("ivf")) p.ivf = d["ivf"].cast<bool>();
    if (d.contains("n_probe")) p.n_probe = d["n_probe"].cast<int64_t>();
    if (d.contains("ivf_min")) p.ivf_min = d["ivf_min"].cast<int64_t>();
    if (d.contains("distance")) p.distance = d["distance"].cast<int64_t>();
    if (p.layers.empty()) throw InvalidArgument("memory: give at least one memory layer");
    return p;
}

void bind_memory(py::module_& m) {
    py::class_<KVMemory>(m, "KVMemory", "The kNN memory of a context: per memory layer and KV head, f16 unrotated keys and values.")
        .def_property_readonly("size", [](const KVMemory& k) { return k.size(); }, "tokens held (per memory layer)")
        .def_property_readonly("bytes", [](const KVMemory& k) { return k.bytes(); })
        .def("slot_bytes", py::overload_cast<int64_t>(&KVMemory::bytes, py::const_), py::arg("slot"))
        .def_property_readonly("evicted", &KVMemory::evicted)
        .def_property_readonly("layers", [](const KVMemory& k) { return k.params().layers; })
        .def_property_readonly("n_head_kv", &KVMemory::n_head_kv)
        .def_property_readonly("head_dim", &KVMemory::head_dim)
        .def("copy", [](const KVMemory& k) { return KVMemory(k); })
        .def("clear", &KVMemory::clear)
        .def("truncate", &KVMemory::truncate, py::arg("n"))
        .def("export", [](const KVMemory& mem, int64_t slot) {
            if (slot < 0 || slot >= mem.n_slots()) throw InvalidArgument("memory slot out of range");
            std::vector<uint16_t> k, v;
            mem.export_f16(slot, k, v);
            const int64_t n = mem.size(slot), kv_dim = mem.n_head_kv() * mem.head_dim();
            U16Array ka({n, kv_dim}), va({n, kv_dim});
            std::copy(k.begin(), k.end(), ka.mutable_data());
            std::copy(v.begin(), v.end(), va.mutable_data());
            return py::make_tuple(ka, va);
        }, py::arg("slot"), "(keys, values) of a slot as raw f16 bits, (n, n_head_kv * head_dim) uint16 each")
        .def("search", [](const KVMemory& mem, int64_t slot, int64_t head, F32Array q, int64_t k, bool approximate) {
            // The k memory rows with the highest q . key (descending), by the exact scan or,
            // when approximate and the head's index is trained, among the probed lists' rows.
            if (slot < 0 || slot >= mem.n_slots() || head < 0 || head >= mem.n_head_kv() || q.size() != mem.head_dim())
                throw InvalidArgument("search: slot, head or query size out of range");
            const MemoryHead mh = mem.head(slot, head);
            std::vector<int64_t> cand;
            if (approximate && mh.index && mh.index->trained()) {
                mh.index->probe(q.data(), mem.params().n_probe, cand);
                for (auto& c : cand) c -= mh.base;
            } else {
                cand.resize(static_cast<size_t>(mh.n));
                for (int64_t j = 0; j < mh.n; ++j) cand[j] = j;
            }
            std::vector<std::pair<float, int64_t>> sc;
            for (int64_t j : cand) {
                float s = 0;
                for (int64_t d = 0; d < mem.head_dim(); ++d) s += q.data()[d] * fp16_to_fp32(mh.keys[j * mem.head_dim() + d]);
                sc.emplace_back(-s, j);
            }
            const size_t kk = std::min<size_t>(static_cast<size_t>(std::max<int64_t>(k, 0)), sc.size());
            std::partial_sort(sc.begin(), sc.begin() + kk, sc.end());
            std::vector<int64_t> out;
            for (size_t i = 0; i < kk; ++i) out.push_back(sc[i].second);
            return out;
        }, py::arg("slot"), py::arg("head"), py::arg("q"), py::arg("k"), py::arg("approximate") = true)
        .def("index_lists", [](const KVMemory& mem, int64_t slot, int64_t head) {
            const MemoryHead mh = mem.head(slot, head);
            return mh.index && mh.index->trained() ? mh.index->n_list() : 0;
        }, py::arg("slot"), py::arg("head"), "IVF lists of a head's index (0: not trained, the exact scan answers)")
        .def("append_f16", [](KVMemory& mem, int64_t slot, U16Array k, U16Array v) {
            const int64_t kv_dim = mem.n_head_kv() * mem.head_dim();
            if (slot < 0 || slot >= mem.n_slots()) throw InvalidArgument("memory slot out of range");
            if (k.ndim() != 2 || v.ndim() != 2 || k.shape(1) != kv_dim || v.shape(1) != kv_dim || k.shape(0) != v.shape(0))
                throw InvalidArgument("memory rows must be (n, " + std::to_string(kv_dim) + ") arrays for this model");
            mem.append_f16(slot, k.data(), v.data(), k.shape(0));
        }, py::arg("slot"), py::arg("keys"), py::arg("values"));
}

}  // namespace

void bind_context(py::module_& m) {
    bind_memory(m);
    py::class_<Context>(m, "Context", "A KV cache and scratch space for running one model.")
        .def(py::init([](std::shared_ptr<ModelFile> mf, int64_t n_ctx, int n_threads, int64_t n_batch,
                         const std::string& kv_type, py::object self_extend, int64_t n_gpu_layers,
                         py::object memory, py::object transition) {
            ContextParams p;
            p.memory = memory_params(memory);
            if (!transition.is_none()) p.transition = transition_from_tuple(transition);
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
            py::arg("kv_type") = "f16", py::arg("self_extend") = py::none(), py::arg("n_gpu_layers") = 0,
            py::arg("memory") = py::none(), py::arg("transition") = py::none())
        .def("eval", [](Context& c, py::object tokens, bool logits_all, int64_t prompt_len) {
            const std::vector<int32_t> ids = token_ids(tokens, c.n_vocab());
            std::vector<float> logits;
            {
                BusyGuard busy(&c);
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
        .def("eval_each", [](Context& c, py::object tokens) {
            // The native decode loop, for `pyllong bench --generate`: each token is one eval of
            // one token, as a C++ caller would run it; logits stay in C++. Returns (n,) ns each.
            std::vector<int32_t> ids = token_ids(tokens, c.n_vocab());
            BusyGuard busy(&c);
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
        .def("reset", [](Context& c) {
            BusyGuard busy(&c);
            c.reset();
        })
        .def("truncate", [](Context& c, int64_t n) {
            BusyGuard busy(&c);
            c.truncate(n);
        }, py::arg("n_keep"))
        .def_property_readonly("memory", [](py::object self) -> py::object {
            Context& c = self.cast<Context&>();
            if (!c.memory().enabled()) return py::none();
            return py::cast(&c.memory(), py::return_value_policy::reference_internal, self);  // keeps self alive
        }, "the context's KVMemory (None without memory options)")
        .def("set_memory", [](Context& c, const KVMemory& state) {
            BusyGuard busy(&c);
            const KVMemory& cur = c.memory();
            if (!cur.enabled()) throw InvalidArgument("this context has no kNN memory");
            if (state.params().layers != cur.params().layers || state.n_head_kv() != cur.n_head_kv() ||
                state.head_dim() != cur.head_dim())
                throw InvalidArgument("this memory state was made with other memory layers or another model");
            c.memory().clear();
            for (int64_t s = 0; s < state.n_slots(); ++s) {
                std::vector<uint16_t> k, v;
                state.export_f16(s, k, v);
                c.memory().append_f16(s, k.data(), v.data(), state.size(s));
            }
        }, py::arg("state"), "replace the memory's content with a copy of state's")
        .def("flush_to_memory", [](Context& c) {
            BusyGuard busy(&c);
            py::gil_scoped_release nogil;
            c.flush_to_memory();
        }, "move the local window into memory")
        .def("add_to_memory", [](Context& c, py::object tokens) {
            const std::vector<int32_t> ids = token_ids(tokens, c.n_vocab());
            BusyGuard busy(&c);
            py::gil_scoped_release nogil;
            c.add_to_memory(ids.data(), static_cast<int64_t>(ids.size()));
        }, py::arg("tokens"), "read tokens into memory in chunks of W, without logits")
        .def("shift", [](Context& c, int64_t n_keep, int64_t n_discard) {
            BusyGuard busy(&c);
            py::gil_scoped_release nogil;
            c.shift(n_keep, n_discard);
        }, py::arg("n_keep"), py::arg("n_discard"));

    m.def("attention_decode_splits", &attention_decode_splits, py::arg("n_tok"), py::arg("n_kv"),
          py::arg("n_threads"), "Key ranges per token that decode attention splits into (each over all kv heads).");

    // The production attention step (rotation, cache write, the one attention loop) on
    // caller-given q/k/v, for oracle tests of the attention policies.
    m.def("attention_probe", [](F32Array q, F32Array k, F32Array v, int64_t n_rot,
                                float freq_base, bool neox, int64_t chunk, py::object self_extend,
                                const std::string& kv_type, int n_threads, py::object memory, py::object transition,
                                int64_t sliding_window) {
        const auto [n, H, Hkv, D] = probe_shape(q, k, v, n_rot, chunk);
        if (sliding_window < 0) throw InvalidArgument("attention_probe: sliding_window must be >= 0");
        chunk = std::min(chunk, n);
        AttentionParams p;
        p.n_head = H;
        p.n_head_kv = Hkv;
        p.head_dim = D;
        p.scale = 1.0f / std::sqrt(static_cast<float>(D));
        p.self_extend = self_extend_arg(self_extend);
        p.sliding_window = sliding_window;  // 0: full causal attention
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
        // memory: (mem_k, mem_v, mode, k) with mem_k/mem_v (n_mem, Hkv, D) unrotated rows.
        KVMemory mem;
        if (!memory.is_none()) {
            auto t = memory.cast<py::tuple>();
            auto mk = t[0].cast<F32Array>(), mv = t[1].cast<F32Array>();
            if (mk.ndim() != 3 || mv.ndim() != 3 || mk.shape(1) != Hkv || mk.shape(2) != D || mv.shape(0) != mk.shape(0) ||
                mv.shape(1) != Hkv || mv.shape(2) != D)
                throw InvalidArgument("attention_probe: memory keys and values must be (n_mem, n_head_kv, head_dim)");
            MemoryParams mp;
            mp.layers = {0};
            mp.window = mp.last_context_length = std::max<int64_t>(n, 1);
            mp.mode = memory_mode_from_name(t[2].cast<std::string>());
            mp.k = t[3].cast<int64_t>();
            if (t.size() > 5) mp.distance = t[5].cast<int64_t>();
            if (t.size() > 4 && !t[4].is_none()) {  // (n_probe, ivf_min): the IVF index
                auto ivf = t[4].cast<std::pair<int64_t, int64_t>>();
                mp.ivf = true;
                mp.n_probe = ivf.first;
                mp.ivf_min = ivf.second;
            }
            mem = KVMemory(mp, 1, Hkv, D);
            mem.append(0, mk.data(), mv.data(), mk.shape(0));
            p.memory = &mem;
        }
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
       py::arg("kv_type") = "f16", py::arg("n_threads") = 1, py::arg("memory") = py::none(),
       py::arg("transition") = py::none(), py::arg("sliding_window") = 0);

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
