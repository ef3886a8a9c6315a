// pyllong._core.Tokenizer: the GGUF vocabulary's tokenizer. Thin: converts str/bytes,
// releases the GIL for long texts, keeps the model file (which the vocab views) alive.
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/error.h"
#include "model/model_file.h"
#include "python/bindings.h"
#include "tokenizer/tokenizer.h"

namespace py = pybind11;

namespace pyllong::python {

namespace {

// Texts longer than this are tokenized without the GIL; shorter ones are not worth the
// switch.
constexpr size_t kReleaseGilBytes = 4096;

// Owns the file the vocab's string views point into, then the tokenizer over it. The
// vocab is the model file's, or (for a bare, vocabulary-only GGUF) one of its own.
struct BoundTokenizer {
    std::shared_ptr<ModelFile> file;   // null when built from a bare GGUF file
    std::shared_ptr<GGUFFile> gguf;    // the mapped bytes in either case
    std::unique_ptr<Vocab> own_vocab;  // set when built from a bare GGUF file
    Tokenizer tokenizer;

    explicit BoundTokenizer(std::shared_ptr<ModelFile> f)
        : file(std::move(f)), gguf(file->shards().front()), tokenizer(file->vocab()) {}
    BoundTokenizer(std::shared_ptr<GGUFFile> g, std::unique_ptr<Vocab> v)
        : gguf(std::move(g)), own_vocab(std::move(v)), tokenizer(*own_vocab) {}
};

// The UTF-8 bytes of a str (lone surrogates pass through as their 3-byte forms, which
// the tokenizer then treats as malformed UTF-8) or the bytes of a bytes-like object.
// `holder` keeps whatever owns the bytes alive.
std::string_view text_bytes(const py::handle& text, py::object& holder) {
    if (PyUnicode_Check(text.ptr())) {
        Py_ssize_t n;
        if (const char* p = PyUnicode_AsUTF8AndSize(text.ptr(), &n)) return {p, size_t(n)};
        PyErr_Clear();
        holder = py::reinterpret_steal<py::object>(PyUnicode_AsEncodedString(text.ptr(), "utf-8", "surrogatepass"));
        if (!holder) throw py::error_already_set();
    } else if (PyBytes_Check(text.ptr())) {
        holder = py::reinterpret_borrow<py::object>(text);
    } else if (PyByteArray_Check(text.ptr()) || PyMemoryView_Check(text.ptr())) {
        holder = py::reinterpret_steal<py::object>(PyBytes_FromObject(text.ptr()));
        if (!holder) throw py::error_already_set();
    } else {
        throw py::type_error("text must be str or bytes, not " + std::string(py::str(py::type::handle_of(text).attr("__name__"))));
    }
    return {PyBytes_AS_STRING(holder.ptr()), size_t(PyBytes_GET_SIZE(holder.ptr()))};
}

std::vector<int32_t> to_ids(const std::vector<int64_t>& ids, int32_t n_vocab) {
    std::vector<int32_t> out(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= n_vocab)
            throw InvalidArgument("token id " + std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                                  std::to_string(n_vocab) + ")");
        out[i] = int32_t(ids[i]);
    }
    return out;
}

py::bytes as_bytes(const std::string& s) { return py::bytes(s.data(), s.size()); }

py::str as_str(const std::string& s) {
    PyObject* o = PyUnicode_DecodeUTF8(s.data(), Py_ssize_t(s.size()), "replace");
    if (!o) throw py::error_already_set();
    return py::reinterpret_steal<py::str>(o);
}

}  // namespace

