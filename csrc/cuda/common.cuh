// Shared by the CUDA sources: error checks that throw DeviceError, an owning device buffer,
// and the one kernel launch every source goes through.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "core/error.h"

namespace pyllong::cuda {

inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        cudaGetLastError();  // clear a sticky launch error so the next call reports its own
        throw DeviceError(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
    }
}
// After a kernel launch: a bad configuration shows here, not at the launch.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

// Device memory of n elements of T; freed when dropped. Never managed memory.
template <class T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t n) : n_(n) {
        if (n) check(cudaMalloc(&p_, n * sizeof(T)), "cudaMalloc");
    }
    DeviceBuffer(const T* host, size_t n) : DeviceBuffer(n) { upload(host, n); }
    DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) { release(); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    ~DeviceBuffer() { release(); }

    T* get() const { return p_; }
    size_t size() const { return n_; }
    size_t bytes() const { return n_ * sizeof(T); }
    bool empty() const { return n_ == 0; }
    void upload(const T* host, size_t n, size_t offset = 0) {
        if (n) check(cudaMemcpy(p_ + offset, host, n * sizeof(T), cudaMemcpyHostToDevice), "upload");
    }
    void download(T* host, size_t n, size_t offset = 0) const {
        if (n) check(cudaMemcpy(host, p_ + offset, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    }

private:
    void release() { if (p_) cudaFree(p_); p_ = nullptr; }
    T* p_ = nullptr;
    size_t n_ = 0;
};

// Page-locked host memory of n elements of T: copies from it can be captured in a graph.
template <class T>
class PinnedBuffer {
public:
    PinnedBuffer() = default;
    explicit PinnedBuffer(size_t n) : n_(n) {
        if (n) check(cudaMallocHost(&p_, n * sizeof(T)), "cudaMallocHost");
    }
    PinnedBuffer(PinnedBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
    PinnedBuffer& operator=(PinnedBuffer&& o) noexcept {
        if (this != &o) { release(); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
        return *this;
    }
    PinnedBuffer(const PinnedBuffer&) = delete;
    PinnedBuffer& operator=(const PinnedBuffer&) = delete;
    ~PinnedBuffer() { release(); }
    T* get() const { return p_; }
    size_t size() const { return n_; }

private:
    void release() { if (p_) cudaFreeHost(p_); p_ = nullptr; }
    T* p_ = nullptr;
    size_t n_ = 0;
};

inline int blocks_for(int64_t n, int threads) { return static_cast<int>((n + threads - 1) / threads); }

// Programmatic dependent launch (Hopper and later): a kernel launched with it may start while
// its predecessor in the stream still runs, and does the work that needs none of the
// predecessor's results (streaming its weights in) before pdl_wait(), which returns once the
// predecessor has finished and its writes are visible. pdl_trigger() in a predecessor lets
// the dependent launch early. Both are no-ops on older devices and for ordinary launches.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cudaGridDependencySynchronize();
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cudaTriggerProgrammaticLaunchCompletion();
#endif
}
// Whether launches use it: compute capability 9.0 or later, unless PYLLONG_CUDA_PDL=0.
bool pdl_enabled();

// kernel<<<grid, block, 0, stream>>>(args...), with programmatic dependent launch when pdl
// and the device has it. Under the CUDA emulator (emu/prelude.h) the grid runs on the CPU
// before this returns.
template <class... P, class... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t stream, bool pdl, A&&... args) {
#ifdef PYLLONG_CUDA_EMULATED
    (void)stream;
    (void)pdl;
    emu::run_grid(grid, block, [=] { kernel(args...); });  // by value: a captured graph replays it
#else
    if (pdl && pdl_enabled()) {
        cudaLaunchConfig_t cfg{};
        cfg.gridDim = grid;
        cfg.blockDim = block;
        cfg.stream = stream;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        check(cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...), "kernel launch");
        return;
    }
    kernel<<<grid, block, 0, stream>>>(std::forward<A>(args)...);
#endif
}

}  // namespace pyllong::cuda
