// The native sampler chain, used by pyllong-chat and by Model.generate's loop (through
// _core.Sampler, whenever no Python logits processor or typical sampling is asked for). It
// mirrors pyllong/sampling.py exactly in defaults, order and semantics — llama.cpp's order:
//
//     logit bias -> penalties (repeat, frequency, presence) -> top-k -> top-p -> min-p
//     -> temperature -> sample
//
// temperature 0 is greedy: the argmax of the logits after bias and penalties (the first one
// on ties, like np.argmax), so greedy output matches the Python API token for token. The
// candidates are ordered by descending logit, ties by ascending id, after top-k and top-p
// (as in sampling.py), so given the same uniform draw u both pick the same token.
// If you change a rule here, change it in pyllong/sampling.py too (and the reverse).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
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
    double frequency_penalty = 0;  // [-2, 2]: logit -= count * frequency_penalty
    double presence_penalty = 0;   // [-2, 2]: logit -= presence_penalty for every token seen
    std::vector<std::pair<int32_t, float>> logit_bias;  // (id, bias) added first; -inf bans

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
    // The same with the uniform draw in [0, 1) given by the caller (unused when greedy): the
    // Python loop passes its numpy generator's draw, so seeds keep their meaning there.
    int32_t sample_u(const float* logits, const int32_t* history, size_t n_history, double u);

    const SamplingParams& params() const { return p_; }
    int32_t n_vocab() const { return n_vocab_; }

private:
    struct Candidate {
        int32_t id;
        float logit;
    };
    void apply_penalty(const int32_t* history, size_t n_history);
    void collect_candidates();
    void top_k();
    void top_p();
    void min_p();
    void top_k_one();
    int32_t draw(double u);
    void sort_candidates(size_t n);  // the n best first: logit descending, ties by id

    SamplingParams p_;
    int32_t n_vocab_;
    Rng rng_;
    std::vector<float> logits_;          // (n_vocab,) working copy
    std::vector<Candidate> cand_;        // the candidate set after each filter
    std::vector<float> block_max_;       // top-k's scratch: maxima of 64-logit blocks
    std::vector<float> block_kth_;       // a copy of them, partitioned for the k-th largest
    std::vector<int32_t> seen_;          // (n_vocab,) scratch for the penalty window: counts
};

}  // namespace pyllong
