// A persistent pool of worker threads for data-parallel kernels (matmul over rows).
// Threads are created once; each run() hands the same function to nth threads (the
// caller is thread 0) and returns when all have finished, like ggml's graph threads.
// Idle workers spin briefly (a decode step issues hundreds of small matmuls, and a
// condvar wake-up per matmul would cost more than the work), then sleep on a condvar.
// Workers claim their share of a job; when the caller has finished its own share it
// takes over the shares nobody has claimed yet, so a worker that the OS has not
// scheduled (a busy machine) never delays the caller. Jobs should therefore split work
// dynamically (an atomic chunk counter), not assume that thread i did share i.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace pyllong {

class ThreadPool {
public:
    // n_threads: total threads including the caller of run(); n_threads - 1 workers start.
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return static_cast<int>(workers_.size()) + 1; }

    // fn(ith, nth) on nth threads, 1 <= nth <= size() (clamped). The first exception
    // thrown by any thread is rethrown here after all have finished. One run at a time
    // per pool (concurrent callers are serialized); never call run() from inside a job
    // of the same pool (it would wait for itself).
    template <class F>
    void run(int nth, F&& fn) {
        using Fn = std::remove_reference_t<F>;
        run_impl(nth, [](void* ctx, int ith, int n) { (*static_cast<Fn*>(ctx))(ith, n); }, const_cast<void*>(static_cast<const void*>(&fn)));
    }

private:
    using JobFn = void (*)(void* ctx, int ith, int nth);
    void run_impl(int nth, JobFn fn, void* ctx);
    void worker_loop(int ith);
    void run_job_part(int ith);

    std::vector<std::thread> workers_;
    std::mutex run_mu_;  // serializes run() callers
    std::mutex mu_;      // guards sleeping and error_
    std::condition_variable wake_;
    std::atomic<uint64_t> generation_{0};  // bumped once per job
    std::atomic<int> claimed_{0};          // shares 1..nth-1 handed out (may overshoot)
    std::atomic<int> finished_{0};         // claimed shares that workers have finished
    JobFn job_fn_ = nullptr;               // written before claimed_ is reset (release)
    void* job_ctx_ = nullptr;
    std::atomic<int> job_nth_{0};
    std::atomic<bool> stop_{false};
    std::exception_ptr error_;
};

}  // namespace pyllong
