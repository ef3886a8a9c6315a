// PYLLONG_CUDA_PROFILE=1: device time of each phase of the forward pass, from CUDA events,
// against the host's wall time of the calls (the gap is launch overhead and idle device),
// printed to stderr when the device layers are freed. Off, a phase costs one branch.
#pragma once
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace pyllong::cuda {

class PhaseTimer {
public:
    enum Phase { Transfer, Norm, Matmul, Attention, Elementwise, kPhases };

    explicit PhaseTimer(cudaStream_t s) : stream_(s), on_(std::getenv("PYLLONG_CUDA_PROFILE") != nullptr) {}
    ~PhaseTimer() {
        if (!on_ || calls_ == 0) return;
        static const char* names[kPhases] = {"transfer", "norm", "matmul", "attention", "elementwise"};
        double dev = 0;
        for (int p = 0; p < kPhases; ++p) dev += ms_[p];
        std::fprintf(stderr, "pyllong CUDA profile: %lld forward calls, wall %.1f ms, device busy %.1f ms\n",
                     calls_, wall_ms_, dev);
        for (int p = 0; p < kPhases; ++p)
            std::fprintf(stderr, "  %-12s %9.2f ms  %8lld kernels/copies\n", names[p], ms_[p], count_[p]);
        for (auto& e : pool_) cudaEventDestroy(e);
    }
    bool on() const { return on_; }
    void call_begin() { if (on_) t0_ = std::chrono::steady_clock::now(); }
    // Around each phase: begin(p) ... end().
    void begin(Phase p) {
        if (!on_) return;
        marks_.push_back({p, event(), event()});
        cudaEventRecord(marks_.back().a, stream_);
    }
    void end() { if (on_) cudaEventRecord(marks_.back().b, stream_); }
    // After the stream is synchronized.
    void call_end() {
        if (!on_) return;
        for (auto& m : marks_) {
            float ms = 0;
            cudaEventElapsedTime(&ms, m.a, m.b);
            ms_[m.p] += ms;
            ++count_[m.p];
            pool_.push_back(m.a);
            pool_.push_back(m.b);
        }
        marks_.clear();
        wall_ms_ += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0_).count();
        ++calls_;
    }

private:
    struct Mark { Phase p; cudaEvent_t a, b; };
    cudaEvent_t event() {
        if (!pool_.empty()) { cudaEvent_t e = pool_.back(); pool_.pop_back(); return e; }
        cudaEvent_t e;
        cudaEventCreate(&e);
        return e;
    }
    cudaStream_t stream_;
    bool on_;
    std::vector<Mark> marks_;
    std::vector<cudaEvent_t> pool_;
    double ms_[kPhases] = {}, wall_ms_ = 0;
    long long count_[kPhases] = {}, calls_ = 0;
    std::chrono::steady_clock::time_point t0_;
};

}  // namespace pyllong::cuda
