#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PYLLONG_CPU_RELAX() _mm_pause()
#else
#define PYLLONG_CPU_RELAX() std::this_thread::yield()
#endif

namespace pyllong {

namespace {
// How long an idle worker keeps spinning before it sleeps: long enough to bridge the
// gaps between the matmuls of one decode step, short enough not to burn a shared core.
constexpr auto kSpinFor = std::chrono::microseconds(300);
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
    if (n_threads < 1 || n_threads > 1024)
        throw InvalidArgument("thread pool size must be in [1, 1024], got " + std::to_string(n_threads));
    workers_.reserve(n_threads - 1);
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_.store(true, std::memory_order_release);
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : workers_) t.join();
}

void ThreadPool::run_job_part(int ith) {
    try {
        job_fn_(job_ctx_, ith, job_nth_.load(std::memory_order_relaxed));
    } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
    }
}

void ThreadPool::run_impl(int nth, JobFn fn, void* ctx) {
    nth = std::clamp(nth, 1, size());
    std::lock_guard<std::mutex> run_lock(run_mu_);
    job_fn_ = fn;
    job_ctx_ = ctx;
    job_nth_.store(nth, std::memory_order_relaxed);
    error_ = nullptr;
    if (nth > 1) {
        finished_.store(0, std::memory_order_relaxed);
        claimed_.store(0, std::memory_order_release);  // publishes the job fields above
        {
            std::lock_guard<std::mutex> lk(mu_);  // pairs with the sleeping workers' wait
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
    }
    run_job_part(0);
    if (nth > 1) {
        // Shares no worker has claimed yet: run them here (with dynamic splitting they are
        // usually empty by now) instead of waiting for a worker to be scheduled.
        int stolen = 0;
        for (int k; (k = claimed_.fetch_add(1, std::memory_order_acq_rel)) < nth - 1; ++stolen) run_job_part(k + 1);
        const int worker_shares = nth - 1 - stolen;
        for (int polls = 1; finished_.load(std::memory_order_acquire) != worker_shares; ++polls) {
            PYLLONG_CPU_RELAX();
            if (polls % 1024 == 0) std::this_thread::yield();  // a worker may be descheduled
        }
    }
    if (error_) std::rethrow_exception(error_);
}

void ThreadPool::worker_loop(int) {
    uint64_t seen = 0;  // the generation at construction, not at thread start: a job may
                        // already have been published before this thread ran
    for (;;) {
        // Spin, then sleep, until a new job (or stop) is published.
        const auto spin_until = std::chrono::steady_clock::now() + kSpinFor;
        uint64_t gen;
        int polls = 0;
        while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
            PYLLONG_CPU_RELAX();
            if (++polls % 64 == 0) {
                if (std::chrono::steady_clock::now() > spin_until) {
                    std::unique_lock<std::mutex> lk(mu_);
                    wake_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                } else {
                    // On a loaded machine the thread that will publish the next job may be
                    // waiting for this very core: a pure spin then burns the time slice it
                    // needs (perf on the shared 2-core VM: the worker spent 28 % of all
                    // decode samples spinning and did a fifth of the GEMV rows). Yielding is
                    // a no-op when nothing else is runnable here.
                    std::this_thread::yield();
                }
            }
        }
        seen = gen;
        if (stop_.load(std::memory_order_acquire)) return;
        // Claim a share of the current job. A claim beyond nth-1 means the job is fully
        // handed out (possibly already finished and replaced by a newer one): skip it.
        const int k = claimed_.fetch_add(1, std::memory_order_acq_rel);
        if (k < job_nth_.load(std::memory_order_relaxed) - 1) {
            run_job_part(k + 1);
            finished_.fetch_add(1, std::memory_order_release);
        }
    }
}

}  // namespace pyllong
