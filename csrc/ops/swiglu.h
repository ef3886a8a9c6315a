// The SwiGLU gate of the llama FFN: up[i] *= silu(gate[i]) = gate[i] / (1 + exp(-gate[i])).
// Prefill applies it to (n_tok, n_ff) values per layer (800k for SmolLM2 at 512 tokens),
// which scalar std::exp made a visible share of pp time: AVX2 computes eight at once with
// Cephes' expf polynomial (relative error ~1e-7), split over the pool's threads when large.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace pyllong {

// gate, up: (n,) floats; up is overwritten. n_threads <= 0 means pool.size().
void swiglu(const float* gate, float* up, int64_t n, ThreadPool& pool, int n_threads = 0);

// The same on one thread, for [0, n).
void swiglu_range(const float* gate, float* up, int64_t n);

}  // namespace pyllong
