// Typed errors of the library. Every error a user can cause (a bad file, a bad option,
// an input too long) is one of these; the Python bindings map each to its own exception
// class. Assertions are for programmer errors only.
#pragma once
#include <stdexcept>
#include <string>

namespace pyllong {

struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// A GGUF file (or a model inside one) is malformed, hostile or unsupported.
struct GGUFError : Error {
    using Error::Error;
};

// The tokens do not fit in the context window.
struct ContextOverflowError : Error {
    using Error::Error;
};

// A caller passed an invalid option or argument (maps to Python ValueError subclass).
struct InvalidArgument : Error {
    using Error::Error;
};

// The GPU cannot do what was asked: no CUDA build, no device, too little device memory,
// or a failed CUDA call. The message says which and what to do.
struct DeviceError : Error {
    using Error::Error;
};

// An OS-level failure: cannot open, stat or map a file.
struct IOError : Error {
    using Error::Error;
};

// A saved state (KV cache file) is malformed, corrupted or belongs to another model/context.
struct StateError : Error {
    using Error::Error;
};

// Not enough memory for what was asked (e.g. the KV cache of a huge n_ctx); the message says
// how many bytes were needed.
struct OutOfMemory : Error {
    using Error::Error;
};

}  // namespace pyllong
