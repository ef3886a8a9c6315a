// Row normalizations over (n_rows, n) float buffers.
#pragma once
#include <cstdint>

namespace pyllong {

// out[r] = x[r] / rms(x[r]) * w                      x, out: (n_rows, n); w: (n,)
void rms_norm(const float* x, const float* w, float* out, int64_t n_rows, int64_t n, float eps);
// out[r] = (x[r] - mean) / std * w + b               b may be null
void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t n_rows, int64_t n, float eps);

}  // namespace pyllong
