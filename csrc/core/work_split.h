// Hands out the items [0, n_items) of one ThreadPool::run to its threads.
//
// Each thread owns a contiguous region (about n_items / nth items) and takes it front to
// back, one item at a time; a thread that has finished its region then takes what is left
// of the others' regions. So on a quiet machine every thread reads one contiguous stream of
// memory, and on a busy one a thread that the OS has descheduled delays the run by the item
// it is in, not by its whole share.
//
// Why not one shared counter (items taken alternately by all threads): the threads' reads
// then interleave in small pieces, each core's hardware prefetcher runs on into the rows the
// other core is about to read, and every item starts a cold stream. SmolLM2 Q4_1 decode on
// the 2-core machine: 156 tok/s with 64-row items from one counter, 330 tok/s with one
// region per thread (BENCHMARKS.md, issue 9).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>

namespace pyllong {

class WorkSplit {
public:
    WorkSplit(int64_t n_items, int nth) : nth_(std::max(1, nth)), regions_(new Region[static_cast<size_t>(nth_)]) {
        for (int r = 0; r < nth_; ++r) {
            regions_[r].next.store(n_items * r / nth_, std::memory_order_relaxed);
            regions_[r].end = n_items * (r + 1) / nth_;
        }
    }

    // fn(item) for items until none is left: this thread's region first (ith is a pool
    // share; a share run by another thread is still correct), then the others'.
    template <class F>
    void run(int ith, F&& fn) {
        for (int k = 0; k < nth_; ++k) {
            Region& r = regions_[(ith + k) % nth_];
            for (int64_t i; (i = r.next.fetch_add(1, std::memory_order_relaxed)) < r.end;) fn(i);
        }
    }

private:
    struct alignas(64) Region {  // one cache line each: a thread's counter stays in its core
        std::atomic<int64_t> next{0};
        int64_t end = 0;
    };
    int nth_;
    std::unique_ptr<Region[]> regions_;
};

}  // namespace pyllong
