#include "ops/swiglu.h"

#include <algorithm>
#include <atomic>
#include <cmath>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PYLLONG_SWIGLU_AVX2 1
#endif

namespace pyllong {

namespace {
#ifdef PYLLONG_SWIGLU_AVX2
// exp(x) for 8 floats, Cephes' expf: x = n ln2 + r, exp(r) by a degree-6 polynomial.
// Inputs are clamped to +-88.37, where expf over/underflows, so silu stays finite.
inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f)), _mm256_set1_ps(-88.3762626647949f));
    __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
}
#endif

// Below this many values one thread does it: the hand-off costs more (decode: n = n_ff).
constexpr int64_t kParallelMin = 1 << 15;
constexpr int64_t kChunk = 1 << 13;  // values per work item
}  // namespace

void swiglu_range(const float* gate, float* up, int64_t n) {
    int64_t i = 0;
#ifdef PYLLONG_SWIGLU_AVX2
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
    std::atomic<int64_t> next{0};
    pool.run(nth, [&](int, int) {
        for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) {
            const int64_t i0 = c * kChunk;
            swiglu_range(gate + i0, up + i0, std::min(kChunk, n - i0));
        }
    });
}

}  // namespace pyllong
