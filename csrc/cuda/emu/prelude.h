// The CUDA emulator (-DPYLLONG_CUDA_EMU=ON): csrc/cuda/*.cu compiled as C++ by the host
// compiler and run on the CPU, so that the device backend's kernels are tested on machines
// without a GPU. Force-included before every CUDA source in that build.
//
// The real CUDA headers give the types (float2, uint4, dim3, __half) and the runtime API's
// declarations; emu/runtime.cpp defines those functions over host memory. Each GPU thread of
// a block is a fiber on one OS thread; __syncthreads and the warp shuffles are scheduling
// points where a fiber waits for the rest of its block or warp. __shared__ variables are
// function statics (one per OS thread: the fibers of a block share them).
//
// Launches and copies run when they are made, except under stream capture: they are then
// recorded and run, in order, each time the graph is launched.
//
// What it checks: results, barriers and warp exchanges as the CUDA model defines them. What
// it does not: timing, memory coalescing, races between blocks.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#define PYLLONG_CUDA_EMULATED 1
#undef __shared__
#define __shared__ static thread_local
#define __launch_bounds__(...)

namespace pyllong::emu {

// The running fiber's coordinates (set by the scheduler on every switch).
extern thread_local uint3 t_thread, t_block;
extern thread_local dim3 t_block_dim, t_grid_dim;

// Runs body once per thread of every block of the grid (or, while this thread captures a
// graph, records it to run when the graph is launched).
void run_grid(dim3 grid, dim3 block, const std::function<void()>& body);
void sync_block();
void sync_warp();
// The exchange slot of the running fiber (8 bytes), and that of lane `lane` of its warp.
void* shuffle_slot();
const void* shuffle_slot_of_lane(int lane);
int lane_id();

}  // namespace pyllong::emu

#define threadIdx (::pyllong::emu::t_thread)
#define blockIdx (::pyllong::emu::t_block)
#define blockDim (::pyllong::emu::t_block_dim)
#define gridDim (::pyllong::emu::t_grid_dim)
#define warpSize 32

inline void __syncthreads() { ::pyllong::emu::sync_block(); }
inline void __syncwarp(unsigned = 0xffffffffu) { ::pyllong::emu::sync_warp(); }

template <class T>
inline T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    static_assert(sizeof(T) <= 8, "emulated shuffles move up to 8 bytes");
    std::memcpy(::pyllong::emu::shuffle_slot(), &v, sizeof(T));
    ::pyllong::emu::sync_warp();
    const int lane = ::pyllong::emu::lane_id();
    const int src = (lane & ~(width - 1)) | ((lane ^ lane_mask) & (width - 1));
    T r;
    std::memcpy(&r, ::pyllong::emu::shuffle_slot_of_lane(src), sizeof(T));
    ::pyllong::emu::sync_warp();  // no lane overwrites its slot before all have read
    return r;
}

template <class T>
inline T __ldg(const T* p) { return *p; }
inline int __dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; ++i)
        c += static_cast<int>(static_cast<int8_t>(a >> (8 * i))) * static_cast<int>(static_cast<int8_t>(b >> (8 * i)));
    return c;
}
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }  // ties to even
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline float __expf(float x) { return std::exp(x); }
// CUDA's device min/max, overloaded for any pair of arithmetic types.
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) { return b < a ? b : a; }
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) { return a < b ? b : a; }
