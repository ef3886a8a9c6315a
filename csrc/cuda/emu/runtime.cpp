// The CUDA emulator's runtime (see prelude.h): the CUDA runtime functions the backend calls,
// over host memory, and the block scheduler that runs a kernel's threads as fibers.
// Everything is synchronous: a launch or copy has finished when the call returns (or, under
// stream capture, is recorded for the graph), so streams, events and synchronization have
// nothing to wait for.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cuda/emu/prelude.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace pyllong::emu {

thread_local uint3 t_thread, t_block;
thread_local dim3 t_block_dim, t_grid_dim;

#if !defined(__x86_64__)
#error "the CUDA emulator switches fibers with x86-64 assembly"
#endif

namespace {

// Switching fibers: save the callee-saved registers on the current stack, store its pointer
// in *from, load `to` and pop the next fiber's registers. The caller-saved ones are the
// compiler's to save, as for any call. (ucontext's swapcontext costs a system call per switch.)
extern "C" void pyllong_emu_switch(void** from, void* to);
asm(R"(
    .text
    .globl pyllong_emu_switch
    .type pyllong_emu_switch, @function
pyllong_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size pyllong_emu_switch, .-pyllong_emu_switch
    .section .note.GNU-stack,"",@progbits
    .text
)");

// Under AddressSanitizer (tools/sanitize.sh with PYLLONG_SANITIZE_CUDA_EMU=1: out-of-bounds
// device accesses of a kernel then fail like host ones) every switch is announced, so that
// ASan knows which stack is live.
#if defined(__SANITIZE_ADDRESS__)
struct AsanStack {
    const void* bottom = nullptr;
    size_t size = 0;
};
thread_local AsanStack t_sched_stack;  // the scheduler's, learnt by the first fiber to start
inline void asan_leave(void** fake, const void* bottom, size_t size) { __sanitizer_start_switch_fiber(fake, bottom, size); }
inline void asan_arrive(void* fake, AsanStack* from) {
    __sanitizer_finish_switch_fiber(fake, from ? &from->bottom : nullptr, from ? &from->size : nullptr);
}
#else
struct AsanStack {};
inline void asan_leave(void**, const void*, size_t) {}
inline void asan_arrive(void*, AsanStack*) {}
#endif

enum class State { Ready, AtBlock, AtWarp, Done };

struct Fiber {
    void* sp = nullptr;
    void* asan_fake = nullptr;  // ASan's fake stack of this fiber while it is switched out
    State state = State::Ready;
    uint64_t slot = 0;  // the shuffle exchange
    uint3 idx{};
};

// One block in flight on this OS thread.
struct BlockRun {
    std::vector<Fiber> fibers;  // (threads per block,)
    std::unique_ptr<char[]> stacks;  // (threads per block, kStackBytes), not zeroed: touched as used
    int capacity = 0;
    void* sched = nullptr;      // the scheduler's saved stack pointer
    int cur = 0;
    const std::function<void()>* body = nullptr;
};
constexpr size_t kStackBytes = 64 << 10;
thread_local BlockRun t_run;

void to_scheduler(Fiber& f, bool done) {
#if defined(__SANITIZE_ADDRESS__)
    asan_leave(done ? nullptr : &f.asan_fake, t_sched_stack.bottom, t_sched_stack.size);
#endif
    pyllong_emu_switch(&f.sp, t_run.sched);
    asan_arrive(f.asan_fake, nullptr);
}

[[noreturn]] void fiber_main() {
#if defined(__SANITIZE_ADDRESS__)
    asan_arrive(nullptr, &t_sched_stack);
#endif
    (*t_run.body)();
    Fiber& f = t_run.fibers[t_run.cur];
    f.state = State::Done;
    to_scheduler(f, /*done=*/true);  // never resumed
    __builtin_unreachable();
}

// A fresh fiber's stack: six zero registers, then fiber_main as the return address, entered
// with the stack aligned as after a call.
void* fresh_stack(char* base) {
    auto top = reinterpret_cast<uintptr_t>(base + kStackBytes) & ~uintptr_t{15};
    auto* sp = reinterpret_cast<uint64_t*>(top);
    *--sp = 0;  // fiber_main's own return address: it never returns
    *--sp = reinterpret_cast<uint64_t>(&fiber_main);
    for (int i = 0; i < 6; ++i) *--sp = 0;
    return sp;
}

void yield(State s) {
    Fiber& f = t_run.fibers[t_run.cur];
    f.state = s;
    to_scheduler(f, /*done=*/false);
}

[[noreturn]] void deadlock(const char* what) {
    std::fprintf(stderr, "pyllong CUDA emulator: %s (block %u,%u,%u)\n", what, t_block.x, t_block.y, t_block.z);
    std::abort();  // a kernel bug: on a GPU this hangs or is undefined
}

// Runs the block's fibers round-robin until each has reached its next barrier or ended, then
// releases a barrier every thread it concerns has reached: the block's (all live threads
// at __syncthreads) or a warp's (all live lanes of that warp in a shuffle).
void run_block(int n) {
    BlockRun& r = t_run;
    for (int i = 0; i < n; ++i) {
        r.fibers[i].sp = fresh_stack(r.stacks.get() + i * kStackBytes);
        r.fibers[i].state = State::Ready;
    }
    for (;;) {
        for (int i = 0; i < n; ++i) {
            if (r.fibers[i].state != State::Ready) continue;
            r.cur = i;
            t_thread = r.fibers[i].idx;
            void* fake = nullptr;
            asan_leave(&fake, r.stacks.get() + i * kStackBytes, kStackBytes);
            pyllong_emu_switch(&r.sched, r.fibers[i].sp);
            asan_arrive(fake, nullptr);
        }
        int live = 0, at_block = 0;
        for (int i = 0; i < n; ++i) {
            live += r.fibers[i].state != State::Done;
            at_block += r.fibers[i].state == State::AtBlock;
        }
        if (live == 0) return;
        bool released = false;
        if (at_block == live) {
            for (int i = 0; i < n; ++i)
                if (r.fibers[i].state == State::AtBlock) r.fibers[i].state = State::Ready;
            released = true;
        }
        for (int w = 0; w < n; w += 32) {
            int lanes = 0, waiting = 0;
            for (int i = w; i < std::min(n, w + 32); ++i) {
                lanes += r.fibers[i].state != State::Done;
                waiting += r.fibers[i].state == State::AtWarp;
            }
            if (waiting == 0 || waiting != lanes) continue;
            for (int i = w; i < std::min(n, w + 32); ++i) r.fibers[i].state = State::Ready;
            released = true;
        }
        if (!released) deadlock("threads wait at different barriers (__syncthreads vs a warp shuffle)");
    }
}

// The blocks [first, last) of the grid (x fastest), on this OS thread.
void run_blocks(dim3 grid, dim3 block, const std::function<void()>& body, int64_t first, int64_t last) {
    const int n = static_cast<int>(block.x * block.y * block.z);
    BlockRun& r = t_run;
    if (r.capacity < n) {
        r.fibers.resize(n);
        r.stacks.reset(new char[static_cast<size_t>(n) * kStackBytes]);
        r.capacity = n;
    }
    r.body = &body;
    t_block_dim = block;
    t_grid_dim = grid;
    for (int i = 0; i < n; ++i)
        r.fibers[i].idx = uint3{static_cast<unsigned>(i) % block.x, static_cast<unsigned>(i) / block.x % block.y,
                                static_cast<unsigned>(i) / (block.x * block.y)};
    for (int64_t b = first; b < last; ++b) {
        t_block = uint3{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                        static_cast<unsigned>(b / (int64_t{grid.x} * grid.y))};
        run_block(n);
    }
}

}  // namespace

