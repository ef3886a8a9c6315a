// The native sampler chain used by pyllong-chat. It mirrors pyllong/sampling.py (the Python
// loop) exactly in defaults, order and semantics — llama.cpp's order:
//
//     repetition penalty -> top-k -> top-p -> min-p -> temperature -> sample
//
// temperature 0 is greedy: the argmax of the logits after the penalty (the first one on
// ties, like np.argmax), so greedy output matches the Python API token for token.
// If you change a rule here, change it in pyllong/sampling.py too (and the reverse).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sampling/rng.h"

namespace pyllong {

struct SamplingParams {
    double temperature = 0.8;
    int32_t top_k = 40;            // 0 = off
    double top_p = 0.95;           // 1 = off
    double min_p = 0.05;           // 0 = off
    double repeat_penalty = 1.1;   // 1 = off
    int32_t repeat_last_n = 64;    // 0 = no window, -1 = the whole history

    // Throws InvalidArgument naming the parameter, its value and the valid range (the same
    // ranges as SamplingParams.validate in Python).
    void validate() const;
};

class Sampler {
public:
    Sampler(const SamplingParams& params, int32_t n_vocab, uint64_t seed);

    // Next token from one row of raw logits (n_vocab floats); `history` are the ids before
    // it (prompt and generated), for the penalty window.
    int32_t sample(const float* logits, const int32_t* history, size_t n_history);

    const SamplingParams& params() const { return p_; }

private:
    struct Candidate {
        int32_t id;
        float logit;
    };
    void apply_penalty(const int32_t* history, size_t n_history);
    void top_k();
    void top_p();
    void min_p();
    void top_k_one();
    int32_t draw();

    SamplingParams p_;
    int32_t n_vocab_;
    Rng rng_;
    std::vector<float> logits_;          // (n_vocab,) working copy
    std::vector<Candidate> cand_;        // the candidate set after each filter
    std::vector<uint8_t> seen_;          // (n_vocab,) scratch for the penalty window
};

}  // namespace pyllong
