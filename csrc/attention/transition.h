// Attention Transition (Gao et al. 2023, arXiv 2307.13365) as a policy of the one attention
// loop: during the prompt pass, rows of the post-softmax probabilities that fall in a layer's
// bands lose their thinly spread mass, part of which is handed to the text just before the
// band. See ../shared/spec/attention-transition.md; the steps below are numbered as there.
//
// The edit needs a row's full probability vector, which the tiled (online-softmax) prefill
// loop never holds: banded rows take the per-row path of the loop, which does.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace pyllong {

// The user's settings; alpha, beta, bands (m) as the spec names them.
struct Transition {
    bool enabled = false;
    float alpha = 0.5f, beta = 0.1f;
    int64_t bands = 2;
};

// What one layer does for one prompt of N tokens. Its m bands [s, e) = [(t+b+2)I, (t+b+3)I)
// are adjacent, so they are one row range [lo, hi) cut every I rows: the band of row r is
// [r - r % I, r - r % I + I). Empty (lo == hi) when the layer or the prompt is not edited.
struct TransitionLayer {
    int64_t I = 0, lo = 0, hi = 0;
    float alpha = 0, beta = 0;

    bool active() const { return hi > lo; }
    bool in_band(int64_t r) const { return r >= lo && r < hi; }
    int64_t band_start(int64_t r) const { return r - r % I; }
};

// Steps 1-3: the bands of `layer` (0-based) of an n_layer model for a prompt of N tokens
// (N = 0: not a prompt pass, nothing is edited).
TransitionLayer transition_layer(const Transition& t, int64_t n_layer, int64_t layer, int64_t N);

// Step 4 on one row: p (n_keys,) holds row r's probabilities over keys 0..n_keys-1 (keys at
// and after n_keys are zero: the future of a causal row); the row lies in band [s, s + I).
// Edited in place; not renormalized, as the reference.
void transition_edit_row(float* p, int64_t n_keys, int64_t s, const TransitionLayer& tl);

inline Transition make_transition(float alpha, float beta, int64_t bands) {
    if (!(alpha >= 0) || !(beta >= 0))
        throw InvalidArgument("transition: alpha and beta must be >= 0 (reference: alpha 0.5, beta 0.1), got alpha " +
                              std::to_string(alpha) + ", beta " + std::to_string(beta));
    if (bands < 1 || bands > 64)
        throw InvalidArgument("transition: bands (m) must be between 1 and 64 (reference: 2), got " +
                              std::to_string(bands));
    return Transition{true, alpha, beta, bands};
}

}  // namespace pyllong