// The work a capturing thread has recorded (null: not capturing), in stream order.
using Graph = std::vector<std::function<void()>>;
thread_local Graph* t_capture = nullptr;

// Runs op now, or records it when this thread captures a graph.
cudaError_t run_or_record(std::function<void()> op) {
    if (t_capture) t_capture->push_back(std::move(op));
    else op();
    return cudaSuccess;
}

// Blocks are independent in the CUDA model, so they are shared out over the host's cores.
void run_grid(dim3 grid, dim3 block, const std::function<void()>& body) {
    if (t_capture) {
        t_capture->push_back([grid, block, body] { run_grid(grid, block, body); });
        return;
    }
    const int n = static_cast<int>(block.x * block.y * block.z);
    if (n <= 0 || n > 1024) deadlock("invalid block size");
    const int64_t n_blocks = int64_t{grid.x} * grid.y * grid.z;
    const int64_t n_workers = std::min<int64_t>(n_blocks, std::max(1u, std::thread::hardware_concurrency()));
    std::vector<std::thread> workers;
    for (int64_t w = 1; w < n_workers; ++w)
        workers.emplace_back(run_blocks, grid, block, std::cref(body), n_blocks * w / n_workers,
                             n_blocks * (w + 1) / n_workers);
    run_blocks(grid, block, body, 0, n_blocks / n_workers);
    for (std::thread& t : workers) t.join();
}

