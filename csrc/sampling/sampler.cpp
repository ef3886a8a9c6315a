#include "sampling/sampler.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "core/error.h"

namespace pyllong {

namespace {

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
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab, uint64_t seed)
    : p_(params), n_vocab_(n_vocab), rng_(seed), logits_(n_vocab), seen_(n_vocab, 0) {
    p_.validate();
    cand_.reserve(n_vocab);
}

// llama.cpp's formula, as apply_penalties in sampling.py: each distinct token of the window,
// once: logit > 0 -> logit / penalty, else logit * penalty. In float32 with the penalty
// rounded to float32 first — what numpy does with a float32 array and a Python float.
void Sampler::apply_penalty(const int32_t* history, size_t n_history) {
    if (p_.repeat_last_n == 0 || n_history == 0 || p_.repeat_penalty == 1.0) return;
    size_t first = 0;
    if (p_.repeat_last_n > 0 && n_history > static_cast<size_t>(p_.repeat_last_n))
        first = n_history - static_cast<size_t>(p_.repeat_last_n);
    const float penalty = static_cast<float>(p_.repeat_penalty);
    for (size_t i = first; i < n_history; ++i) {
        const int32_t t = history[i];
        if (t < 0 || t >= n_vocab_ || seen_[t]) continue;
        seen_[t] = 1;
        float& l = logits_[t];
        l = l > 0 ? l / penalty : l * penalty;
    }
    for (size_t i = first; i < n_history; ++i) {
        const int32_t t = history[i];
        if (t >= 0 && t < n_vocab_) seen_[t] = 0;
    }
}

// The k highest logits (k <= 0 or k >= n: unchanged). Not sorted, as in Python.
void Sampler::top_k() {
    const int32_t k = p_.top_k;
    if (k <= 0 || static_cast<size_t>(k) >= cand_.size()) return;
    std::nth_element(cand_.begin(), cand_.begin() + (k - 1), cand_.end(),
                     [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; });
    cand_.resize(k);
}

// Nucleus: the smallest most-probable prefix whose probability (float64, normalized over the
// current set) reaches p; at least one token.
void Sampler::top_p() {
    if (p_.top_p >= 1.0) return;
    std::stable_sort(cand_.begin(), cand_.end(), [](const Candidate& a, const Candidate& b) { return a.logit > b.logit; });
    const double mx = cand_.front().logit;
    double total = 0;
    for (const auto& c : cand_) total += std::exp(static_cast<double>(c.logit) - mx);
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
        cum += std::exp(static_cast<double>(cand_[i].logit) - mx);
        if (cum / total >= p_.top_p) {  // first index with cum >= p, inclusive
            keep = i + 1;
            break;
        }
    }
    cand_.resize(std::max<size_t>(keep, 1));
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
int32_t Sampler::draw() {
    const double t = p_.temperature;
    double mx = -INFINITY;
    for (const auto& c : cand_) mx = std::max(mx, static_cast<double>(c.logit) / t);
    std::vector<double> cum(cand_.size());
    double acc = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
        acc += std::exp(static_cast<double>(cand_[i].logit) / t - mx);
        cum[i] = acc;
    }
    const double r = rng_.uniform() * acc;
    const size_t i = std::upper_bound(cum.begin(), cum.end(), r) - cum.begin();
    return cand_[std::min(i, cand_.size() - 1)].id;
}

int32_t Sampler::sample(const float* logits, const int32_t* history, size_t n_history) {
    std::copy(logits, logits + n_vocab_, logits_.begin());
    apply_penalty(history, n_history);
    float mx = -INFINITY;
    int32_t best = 0;
    for (int32_t i = 0; i < n_vocab_; ++i)
        if (logits_[i] > mx) mx = logits_[i], best = i;  // strict: the first maximum wins
    if (!std::isfinite(mx)) throw InvalidArgument("every token has logit -inf or NaN; nothing can be sampled");
    if (p_.temperature == 0.0) return best;  // greedy: what llama.cpp's temp <= 0 reduces to
    cand_.clear();
    for (int32_t i = 0; i < n_vocab_; ++i) cand_.push_back({i, logits_[i]});
    top_k();
    top_p();
    min_p();
    return draw();
}

}  // namespace pyllong
