#include "ops/swiglu.h"

#include <algorithm>
#include <cmath>

#include "core/exp_avx2.h"
#include "core/work_split.h"

namespace pyllong {

namespace {
// Below this many values one thread does it: the hand-off costs more (decode: n = n_ff).
constexpr int64_t kParallelMin = 1 << 15;
constexpr int64_t kChunk = 1 << 13;  // values per work item
}  // namespace

void swiglu_range(const float* gate, float* up, int64_t n) {
    int64_t i = 0;
#ifdef PYLLONG_EXP_AVX2
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));  // exp(-g)
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(one, e));
        _mm256_storeu_ps(up + i, _mm256_mul_ps(_mm256_loadu_ps(up + i), s));
    }
#endif
    for (; i < n; ++i) up[i] *= gate[i] / (1.0f + std::exp(-gate[i]));
}

void swiglu(const float* gate, float* up, int64_t n, ThreadPool& pool, int n_threads) {
    const int nth = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());
    if (n < kParallelMin || nth == 1) return swiglu_range(gate, up, n);
    const int64_t n_chunks = (n + kChunk - 1) / kChunk;
    WorkSplit split(n_chunks, nth);
    pool.run(nth, [&](int ith, int) {
        split.run(ith, [&](int64_t c) {
            const int64_t i0 = c * kChunk;
            swiglu_range(gate + i0, up + i0, std::min(kChunk, n - i0));
        });
    });
}

}  // namespace pyllong