void sync_block() { yield(State::AtBlock); }
void sync_warp() { yield(State::AtWarp); }
void* shuffle_slot() { return &t_run.fibers[t_run.cur].slot; }
const void* shuffle_slot_of_lane(int lane) { return &t_run.fibers[t_run.cur / 32 * 32 + lane].slot; }
int lane_id() { return t_run.cur % 32; }

}  // namespace pyllong::emu

// ---- the runtime API, over host memory ----
namespace {
cudaError_t g_last = cudaSuccess;
struct Event {
    std::chrono::steady_clock::time_point t;
};
constexpr size_t kDeviceBytes = size_t{8} << 30;  // what cudaMemGetInfo reports free
}  // namespace

extern "C" {

cudaError_t cudaMalloc(void** p, size_t n) {
    *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
    return *p ? cudaSuccess : (g_last = cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t n) { return cudaMalloc(p, n); }
cudaError_t cudaHostAlloc(void** p, size_t n, unsigned int) { return cudaMalloc(p, n); }
cudaError_t cudaFreeHost(void* p) { return cudaFree(p); }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
    if (n) std::memmove(dst, src, n);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t) {
    return pyllong::emu::run_or_record([=] {
        if (n) std::memmove(dst, src, n);
    });
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind, cudaStream_t) {
    return pyllong::emu::run_or_record([=] {
        for (size_t r = 0; r < height; ++r)
            std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    });
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
    return pyllong::emu::run_or_record([=] { std::memset(p, v, n); });
}
cudaError_t cudaMemGetInfo(size_t* free_b, size_t* total_b) {
    *free_b = *total_b = kDeviceBytes;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) {
    *d = 0;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    std::memset(prop, 0, sizeof(*prop));
    std::snprintf(prop->name, sizeof(prop->name), "pyllong CUDA emulator (CPU)");
    prop->major = 8;
    prop->totalGlobalMem = kDeviceBytes;
    return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr attr, int) {
    *v = attr == cudaDevAttrComputeCapabilityMajor ? 8 : 0;  // < 9: no programmatic dependent launch
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    const cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
const char* cudaGetErrorString(cudaError_t e) {
    return e == cudaSuccess ? "no error" : e == cudaErrorNotSupported ? "not supported by the CUDA emulator"
                                                                       : "emulated CUDA error";
}
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamCreate(cudaStream_t* s) {
    *s = reinterpret_cast<cudaStream_t>(new char);
    return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return cudaStreamCreate(s); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    delete reinterpret_cast<char*>(s);
    return cudaSuccess;
}
// A graph is the list of recorded work; an executable graph, a copy of it.
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
    if (pyllong::emu::t_capture) return cudaErrorIllegalState;
    pyllong::emu::t_capture = new pyllong::emu::Graph;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) {
    *g = reinterpret_cast<cudaGraph_t>(pyllong::emu::t_capture);
    pyllong::emu::t_capture = nullptr;
    return *g ? cudaSuccess : cudaErrorIllegalState;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
    *e = reinterpret_cast<cudaGraphExec_t>(new pyllong::emu::Graph(*reinterpret_cast<pyllong::emu::Graph*>(g)));
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
    for (const auto& op : *reinterpret_cast<pyllong::emu::Graph*>(e)) op();
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete reinterpret_cast<pyllong::emu::Graph*>(g);
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete reinterpret_cast<pyllong::emu::Graph*>(e);
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = reinterpret_cast<cudaEvent_t>(new Event);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete reinterpret_cast<Event*>(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    reinterpret_cast<Event*>(e)->t = std::chrono::steady_clock::now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<Event*>(b)->t - reinterpret_cast<Event*>(a)->t)
              .count();
    return cudaSuccess;
}

}  // extern "C"
