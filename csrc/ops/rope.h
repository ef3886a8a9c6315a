// Rotary position embedding, in place.
#pragma once
#include <cstdint>
#include <vector>

namespace pyllong {

enum class RopeMode {
    Normal,  // rotate adjacent pairs (x[2i], x[2i+1])            — llama
    NeoX,    // rotate (x[i], x[i + n_rot/2])                     — phi2, phi3
};

struct RopeParams {
    RopeMode mode = RopeMode::Normal;
    int64_t n_rot = 0;              // rotated dims per head (<= head_dim; phi2 rotates part)
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;        // linear scaling: position * freq_scale
    const float* freq_factors = nullptr;  // (n_rot/2,) divisors of theta (LLaMA-3.1), or null
};

// (n_rot/2,) the angle per position of each rotated pair: scale * base^(-2i/n_rot) / factor_i.
std::vector<double> rope_inverse_frequencies(const RopeParams& p);

// x: (n_tok, n_head * head_dim); pos: (n_tok,). Rotates each head by its token's position.
void rope(float* x, const int32_t* pos, int64_t n_tok, int64_t n_head, int64_t head_dim, const RopeParams& p);

// Rotate by a position delta (used to re-rotate cached keys after a context shift).
void rope_delta(float* x, int32_t delta, int64_t n_head, int64_t head_dim, const RopeParams& p);

}  // namespace pyllong
