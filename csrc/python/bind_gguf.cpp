// pyllong._core.GGUFFile: the parsed file, with metadata as Python values (big arrays as
// lazy views) and tensors as zero-copy numpy views of the mapped bytes.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include "gguf/gguf.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace pyllong::python {

namespace {

constexpr uint64_t kEagerArrayMax = 256;  // arrays up to this length become lists

py::str decode(std::string_view s) { return to_str(s); }

// Keeps the mapping alive for as long as a numpy view of it exists.
py::capsule keep_alive(const std::shared_ptr<GGUFFile>& f) {
    return py::capsule(new std::shared_ptr<GGUFFile>(f),
                       [](void* p) { delete static_cast<std::shared_ptr<GGUFFile>*>(p); });
}

py::array readonly_view(const std::shared_ptr<GGUFFile>& f, const char* dtype, size_t n, const void* ptr) {
    py::array a(py::dtype(dtype), {static_cast<py::ssize_t>(n)}, {}, ptr, keep_alive(f));
    a.attr("setflags")(py::arg("write") = false);
    return a;
}

const char* numpy_dtype(ValueType t) {
    switch (t) {
        case ValueType::U8: return "<u1";
        case ValueType::I8: return "<i1";
        case ValueType::U16: return "<u2";
        case ValueType::I16: return "<i2";
        case ValueType::U32: return "<u4";
        case ValueType::I32: return "<i4";
        case ValueType::F32: return "<f4";
        case ValueType::BOOL: return "?";
        case ValueType::U64: return "<u8";
        case ValueType::I64: return "<i8";
        case ValueType::F64: return "<f8";
        default: return "<u1";
    }
}

py::object scalar(const GGUFValue& v) {
    switch (v.type) {
        case ValueType::BOOL: return py::bool_(v.u != 0);
        case ValueType::F32: case ValueType::F64: return py::float_(v.f);
        case ValueType::STRING: return decode(v.str);
        case ValueType::U8: case ValueType::U16: case ValueType::U32: case ValueType::U64: return py::int_(v.u);
        default: return py::int_(v.i);
    }
}

// A string array too big to convert eagerly (e.g. 49152 vocabulary tokens).
struct StringArray {
    std::shared_ptr<GGUFFile> file;
    const GGUFValue* value;
    size_t size() const { return value->strings.size(); }
    py::str at(py::ssize_t i) const {
        const auto n = static_cast<py::ssize_t>(size());
        if (i < 0) i += n;
        if (i < 0 || i >= n) throw py::index_error("string array index out of range");
        return decode(value->strings[static_cast<size_t>(i)]);
    }
};

py::object value_to_python(const std::shared_ptr<GGUFFile>& f, const GGUFValue& v) {
    if (v.type != ValueType::ARRAY) return scalar(v);
    if (v.elem_type == ValueType::STRING) {
        if (v.count <= kEagerArrayMax) {
            py::list out;
            for (auto s : v.strings) out.append(decode(s));
            return std::move(out);
        }
        return py::cast(StringArray{f, &v});
    }
    py::array a = readonly_view(f, numpy_dtype(v.elem_type), static_cast<size_t>(v.count), v.data);
    if (v.count <= kEagerArrayMax) return a.attr("tolist")();
    return std::move(a);
}

struct Tensor {
    std::shared_ptr<GGUFFile> file;
    const TensorInfo* info;
};

}  // namespace

