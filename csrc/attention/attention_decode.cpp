#include "attention/attention_decode.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention/kernels.h"
#include "core/fp16.h"

namespace pyllong {

namespace {

// One head's slice of a cache row as f32: out (n,), through the row codecs of kernels.h.
inline void load_row(KVType type, const uint8_t* row, int64_t first, float* out, int64_t n) {
    if (type == KVType::F16) attn::F16Rows::load(attn::F16Rows::at(row, first), out, n);
    else attn::Q8Rows::load(attn::Q8Rows::at(row, first), out, n);
}

inline float dot(const float* a, const float* b, int64_t n) {
    int64_t i = 0;
    float s = 0;
#ifdef PYLLONG_ATTN_AVX2
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    s = attn::hsum(_mm256_add_ps(acc0, acc1));
#endif
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

inline void axpy(float* acc, float w, const float* x, int64_t n) {
    int64_t i = 0;
#ifdef PYLLONG_ATTN_AVX2
    const __m256 wv = _mm256_set1_ps(w);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i), _mm256_loadu_ps(acc + i)));
#endif
    for (; i < n; ++i) acc[i] += w * x[i];
}

}  // namespace

int64_t attention_decode_splits(int64_t n_pairs, int64_t n_kv, int n_threads) {
    // About 4 items per thread, so a thread slowed by another process hands work to the others.
    const int64_t want = (4 * int64_t{n_threads} + n_pairs - 1) / std::max<int64_t>(1, n_pairs);
    return std::clamp<int64_t>(want, 1, std::max<int64_t>(1, n_kv / kMinKeysPerSplit));
}

void attention_decode(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok,
                      const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out,
                      ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int64_t n_pairs = n_tok * p.n_head_kv;
    const int nth = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());
    const int64_t n_split = attention_decode_splits(n_pairs, n_kv, nth);
    const int64_t span = (n_kv + n_split - 1) / n_split;  // keys per item
    const int64_t n_items = n_pairs * n_split;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const KVType type = cache.type();
    // Partial results of each item when the keys are split: per query row of the group,
    // the running max, the sum of exponentials and the unnormalized output (hd).
    std::vector<float> part_m, part_l, part_o;  // (n_items, group), (n_items, group), (n_items, group, hd)
    if (n_split > 1) {
        part_m.resize(static_cast<size_t>(n_items * group));
        part_l.resize(static_cast<size_t>(n_items * group));
        part_o.resize(static_cast<size_t>(n_items * group * hd));
    }
    std::atomic<int64_t> next{0};
    pool.run(nth, [&](int, int) {
        std::vector<float> scores(static_cast<size_t>(group * span));  // (group, span)
        std::vector<float> row(static_cast<size_t>(hd));                // (hd,) one key or value row
        std::vector<float> acc(static_cast<size_t>(group * hd));        // (group, hd)
        std::vector<float> mx(static_cast<size_t>(group)), sum(static_cast<size_t>(group));
        for (int64_t item; (item = next.fetch_add(1, std::memory_order_relaxed)) < n_items;) {
            const int64_t pair = item / n_split, s = item % n_split;
            const int64_t t = pair / p.n_head_kv, g = pair % p.n_head_kv, h0 = g * group;
            const int64_t j0 = s * span, j1 = std::min(n_kv, j0 + span), len = std::max<int64_t>(0, j1 - j0);
            const float* qh = q + (t * p.n_head + h0) * hd;                                  // (group, hd)
            const float* qgh = se.enabled() ? q_group + (t * p.n_head + h0) * hd : nullptr;  // (group, hd)
            const int32_t pq = q_pos[t];
            std::fill(mx.begin(), mx.end(), -INFINITY);
            for (int64_t jj = 0; jj < len; ++jj) {
                const int64_t j = j0 + jj;
                const int32_t pk = k_pos[j];
                const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                if (!visible) {
                    for (int64_t r = 0; r < group; ++r) scores[r * span + jj] = -INFINITY;
                    continue;
                }
                const bool grouped = se.grouped(pq, pk);  // SelfExtend: both sides at group positions
                load_row(type, grouped ? cache.kg_row(layer, j) : cache.k_row(layer, j), g * hd, row.data(), hd);
                const float* qs = grouped ? qgh : qh;
                for (int64_t r = 0; r < group; ++r) {
                    const float sc = dot(qs + r * hd, row.data(), hd) * p.scale;
                    scores[r * span + jj] = sc;
                    mx[r] = std::max(mx[r], sc);
                }
            }
            for (int64_t r = 0; r < group; ++r)
                sum[r] = mx[r] == -INFINITY ? 0.0f : attn::exp_shifted_sum(scores.data() + r * span, len, mx[r]);
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t jj = 0; jj < len; ++jj) {
                bool any = false;
                for (int64_t r = 0; r < group; ++r) any |= mx[r] != -INFINITY && scores[r * span + jj] != 0.0f;
                if (!any) continue;
                load_row(type, cache.v_row(layer, j0 + jj), g * hd, row.data(), hd);
                for (int64_t r = 0; r < group; ++r) {
                    if (mx[r] == -INFINITY) continue;
                    const float w = scores[r * span + jj];
                    if (w != 0.0f) axpy(acc.data() + r * hd, w, row.data(), hd);
                }
            }
            if (n_split == 1) {  // the whole range: normalize into the output directly
                float* o = out + (t * p.n_head + h0) * hd;  // (group, hd)
                for (int64_t r = 0; r < group; ++r) {
                    const float inv = sum[r] > 0 ? 1.0f / sum[r] : 0.0f;  // nothing visible: zeros
                    for (int64_t d = 0; d < hd; ++d) o[r * hd + d] = acc[r * hd + d] * inv;
                }
            } else {
                std::copy(mx.begin(), mx.end(), part_m.begin() + item * group);
                std::copy(sum.begin(), sum.end(), part_l.begin() + item * group);
                std::copy(acc.begin(), acc.end(), part_o.begin() + item * group * hd);
            }
        }
    });
    if (n_split == 1) return;
    // Merge the key ranges of each (token, query head): rescale each range to the common max.
    for (int64_t pair = 0; pair < n_pairs; ++pair) {
        const int64_t t = pair / p.n_head_kv, g = pair % p.n_head_kv;
        for (int64_t r = 0; r < group; ++r) {
            float* o = out + (t * p.n_head + g * group + r) * hd;  // (hd,)
            float m = -INFINITY;
            for (int64_t s = 0; s < n_split; ++s) m = std::max(m, part_m[(pair * n_split + s) * group + r]);
            std::fill(o, o + hd, 0.0f);
            if (m == -INFINITY) continue;  // nothing visible (not for causal self-attention)
            float den = 0;
            for (int64_t s = 0; s < n_split; ++s) {
                const int64_t it = pair * n_split + s;
                const float ms = part_m[it * group + r];
                if (ms == -INFINITY) continue;
                const float c = std::exp(ms - m);
                den += c * part_l[it * group + r];
                axpy(o, c, part_o.data() + (it * group + r) * hd, hd);
            }
            const float inv = 1.0f / den;
            for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
        }
    }
}

}  // namespace pyllong
