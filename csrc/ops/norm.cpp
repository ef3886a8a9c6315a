#include "ops/norm.h"

#include <cmath>

namespace pyllong {

void rms_norm(const float* x, const float* w, float* out, int64_t n_rows, int64_t n, float eps) {
    for (int64_t r = 0; r < n_rows; ++r) {
        const float* xr = x + r * n;
        float* o = out + r * n;
        double ss = 0;  // accumulate in double: n is up to 8k and rows can be large
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(xr[i]) * xr[i];
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
