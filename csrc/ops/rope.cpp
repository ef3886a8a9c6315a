#include "ops/rope.h"

#include <cmath>
#include <vector>

namespace pyllong {

std::vector<double> rope_inverse_frequencies(const RopeParams& p) {
    std::vector<double> f(static_cast<size_t>(p.n_rot / 2));
    for (int64_t i = 0; i < p.n_rot / 2; ++i) {
        f[i] = p.freq_scale * std::pow(static_cast<double>(p.freq_base), -2.0 * i / p.n_rot);
        if (p.freq_factors) f[i] /= p.freq_factors[i];
    }
    return f;
}

namespace {
// Rotates every head of one token by `pos`; cos/sin are computed once per token.
void rotate_token(float* x, double pos, int64_t n_head, int64_t head_dim, const RopeParams& p,
                  const std::vector<double>& inv_freq, std::vector<float>& cs /* (n_rot,) */) {
    const int64_t half = p.n_rot / 2;
    for (int64_t i = 0; i < half; ++i) {
        const double theta = pos * inv_freq[i];
        cs[2 * i] = static_cast<float>(std::cos(theta));
        cs[2 * i + 1] = static_cast<float>(std::sin(theta));
    }
    const bool normal = p.mode == RopeMode::Normal;
    for (int64_t h = 0; h < n_head; ++h) {
        float* v = x + h * head_dim;
        for (int64_t i = 0; i < half; ++i) {
            const int64_t a = normal ? 2 * i : i, b = normal ? 2 * i + 1 : i + half;
            const float c = cs[2 * i], s = cs[2 * i + 1], x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}
}  // namespace

void rope(float* x, const int32_t* pos, int64_t n_tok, int64_t n_head, int64_t head_dim, const RopeParams& p) {
    const std::vector<double> inv_freq = rope_inverse_frequencies(p);
    std::vector<float> cs(static_cast<size_t>(p.n_rot));
    for (int64_t t = 0; t < n_tok; ++t)
        rotate_token(x + t * n_head * head_dim, pos[t], n_head, head_dim, p, inv_freq, cs);
}

void rope_delta(float* x, int32_t delta, int64_t n_head, int64_t head_dim, const RopeParams& p) {
    const std::vector<double> inv_freq = rope_inverse_frequencies(p);
    std::vector<float> cs(static_cast<size_t>(p.n_rot));
    rotate_token(x, delta, n_head, head_dim, p, inv_freq, cs);
}

}  // namespace pyllong
