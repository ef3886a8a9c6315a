#include "core/read_bandwidth.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <vector>

#include "core/error.h"
#include "core/thread_pool.h"

namespace pyllong {

double read_bandwidth(int64_t bytes, int n_threads, int reps) {
    if (bytes < (1 << 20) || bytes > (int64_t{1} << 36))
        throw InvalidArgument("read_bandwidth: buffer size must be in [1 MiB, 64 GiB], got " + std::to_string(bytes));
    if (reps < 1) throw InvalidArgument("read_bandwidth: reps must be at least 1");
    const int64_t n = bytes / 64 * 8;                    // uint64 words, whole cache lines
    std::vector<uint64_t> buf(static_cast<size_t>(n));  // (n,) written once: every page is resident
    for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
    ThreadPool pool(n_threads);
    std::vector<uint64_t> sink(static_cast<size_t>(pool.size()) * 8, 0);  // a line per thread: no false sharing
    double best = 0.0;
    for (int r = 0; r < reps; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        pool.run(pool.size(), [&](int ith, int nth) {
            // Share ith is a fixed slice: whichever thread runs it reads those bytes.
            const int64_t lo = n * ith / nth / 8 * 8, hi = n * (ith + 1) / nth / 8 * 8;
            uint64_t a[8] = {};  // eight independent sums keep the loads in flight (and vectorize)
            for (int64_t i = lo; i < hi; i += 8)
                for (int j = 0; j < 8; ++j) a[j] += buf[i + j];
            uint64_t s = 0;
            for (uint64_t v : a) s += v;
            sink[static_cast<size_t>(ith) * 8] += s;
        });
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::max(best, static_cast<double>(n * 8) / sec);
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    volatile uint64_t keep = sink[0];  // the sums are used: the loads cannot be dropped
    (void)keep;
    return best;
}

}  // namespace pyllong
