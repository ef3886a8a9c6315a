#include "ops/norm.h"

#include <cmath>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PYLLONG_NORM_AVX2 1
#endif

namespace pyllong {

namespace {
// Sum of squares in double (n is up to 8k and rows can be large). A single double
// accumulator is a serial add chain (4 cycles per element), which made the norms a few
// percent of prefill: AVX2 keeps eight partial sums in two registers instead.
double sum_squares(const float* x, int64_t n) {
    int64_t i = 0;
    double ss = 0;
#ifdef PYLLONG_NORM_AVX2
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        const __m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i)), hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
        a0 = _mm256_fmadd_pd(lo, lo, a0);
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    alignas(32) double part[4];
    _mm256_store_pd(part, _mm256_add_pd(a0, a1));
    ss = (part[0] + part[1]) + (part[2] + part[3]);
#endif
    for (; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
    return ss;
}
}  // namespace

void rms_norm(const float* x, const float* w, float* out, int64_t n_rows, int64_t n, float eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * n;
        float* o = out + r * n;
        const double ss = sum_squares(xr, n);
        const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
        for (int64_t i = 0; i < n; ++i) o[i] = xr[i] * scale * w[i];
    }
}

void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t n_rows, int64_t n, float eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * n;
        float* o = out + r * n;
        double mean = 0;
        for (int64_t i = 0; i < n; ++i) mean += xr[i];
        mean /= n;
        double var = 0;
        for (int64_t i = 0; i < n; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        const double inv = 1.0 / std::sqrt(var / n + eps);
        for (int64_t i = 0; i < n; ++i)
            o[i] = static_cast<float>((xr[i] - mean) * inv) * w[i] + (b ? b[i] : 0.0f);
    }
}

}  // namespace pyllong
