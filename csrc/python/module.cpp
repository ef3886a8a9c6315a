#include <pybind11/pybind11.h>

#include "core/error.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace {
// The exception classes are defined in Python (pyllong/errors.py) so that they can
// inherit from both pyllong.Error and the matching builtin (ValueError, OSError).
void set_error(const char* cls, const char* what) {
    // Messages quote bytes from hostile files: decode with replacement, never fail here.
    py::object type = py::module_::import("pyllong.errors").attr(cls);
    py::str msg = pyllong::python::to_str(what);
    PyErr_SetObject(type.ptr(), msg.ptr());
}
}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "pyllong native core";
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const pyllong::GGUFError& e) {
            set_error("GGUFError", e.what());
        } catch (const pyllong::ContextOverflowError& e) {
            set_error("ContextOverflowError", e.what());
        } catch (const pyllong::InvalidArgument& e) {
            set_error("InvalidArgumentError", e.what());
        } catch (const pyllong::StateError& e) {
            set_error("StateError", e.what());
        } catch (const pyllong::OutOfMemory& e) {
            set_error("OutOfMemoryError", e.what());
        } catch (const pyllong::IOError& e) {
            set_error("ModelIOError", e.what());
        } catch (const pyllong::DeviceError& e) {
            set_error("DeviceError", e.what());
        } catch (const pyllong::Error& e) {
            set_error("Error", e.what());
        }
    });
    pyllong::python::bind_gguf(m);
    pyllong::python::bind_model(m);
    pyllong::python::bind_context(m);
    pyllong::python::bind_quant(m);
    pyllong::python::bind_tokenizer(m);
    pyllong::python::bind_state(m);
    pyllong::python::bind_cuda(m);
    pyllong::python::bind_sampling(m);
}
