// State save/restore (model/state.h) as module functions over a Context. The bytes are
// built and checked with the GIL released: a state is tens of MB for a real model.
#include <pybind11/numpy.h>

#include <cstring>

#include "core/error.h"
#include "model/state.h"
#include "python/bindings.h"
#include "python/busy_guard.h"

namespace py = pybind11;

namespace pyllong::python {

void bind_state(py::module_& m) {
    m.def("save_state", [](const Context& ctx, py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens,
                           py::bytes extra) {
        if (tokens.ndim() != 1) throw InvalidArgument("save_state: tokens must be a 1-D sequence of ids");
        std::string_view ex(extra);
        std::vector<uint8_t> out;
        {
            BusyGuard busy(&ctx);
            py::gil_scoped_release nogil;
            out = save_state(ctx, tokens.data(), static_cast<int64_t>(tokens.size()),
                             reinterpret_cast<const uint8_t*>(ex.data()), ex.size());
        }
        return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
    }, py::arg("ctx"), py::arg("tokens"), py::arg("extra") = py::bytes(),
       "The context's KV cache (cells in use), their token ids and `extra` as a versioned, checksummed blob.");

    m.def("load_state", [](Context& ctx, py::bytes data, py::object accept) {
        std::string_view d(data);
        const auto* p = reinterpret_cast<const uint8_t*>(d.data());
        BusyGuard busy(&ctx);  // held across accept(): nothing may change the cache between check and apply
        CheckedState st;
        {
            py::gil_scoped_release nogil;
            st = check_state(ctx, p, d.size());
        }
        py::array_t<int32_t> toks(static_cast<py::ssize_t>(st.tokens.size()));
        if (!st.tokens.empty()) std::memcpy(toks.mutable_data(), st.tokens.data(), st.tokens.size() * sizeof(int32_t));
        py::bytes extra(reinterpret_cast<const char*>(st.extra.data()), st.extra.size());
        if (!accept.is_none()) accept(toks, extra);  // may raise: then nothing is written
        {
            py::gil_scoped_release nogil;
            apply_state(ctx, p, st);
        }
        return py::make_tuple(toks, extra);
    }, py::arg("ctx"), py::arg("data"), py::arg("accept") = py::none(),
       "Check a blob from save_state against this context, call accept(tokens, extra) (which may raise to "
       "refuse it), then restore it; returns (tokens, extra). Raises StateError, leaving the context "
       "unchanged, when it does not fit.");

    m.def("state_max_bytes", &state_max_bytes, py::arg("ctx"), "Size of the largest state this context accepts.");

    m.def("model_fingerprint", [](const ModelFile& mf) {
        const auto fp = model_fingerprint(mf);
        return py::bytes(reinterpret_cast<const char*>(fp.data()), fp.size());
    }, py::arg("model_file"));
}

}  // namespace pyllong::python