void bind_gguf(py::module_& m) {
    py::class_<StringArray>(m, "GGUFStringArray", "Lazy, read-only view of a GGUF string array.")
        .def("__len__", &StringArray::size)
        .def("__getitem__", &StringArray::at)
        .def("__iter__", [](const StringArray& a) {
            py::list out;
            for (auto s : a.value->strings) out.append(decode(s));
            return py::iter(out);
        })
        .def("tolist", [](const StringArray& a) {
            py::list out;
            for (auto s : a.value->strings) out.append(decode(s));
            return out;
        })
        .def("__repr__", [](const StringArray& a) {
            return "<GGUFStringArray of " + std::to_string(a.size()) + " strings>";
        });

    py::class_<Tensor>(m, "GGUFTensor", "One tensor of a GGUF file: metadata and a zero-copy view of its bytes.")
        .def_property_readonly("name", [](const Tensor& t) { return t.info->name; })
        .def_property_readonly("dtype", [](const Tensor& t) { return std::string(type_name(t.info->type)); })
        .def_property_readonly("type_id", [](const Tensor& t) { return t.info->type; })
        .def_property_readonly("shape", [](const Tensor& t) {
            py::tuple s(t.info->n_dims);
            for (uint32_t d = 0; d < t.info->n_dims; ++d) s[d] = t.info->ne[d];
            return s;
        }, "Dimensions in ggml order: shape[0] is the contiguous (row) length, as gguf-py reports it.")
        .def_property_readonly("n_elements", [](const Tensor& t) { return t.info->n_elements; })
        .def_property_readonly("offset", [](const Tensor& t) { return t.file->data_offset() + t.info->offset; },
                               "Absolute byte offset of the tensor data in the file.")
        .def_property_readonly("nbytes", [](const Tensor& t) { return t.info->nbytes; })
        .def_property_readonly("data", [](const Tensor& t) {
            return readonly_view(t.file, "<u1", static_cast<size_t>(t.info->nbytes), t.info->data);
        }, "Read-only numpy uint8 view of the raw (possibly quantized) bytes; no copy.")
        .def("__repr__", [](const Tensor& t) {
            std::string s = "<GGUFTensor " + t.info->name + " " + type_name(t.info->type) + " (";
            for (uint32_t d = 0; d < t.info->n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.info->ne[d]);
            return s + ")>";
        });

    py::class_<GGUFFile, std::shared_ptr<GGUFFile>>(m, "GGUFFile",
        "A validated, memory-mapped GGUF file. Raises pyllong.GGUFError on malformed input.")
        .def(py::init([](const std::string& path) {
            py::gil_scoped_release nogil;
            return GGUFFile::open(path);
        }), py::arg("path"))
        .def_static("from_bytes", [](py::bytes b, std::string name) {
            std::string_view s = b;
            std::vector<uint8_t> v(s.begin(), s.end());
            return GGUFFile::from_bytes(std::move(v), std::move(name));
        }, py::arg("data"), py::arg("name") = "<bytes>")
        .def_property_readonly("path", &GGUFFile::path)
        .def_property_readonly("version", &GGUFFile::version)
        .def_property_readonly("alignment", &GGUFFile::alignment)
        .def_property_readonly("data_offset", &GGUFFile::data_offset)
        .def_property_readonly("file_size", &GGUFFile::file_size)
        .def_property_readonly("metadata", [](const std::shared_ptr<GGUFFile>& f) {
            py::dict d;
            for (const auto& kv : f->kvs()) d[decode(kv.key)] = value_to_python(f, kv.value);
            return d;
        }, "Metadata as a dict; arrays longer than 256 are lazy (numpy views, or GGUFStringArray).")
        .def("metadata_type", [](const GGUFFile& f, const std::string& key) -> py::object {
            const GGUFKV* kv = f.find(key);
            if (!kv) throw py::key_error(key);
            std::string t = value_type_name(kv->value.type);
            if (kv->value.type == ValueType::ARRAY) t += std::string("[") + value_type_name(kv->value.elem_type) + "]";
            return py::str(t);
        }, py::arg("key"), "The GGUF value type of a key, e.g. 'UINT32' or 'ARRAY[STRING]'.")
        .def_property_readonly("tensors", [](const std::shared_ptr<GGUFFile>& f) {
            py::dict d;
            for (const auto& t : f->tensors()) d[to_str(t.name)] = py::cast(Tensor{f, &t});
            return d;
        }, "Tensors by name, in file order.")
        .def_property_readonly("architecture", [](const GGUFFile& f) -> py::object {
            auto a = f.get_string("general.architecture");
            if (!a) return py::none();
            return decode(*a);
        });
}

}  // namespace pyllong::python
