// pyllong._core.ModelFile: a validated model on disk (hyper-parameters, vocabulary,
// tensor table). The forward pass is built on top of it.
#include <pybind11/stl.h>

#include <map>

#include "core/read_bandwidth.h"
#include "model/model_file.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_model(py::module_& m) {
    m.def("read_bandwidth", [](int64_t n_bytes, int n_threads, int reps) {
        py::gil_scoped_release nogil;
        return read_bandwidth(n_bytes, n_threads, reps);
    }, py::arg("n_bytes"), py::arg("n_threads"), py::arg("reps") = 5,
       "Bytes per second this process reads from memory with n_threads threads (best of reps passes "
       "over a buffer of n_bytes; make it much larger than the last-level cache).");
    py::class_<ModelFile, std::shared_ptr<ModelFile>>(m, "ModelFile",
        "A validated GGUF model (one file or the first shard of a split set).")
        .def(py::init([](const std::string& path, bool check_data) {
            py::gil_scoped_release nogil;
            ModelFileOptions opt;
            opt.check_tensor_data = check_data;
            return ModelFile::open(path, opt);
        }), py::arg("path"), py::arg("check_data") = true)
        .def_static("from_bytes", [](py::bytes b, bool check_data) {
            std::string_view s = b;
            ModelFileOptions opt;
            opt.check_tensor_data = check_data;
            return ModelFile::from_gguf(GGUFFile::from_bytes(std::vector<uint8_t>(s.begin(), s.end())), opt);
        }, py::arg("data"), py::arg("check_data") = true)
        .def_property_readonly("gguf", [](const ModelFile& mf) { return mf.shards().front(); })
        .def_property_readonly("n_shards", [](const ModelFile& mf) { return mf.shards().size(); })
        .def_property_readonly("hparams", [](const ModelFile& mf) {
            const HParams& hp = mf.hparams();
            py::dict d;
            d["architecture"] = hp.arch->name;
            d["n_layer"] = hp.n_layer;
            d["n_ctx_train"] = hp.n_ctx_train;
            d["n_embd"] = hp.n_embd;
            d["n_ff"] = hp.n_ff;
            d["n_head"] = hp.n_head;
            d["n_head_kv"] = hp.n_head_kv;
            d["head_dim"] = hp.head_dim;
            d["n_rot"] = hp.n_rot;
            d["n_vocab"] = hp.n_vocab;
            d["sliding_window"] = hp.sliding_window;
            d["rope_freq_base"] = hp.rope_freq_base;
            d["rope_freq_scale"] = hp.rope_freq_scale;
            d["rope_scaling_type"] = to_str(hp.rope_scaling_type);
            d["norm_eps"] = hp.norm_eps;
            return d;
        })
        .def_property_readonly("vocab", [](const ModelFile& mf) {
            const Vocab& v = mf.vocab();
            py::dict d;
            d["type"] = to_str(v.model);
            d["pre"] = to_str(v.pre);
            d["n_vocab"] = v.n_vocab();
            d["n_merges"] = v.merges.size();
            d["bos"] = v.bos;
            d["eos"] = v.eos;
            d["eot"] = v.eot;
            d["unk"] = v.unk;
            d["pad"] = v.pad;
            d["add_bos"] = v.add_bos;
            d["add_space_prefix"] = v.add_space_prefix;
            d["has_chat_template"] = !v.chat_template.empty();
            return d;
        })
        .def_property_readonly("chat_template", [](const ModelFile& mf) -> py::object {
            if (mf.vocab().chat_template.empty()) return py::none();
            return to_str(mf.vocab().chat_template);
        })
        .def_property_readonly("n_params", &ModelFile::n_params)
        .def_property_readonly("tied_embeddings", &ModelFile::tied_embeddings)
        .def_property_readonly("warnings", [](const ModelFile& mf) {
            py::list out;
            for (const auto& w : mf.warnings()) out.append(to_str(w));
            return out;
        })
        .def_property_readonly("quant_mix", [](const ModelFile& mf) {
            // type name -> (tensor count, bytes)
            std::map<std::string, std::pair<int64_t, int64_t>> mix;
            for (const auto& s : mf.shards())
                for (const auto& t : s->tensors()) {
                    auto& e = mix[type_name(t.type)];
                    e.first += 1;
                    e.second += static_cast<int64_t>(t.nbytes);
                }
            return mix;
        }, "{type: (n_tensors, n_bytes)} over all tensors.")
        .def("kv_bytes", [](const ModelFile& mf, int64_t n_ctx, double bytes_per_elem) {
            return mf.hparams().kv_bytes(n_ctx, bytes_per_elem);
        }, py::arg("n_ctx"), py::arg("bytes_per_elem") = 2.0,
           "Bytes of K+V cache for n_ctx tokens (2 bytes per element = f16, 34/32 = q8_0).");
}

}  // namespace pyllong::python
