#include "memory/ivf_index.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/fp16.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace pyllong {

namespace {

void to_f32(const uint16_t* h, float* out, int64_t n) {
    for (int64_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(h[i]);
}

// Training and assignment are n * n_list dot products: eight lanes at once where AVX2 is.
float dot(const float* a, const float* b, int64_t n) {
    int64_t i = 0;
    float s = 0;
#if defined(__AVX2__) && defined(__FMA__)
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_hadd_ps(h, h);
    h = _mm_hadd_ps(h, h);
    s = _mm_cvtss_f32(h);
#endif
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

}  // namespace

int64_t IvfIndex::nearest(const float* x) const {
    // argmin |x - c|^2 = argmax x.c - |c|^2/2
    int64_t best = 0;
    float best_s = -INFINITY;
    for (int64_t c = 0; c < n_list_; ++c) {
        const float s = dot(x, centroids_.data() + c * hd_, hd_) - half_norm2_[c];
        if (s > best_s) best_s = s, best = c;
    }
    return best;
}

// Lloyd's k-means on an evenly strided sample of at most 32 rows per list (n_list ~ sqrt(n),
// as IVF indexes usually size it), 8 iterations; then every row joins its nearest list.
void IvfIndex::train(const uint16_t* keys, int64_t n, int64_t id0) {
    n_list_ = std::clamp<int64_t>(static_cast<int64_t>(std::sqrt(static_cast<double>(n))), 1, 4096);
    const int64_t n_sample = std::min<int64_t>(n, 32 * n_list_);
    std::vector<float> sample(static_cast<size_t>(n_sample * hd_));  // (n_sample, hd)
    for (int64_t i = 0; i < n_sample; ++i) to_f32(keys + (i * n / n_sample) * hd_, sample.data() + i * hd_, hd_);
    centroids_.assign(static_cast<size_t>(n_list_ * hd_), 0.0f);
    for (int64_t c = 0; c < n_list_; ++c)  // initial centroids: sample rows spread over the memory
        std::copy_n(sample.data() + (c * n_sample / n_list_) * hd_, hd_, centroids_.data() + c * hd_);
    half_norm2_.assign(static_cast<size_t>(n_list_), 0.0f);
    std::vector<int64_t> assign(static_cast<size_t>(n_sample)), count(static_cast<size_t>(n_list_));
    for (int it = 0; it < 8; ++it) {
        for (int64_t c = 0; c < n_list_; ++c) {
            const float* cc = centroids_.data() + c * hd_;
            half_norm2_[c] = 0.5f * dot(cc, cc, hd_);
        }
        for (int64_t i = 0; i < n_sample; ++i) assign[i] = nearest(sample.data() + i * hd_);
        std::vector<float> sum(centroids_.size(), 0.0f);  // (n_list, hd)
        std::fill(count.begin(), count.end(), 0);
        for (int64_t i = 0; i < n_sample; ++i) {
            ++count[assign[i]];
            for (int64_t d = 0; d < hd_; ++d) sum[assign[i] * hd_ + d] += sample[i * hd_ + d];
        }
        for (int64_t c = 0; c < n_list_; ++c)  // an empty list keeps its centroid
            if (count[c] > 0)
                for (int64_t d = 0; d < hd_; ++d) centroids_[c * hd_ + d] = sum[c * hd_ + d] / count[c];
    }
    for (int64_t c = 0; c < n_list_; ++c) {
        const float* cc = centroids_.data() + c * hd_;
        half_norm2_[c] = 0.5f * dot(cc, cc, hd_);
    }
    lists_.assign(static_cast<size_t>(n_list_), {});
    trained_at_ = n;
    add(keys, n, id0);
}

void IvfIndex::add(const uint16_t* keys, int64_t n, int64_t id0) {
    std::vector<float> row(static_cast<size_t>(hd_));  // (hd,)
    for (int64_t i = 0; i < n; ++i) {
        to_f32(keys + i * hd_, row.data(), hd_);
        lists_[nearest(row.data())].push_back(id0 + i);
    }
}

void IvfIndex::forget_below(int64_t id) {
    for (auto& l : lists_) l.erase(l.begin(), std::lower_bound(l.begin(), l.end(), id));
}

void IvfIndex::forget_from(int64_t id) {
    for (auto& l : lists_) l.erase(std::lower_bound(l.begin(), l.end(), id), l.end());
}

void IvfIndex::probe(const float* q, int64_t n_probe, std::vector<int64_t>& out) const {
    std::vector<float> s(static_cast<size_t>(n_list_));  // (n_list,) q . centroid
    for (int64_t c = 0; c < n_list_; ++c) s[c] = dot(q, centroids_.data() + c * hd_, hd_);
    std::vector<int64_t> order(static_cast<size_t>(n_list_));
    std::iota(order.begin(), order.end(), 0);
    const int64_t np = std::min(n_probe, n_list_);
    std::partial_sort(order.begin(), order.begin() + np, order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
    for (int64_t i = 0; i < np; ++i) out.insert(out.end(), lists_[order[i]].begin(), lists_[order[i]].end());
}

}  // namespace pyllong
