#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#ifdef __AVX2__
#include <immintrin.h>
#endif
#include <string>

#include "core/error.h"

namespace pyllong {

namespace {

// max of x[0, n), and whether any is NaN (np.max then gives NaN).
float max_and_nan(const float* x, size_t n, bool& nan) {
    size_t i = 0;
    float m = -INFINITY;
    nan = false;
#ifdef __AVX2__
    __m256 vm = _mm256_set1_ps(-INFINITY), vn = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        vm = _mm256_max_ps(vm, v);
        vn = _mm256_or_ps(vn, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vm);
    for (float l : lanes) m = l > m ? l : m;
    nan = _mm256_movemask_ps(vn) != 0;
#endif
    for (; i < n; ++i) {
        m = x[i] > m ? x[i] : m;
        nan |= x[i] != x[i];
    }
    return m;
}

std::string num(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

}  // namespace

void SamplingParams::validate() const {
    auto finite = [](const char* name, double v) {
        if (!std::isfinite(v)) throw InvalidArgument(std::string(name) + " must be a finite number, got " + num(v));
    };
    finite("temperature", temperature);
    finite("top_p", top_p);
    finite("min_p", min_p);
    finite("repeat_penalty", repeat_penalty);
    if (temperature < 0) throw InvalidArgument("temperature must be >= 0, got " + num(temperature));
    if (top_k < 0) throw InvalidArgument("top_k must be >= 0, got " + std::to_string(top_k));
    if (!(top_p > 0 && top_p <= 1)) throw InvalidArgument("top_p must be in (0, 1], got " + num(top_p));
    if (!(min_p >= 0 && min_p <= 1)) throw InvalidArgument("min_p must be in [0, 1], got " + num(min_p));
    if (!(repeat_penalty > 0)) throw InvalidArgument("repeat_penalty must be > 0, got " + num(repeat_penalty));
    if (repeat_last_n < -1) throw InvalidArgument("repeat_last_n must be >= -1, got " + std::to_string(repeat_last_n));
    finite("frequency_penalty", frequency_penalty);
    finite("presence_penalty", presence_penalty);
    if (!(frequency_penalty >= -2 && frequency_penalty <= 2))
        throw InvalidArgument("frequency_penalty must be in [-2, 2], got " + num(frequency_penalty));
    if (!(presence_penalty >= -2 && presence_penalty <= 2))
        throw InvalidArgument("presence_penalty must be in [-2, 2], got " + num(presence_penalty));
    for (const auto& [id, bias] : logit_bias)
        if (std::isnan(bias)) throw InvalidArgument("logit_bias[" + std::to_string(id) + "] must be a number, got nan");
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab, uint64_t seed)
    : p_(params), n_vocab_(n_vocab), rng_(seed), logits_(n_vocab), seen_(n_vocab, 0) {
    p_.validate();
    for (const auto& [id, bias] : p_.logit_bias)
        if (id < 0 || id >= n_vocab)
            throw InvalidArgument("logit_bias key " + std::to_string(id) + " is not a token id in [0, " +
                                  std::to_string(n_vocab) + ")");
    cand_.reserve(n_vocab);
}

// llama.cpp's formula, as apply_penalties in sampling.py: each distinct token of the window,
// once, seen `count` times: logit > 0 -> logit / penalty, else logit * penalty (in float32,
// the penalty rounded to float32 first, as numpy does with a float32 array and a Python
// float); then logit -= count * frequency + presence, in float64 rounded back to float32.
void Sampler::apply_penalty(const int32_t* history, size_t n_history) {
    if (p_.repeat_last_n == 0 || n_history == 0) return;
    if (p_.repeat_penalty == 1.0 && p_.frequency_penalty == 0.0 && p_.presence_penalty == 0.0) return;
    size_t first = 0;
    if (p_.repeat_last_n > 0 && n_history > static_cast<size_t>(p_.repeat_last_n))
        first = n_history - static_cast<size_t>(p_.repeat_last_n);
    const float penalty = static_cast<float>(p_.repeat_penalty);
    for (size_t i = first; i < n_history; ++i) {
        const int32_t t = history[i];
        if (t >= 0 && t < n_vocab_) ++seen_[t];
    }
    for (size_t i = first; i < n_history; ++i) {
        const int32_t t = history[i];
        if (t < 0 || t >= n_vocab_ || seen_[t] == 0) continue;
        float& l = logits_[t];
        l = l > 0 ? l / penalty : l * penalty;
        if (p_.frequency_penalty != 0.0 || p_.presence_penalty != 0.0)
            l = static_cast<float>(static_cast<double>(l) - seen_[t] * p_.frequency_penalty - p_.presence_penalty);
        seen_[t] = 0;  // once per distinct token; also leaves the scratch clean
    }
}

namespace {
bool better(float la, int32_t ia, float lb, int32_t ib) { return la > lb || (la == lb && ia < ib); }
}  // namespace

void Sampler::sort_candidates(size_t n) {
    auto cmp = [](const Candidate& a, const Candidate& b) { return better(a.logit, a.id, b.logit, b.id); };
    if (n >= cand_.size()) std::sort(cand_.begin(), cand_.end(), cmp);
    else std::partial_sort(cand_.begin(), cand_.begin() + n, cand_.end(), cmp);
}

// The k highest logits (k <= 0 or k >= n: unchanged), sorted (logit descending, ties by id).
// On a whole vocabulary, as largest_indices in sampling.py: the k-th largest of the 64-wide
// block maxima bounds the k-th largest logit from below (at least k logits reach it), so only
// the few logits at or above that bound are ranked.
void Sampler::top_k() {
    const int32_t k = p_.top_k;
    if (k <= 0 || static_cast<size_t>(k) >= cand_.size()) return;
    auto cmp = [](const Candidate& a, const Candidate& b) { return better(a.logit, a.id, b.logit, b.id); };
    std::nth_element(cand_.begin(), cand_.begin() + (k - 1), cand_.end(), cmp);
    cand_.resize(k);
    std::sort(cand_.begin(), cand_.end(), cmp);
}

// The starting candidate set: every token, except that a top-k over a whole vocabulary first
// drops what cannot be among the k largest. As largest_indices in sampling.py: the k-th
// largest of the 64-wide block maxima bounds the k-th largest logit from below (at least k
// logits reach it), so only the logits at or above that bound (and the tail past the last
// whole block) stay candidates; top_k() then ranks those.
void Sampler::collect_candidates() {
    constexpr size_t kBlock = 64;
    const size_t n = static_cast<size_t>(n_vocab_), n_blocks = n / kBlock;
    const int32_t k = p_.top_k;
    cand_.clear();
    if (k <= 0 || static_cast<size_t>(k) >= n || n_blocks < 4 * static_cast<size_t>(k)) {
        cand_.resize(n);
        for (int32_t i = 0; i < n_vocab_; ++i) cand_[i] = {i, logits_[i]};
        return;
    }
    block_max_.resize(n_blocks);
    bool nan = false;  // no NaN here: sample_u has refused them
    for (size_t b = 0; b < n_blocks; ++b) block_max_[b] = max_and_nan(logits_.data() + b * kBlock, kBlock, nan);
    block_kth_.assign(block_max_.begin(), block_max_.end());
    std::nth_element(block_kth_.begin(), block_kth_.begin() + (k - 1), block_kth_.end(), std::greater<float>());
    const float bound = block_kth_[k - 1];
    for (size_t b = 0; b < n_blocks; ++b) {
        if (block_max_[b] < bound) continue;  // nothing in this block reaches the bound
        for (size_t i = b * kBlock; i < (b + 1) * kBlock; ++i)
            if (logits_[i] >= bound) cand_.push_back({static_cast<int32_t>(i), logits_[i]});
    }
    for (size_t i = n_blocks * kBlock; i < n; ++i) cand_.push_back({static_cast<int32_t>(i), logits_[i]});
}

// As sampling.py, only the m most probable are sorted (m = 256, 1024, ...) until their mass
// reaches p: without a top-k before it the set is the whole vocabulary.
void Sampler::top_p() {
    if (p_.top_p >= 1.0 || cand_.empty()) return;
    float fmx = -INFINITY;
    for (const auto& c : cand_) fmx = std::max(fmx, c.logit);
    const double mx = fmx;
    double total = 0;
    for (const auto& c : cand_) total += std::exp(static_cast<double>(c.logit) - mx);
    for (size_t m = std::min<size_t>(cand_.size(), 256);; m = std::min(cand_.size(), m * 4)) {
        sort_candidates(m);
        double cum = 0;
        for (size_t i = 0; i < m; ++i) {
            cum += std::exp(static_cast<double>(cand_[i].logit) - mx);
            if (cum / total >= p_.top_p) {  // first index with cum >= p, inclusive
                cand_.resize(i + 1);
                return;
            }
        }
        if (m == cand_.size()) return;  // rounding: the whole set stays
    }
}

// Keep tokens with probability >= p * the top probability, i.e. logit >= max + log(p). The
// threshold is computed in float32 as numpy does (float32 max + Python float -> float32).
void Sampler::min_p() {
    if (p_.min_p <= 0.0) return;
    float mx = -INFINITY;
    for (const auto& c : cand_) mx = std::max(mx, c.logit);
    const float threshold = mx + static_cast<float>(std::log(p_.min_p));
    size_t n = 0;
    for (const auto& c : cand_)
        if (c.logit >= threshold) cand_[n++] = c;
    if (n == 0) {  // only with NaN logits: keep the single best, like min_keep=1 in Python
        top_k_one();
        return;
    }
    cand_.resize(n);
}

void Sampler::top_k_one() {
    auto best = std::max_element(cand_.begin(), cand_.end(),
                                 [](const Candidate& a, const Candidate& b) { return a.logit < b.logit; });
    const Candidate c = *best;
    cand_.assign(1, c);
}

// softmax(logits / temperature) in float64, then the first index whose cumulative
// probability exceeds u * total (np.searchsorted(..., side="right")).
int32_t Sampler::draw(double u) {
    const double t = p_.temperature;
    double mx = -INFINITY;
    for (const auto& c : cand_) mx = std::max(mx, static_cast<double>(c.logit) / t);
    std::vector<double> cum(cand_.size());
    double acc = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
        acc += std::exp(static_cast<double>(cand_[i].logit) / t - mx);
        cum[i] = acc;
    }
    const double r = u * acc;
    const size_t i = std::upper_bound(cum.begin(), cum.end(), r) - cum.begin();
    return cand_[std::min(i, cand_.size() - 1)].id;
}

int32_t Sampler::sample(const float* logits, const int32_t* history, size_t n_history) {
    if (p_.temperature == 0.0) return sample_u(logits, history, n_history, 0.0);  // greedy draws nothing
    return sample_u(logits, history, n_history, rng_.uniform());
}

int32_t Sampler::sample_u(const float* logits, const int32_t* history, size_t n_history, double u) {
    std::copy(logits, logits + n_vocab_, logits_.begin());
    for (const auto& [id, bias] : p_.logit_bias) logits_[id] += bias;
    apply_penalty(history, n_history);
    bool nan = false;
    float mx = max_and_nan(logits_.data(), logits_.size(), nan);
    if (nan) mx = NAN;  // np.max: NaN wins
    if (!std::isfinite(mx))
        throw InvalidArgument("every token has logit -inf or NaN after logit_bias/logits_processor; "
                              "nothing can be sampled");
    if (p_.temperature == 0.0)  // greedy: what llama.cpp's temp <= 0 reduces to; the first maximum wins
        return static_cast<int32_t>(std::find(logits_.begin(), logits_.end(), mx) - logits_.begin());
    collect_candidates();
    top_k();
    top_p();
    min_p();
    return draw(u);
}

}  // namespace pyllong