void bind_tokenizer(py::module_& m) {
    py::class_<BoundTokenizer, std::shared_ptr<BoundTokenizer>>(m, "Tokenizer",
        "The tokenizer of a GGUF vocabulary (SPM or byte-level BPE), equal to llama.cpp's.")
        .def(py::init([](std::shared_ptr<ModelFile> f) { return std::make_shared<BoundTokenizer>(std::move(f)); }),
             py::arg("model_file"))
        .def(py::init([](std::shared_ptr<GGUFFile> g) {
            auto vocab = std::make_unique<Vocab>(read_vocab(*g));
            return std::make_shared<BoundTokenizer>(std::move(g), std::move(vocab));
        }), py::arg("gguf_file"), "From a GGUF file holding only a vocabulary (no model needed).")
        .def(py::init([](const std::string& path) {
            std::shared_ptr<ModelFile> f;
            {
                py::gil_scoped_release nogil;
                ModelFileOptions opt;
                opt.check_tensor_data = false;  // the tokenizer reads no weights
                f = ModelFile::open(path, opt);
            }
            return std::make_shared<BoundTokenizer>(std::move(f));
        }), py::arg("path"))
        .def("encode", [](const BoundTokenizer& t, const py::object& text, bool add_special, bool parse_special) {
            py::object holder;
            const std::string_view bytes = text_bytes(text, holder);
            std::vector<int32_t> ids;
            if (bytes.size() > kReleaseGilBytes) {
                py::gil_scoped_release nogil;
                ids = t.tokenizer.encode(bytes, add_special, parse_special);
            } else {
                ids = t.tokenizer.encode(bytes, add_special, parse_special);
            }
            return ids;
        }, py::arg("text"), py::arg("add_special") = true, py::arg("parse_special") = false,
           "Token ids of text (str or bytes; malformed UTF-8 is tokenized as U+FFFD per bad byte).\n"
           "add_special: add BOS/EOS where the vocabulary says so. parse_special: text spelling a\n"
           "control token such as <|im_start|> becomes that token.")
        .def("decode", [](const BoundTokenizer& t, const std::vector<int64_t>& ids, bool special) {
            return as_str(t.tokenizer.decode(to_ids(ids, t.tokenizer.n_vocab()), special));
        }, py::arg("ids"), py::arg("special") = false,
           "Text of ids (UTF-8 with U+FFFD for malformed bytes). special: render control tokens.")
        .def("decode_bytes", [](const BoundTokenizer& t, const std::vector<int64_t>& ids, bool special) {
            return as_bytes(t.tokenizer.decode(to_ids(ids, t.tokenizer.n_vocab()), special));
        }, py::arg("ids"), py::arg("special") = false, "Raw bytes of ids (llama-cpp-python's detokenize).")
        .def("token_to_bytes", [](const BoundTokenizer& t, int64_t id, bool special) {
            return as_bytes(t.tokenizer.token_to_piece(to_ids({id}, t.tokenizer.n_vocab())[0], special));
        }, py::arg("id"), py::arg("special") = false,
           "Raw bytes of one token (may be part of a UTF-8 character). Control tokens give b'' unless special.")
        .def("token_text", [](const BoundTokenizer& t, int64_t id) {
            return as_str(std::string(t.tokenizer.vocab().tokens[to_ids({id}, t.tokenizer.n_vocab())[0]]));
        }, py::arg("id"), "The token's string as stored in the vocabulary.")
        .def("token_type", [](const BoundTokenizer& t, int64_t id) {
            return int(t.tokenizer.vocab().types[to_ids({id}, t.tokenizer.n_vocab())[0]]);
        }, py::arg("id"), "llama.cpp token type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.")
        .def_property_readonly("n_vocab", [](const BoundTokenizer& t) { return t.tokenizer.n_vocab(); })
        .def_property_readonly("bos", [](const BoundTokenizer& t) { return t.tokenizer.vocab().bos; })
        .def_property_readonly("eos", [](const BoundTokenizer& t) { return t.tokenizer.vocab().eos; })
        .def_property_readonly("eot", [](const BoundTokenizer& t) { return t.tokenizer.vocab().eot; })
        .def_property_readonly("add_bos", [](const BoundTokenizer& t) { return t.tokenizer.vocab().add_bos; })
        .def_property_readonly("add_eos", [](const BoundTokenizer& t) { return t.tokenizer.vocab().add_eos; })
        .def_property_readonly("model", [](const BoundTokenizer& t) { return t.tokenizer.vocab().model; })
        .def_property_readonly("pre", [](const BoundTokenizer& t) { return t.tokenizer.vocab().pre; })
        .def_property_readonly("model_file", [](const BoundTokenizer& t) { return t.file; },
                               "The ModelFile this tokenizer came from, or None for a bare GGUF file.");
}

}  // namespace pyllong::python
