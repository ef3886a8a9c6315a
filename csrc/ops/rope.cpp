#include "ops/rope.h"

#include <algorithm>
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
// Rotates every head of one token with cs (n_rot,): cos and sin of each pair's angle.
void rotate_token(float* x, int64_t n_head, int64_t head_dim, const RopeParams& p, const float* cs) {
    const int64_t half = p.n_rot / 2;
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

void fill_cos_sin(double pos, const std::vector<double>& inv_freq, float* cs /* (n_rot,) */) {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
        const double theta = pos * inv_freq[i];
        cs[2 * i] = static_cast<float>(std::cos(theta));
        cs[2 * i + 1] = static_cast<float>(std::sin(theta));
    }
}

// cos/sin tables of recent position lists, per thread. A forward pass rotates q and k of
// every layer at the same positions (2 * n_layer calls per chunk): computing the angles
// once per chunk instead of per call removed ~100 pow/cos/sin per layer from each decode
// step. Three entries, because SelfExtend alternates three lists (query, key and plain
// positions). Values are computed exactly as before, so results do not change.
struct AngleTable {
    int64_t n_rot = -1;
    float base = 0, scale = 0;
    std::vector<float> factors;  // (n_rot/2,) a copy (a pointer could be reused by another model), or empty
    std::vector<int32_t> pos;  // (n_tok,)
    std::vector<float> cs;     // (n_tok, n_rot)
};

bool same_factors(const AngleTable& t, const RopeParams& p) {
    if (!p.freq_factors) return t.factors.empty();
    return static_cast<int64_t>(t.factors.size()) == p.n_rot / 2 &&
           std::equal(t.factors.begin(), t.factors.end(), p.freq_factors);
}

const float* cos_sin_table(const int32_t* pos, int64_t n_tok, const RopeParams& p) {
    thread_local AngleTable tables[3];
    thread_local int next = 0;
    for (AngleTable& t : tables)
        if (t.n_rot == p.n_rot && t.base == p.freq_base && t.scale == p.freq_scale && same_factors(t, p) &&
            static_cast<int64_t>(t.pos.size()) == n_tok && std::equal(pos, pos + n_tok, t.pos.begin()))
            return t.cs.data();
    AngleTable& t = tables[next];
    next = (next + 1) % 3;
    t.n_rot = p.n_rot;
    t.base = p.freq_base;
    t.scale = p.freq_scale;
    if (p.freq_factors) t.factors.assign(p.freq_factors, p.freq_factors + p.n_rot / 2);
    else t.factors.clear();
    t.pos.assign(pos, pos + n_tok);
    t.cs.resize(static_cast<size_t>(n_tok * p.n_rot));
    const std::vector<double> inv_freq = rope_inverse_frequencies(p);
    for (int64_t i = 0; i < n_tok; ++i) fill_cos_sin(pos[i], inv_freq, t.cs.data() + i * p.n_rot);
    return t.cs.data();
}
}  // namespace

void rope(float* x, const int32_t* pos, int64_t n_tok, int64_t n_head, int64_t head_dim, const RopeParams& p) {
    if (n_tok <= 0 || p.n_rot <= 0) return;
    const float* cs = cos_sin_table(pos, n_tok, p);
    for (int64_t t = 0; t < n_tok; ++t) rotate_token(x + t * n_head * head_dim, n_head, head_dim, p, cs + t * p.n_rot);
}

void rope_delta(float* x, int32_t delta, int64_t n_head, int64_t head_dim, const RopeParams& p) {
    const std::vector<double> inv_freq = rope_inverse_frequencies(p);
    std::vector<float> cs(static_cast<size_t>(p.n_rot));
    fill_cos_sin(delta, inv_freq, cs.data());
    rotate_token(x, n_head, head_dim, p, cs.data());
}

}  // namespace pyllong
