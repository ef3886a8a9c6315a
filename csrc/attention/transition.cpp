#include "attention/transition.h"

#include <algorithm>
#include <vector>

namespace pyllong {

TransitionLayer transition_layer(const Transition& t, int64_t n_layer, int64_t layer, int64_t N) {
    TransitionLayer tl;
    if (!t.enabled || N < 400) return tl;  // step 1: the reference crashes below 400; we skip
    const int64_t T = (n_layer - 1) + t.bands;
    const int64_t I = N / T / 5 * 5;       // step 2: floor(N / T), down to a multiple of 5
    if (I == 0 || layer < 1 || layer > n_layer - 3) return tl;  // step 3: layers 1 .. n_layer - 3
    const int64_t t0 = layer - 1;
    tl.I = I;
    tl.lo = std::min((t0 + 2) * I, N);
    tl.hi = std::min((t0 + t.bands + 2) * I, N);  // clipped to the prompt
    tl.alpha = t.alpha;
    tl.beta = t.beta;
    return tl;
}

void transition_edit_row(float* p, int64_t n_keys, int64_t s, const TransitionLayer& tl) {
    const int64_t I = tl.I, e = s + I;
    const int64_t ne = std::min(e, n_keys);  // keys [ne, e) are the row's future: already 0
    const float tau = tl.alpha / static_cast<float>(e);
    for (int64_t c = 0; c < ne; ++c)
        if (p[c] < tau) p[c] = 0.0f;
    p[0] *= 0.5f;
    float kept = 0;
    for (int64_t c = 0; c < ne; ++c) kept += p[c];
    const float removed = 1.0f - kept;  // E
    // Keys that receive mass lie before s <= r, so they are all visible to the row. With the
    // spec's bands s >= 2I (t >= 0), so the s == I branch never runs; it is kept as the spec
    // (and the reference) state it, should the band formula change.
    const bool first_band = s == I;
    const int64_t m0 = first_band ? 0 : s - 2 * I, m1 = e - I;
    const float floor_w = first_band ? 0.001f : 0.01f;
    std::vector<float> M(static_cast<size_t>(m1 - m0));  // (m1 - m0,) over keys [m0, m1), before the additions
    float sum_m = 0;
    for (int64_t c = m0; c < m1; ++c) sum_m += M[c - m0] = p[c] >= tau ? 1.0f : floor_w;
    const float a = tl.beta * removed / sum_m;
    if (first_band) {
        for (int64_t c = s - I; c < e - I; ++c) p[c] += 10.0f * a * M[c - m0];
    } else {
        for (int64_t c = s - I; c < e - I; ++c) p[c] += 7.0f * a * M[c - m0];
        for (int64_t c = s - 2 * I; c < e - 2 * I; ++c) p[c] += 3.0f * a * M[c - m0];
    }
}

}  // namespace pyllong
