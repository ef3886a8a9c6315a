// A Context is single-threaded: its cache and scratch are written by every call. Python code
// that shares one Model between threads would otherwise race inside native code (a crash or
// a silently wrong cache), so each binding that touches a Context holds this guard, and a
// second thread gets a typed error instead. Contexts over one shared ModelFile are
// independent and run in parallel freely.
#pragma once
#include <mutex>
#include <unordered_set>

#include "core/error.h"

namespace pyllong::python {

class BusyGuard {
public:
    explicit BusyGuard(const void* ctx) : ctx_(ctx) {
        std::lock_guard<std::mutex> lock(mutex());
        if (!busy().insert(ctx_).second)
            throw InvalidArgument("this context is in use by another thread; give each thread its own Model "
                                  "(or Context), or serialize the calls");
    }
    ~BusyGuard() {
        std::lock_guard<std::mutex> lock(mutex());
        busy().erase(ctx_);
    }
    BusyGuard(const BusyGuard&) = delete;
    BusyGuard& operator=(const BusyGuard&) = delete;

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    static std::unordered_set<const void*>& busy() {
        static std::unordered_set<const void*> s;
        return s;
    }
    const void* ctx_;
};

}  // namespace pyllong::python
