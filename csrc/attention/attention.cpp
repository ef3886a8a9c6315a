#include "attention/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/fp16.h"

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define PYLLONG_ATTN_AVX2 1
#endif

namespace pyllong {

namespace {

// q (n,) f32 . k (n,) f16
inline float dot_f16(const float* q, const uint16_t* k, int64_t n) {
    int64_t i = 0;
    float sum = 0;
#ifdef PYLLONG_ATTN_AVX2
    __m256 acc = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), kv, acc);
    }
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    sum = _mm_cvtss_f32(s);
#endif
    for (; i < n; ++i) sum += q[i] * fp16_to_fp32(k[i]);
    return sum;
}

// acc (n,) += w * v (n,) f16
inline void axpy_f16(float* acc, float w, const uint16_t* v, int64_t n) {
    int64_t i = 0;
#ifdef PYLLONG_ATTN_AVX2
    const __m256 wv = _mm256_set1_ps(w);
    for (; i + 8 <= n; i += 8) {
        const __m256 vv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
        _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(wv, vv, _mm256_loadu_ps(acc + i)));
    }
#endif
    for (; i < n; ++i) acc[i] += w * fp16_to_fp32(v[i]);
}

}  // namespace

void attention(const float* q, const int32_t* q_pos, int64_t n_tok, const KVCache& cache, int64_t layer,
               int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, kv_dim = cache.kv_dim(), group = p.n_head / p.n_head_kv;
    const uint16_t* K = cache.k(layer);  // (n_ctx, kv_dim)
    const uint16_t* V = cache.v(layer);  // (n_ctx, kv_dim)
    const int32_t* k_pos = cache.positions();
    const int64_t n_items = n_tok * p.n_head;
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> scores(static_cast<size_t>(n_kv));  // (n_kv,)
        for (int64_t item = ith; item < n_items; item += nth) {
            const int64_t t = item / p.n_head, h = item % p.n_head, g = h / group;
            const float* qh = q + (t * p.n_head + h) * hd;
            float* o = out + (t * p.n_head + h) * hd;
            const int32_t pq = q_pos[t];
            float mx = -INFINITY;
            for (int64_t j = 0; j < n_kv; ++j) {
                const int32_t pk = k_pos[j];
                const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                scores[j] = visible ? dot_f16(qh, K + j * kv_dim + g * hd, hd) * p.scale : -INFINITY;
                mx = std::max(mx, scores[j]);
            }
            std::fill(o, o + hd, 0.0f);
            if (mx == -INFINITY) continue;  // nothing visible (cannot happen for causal self-attention)
            float sum = 0;
            for (int64_t j = 0; j < n_kv; ++j) {
                scores[j] = scores[j] == -INFINITY ? 0.0f : std::exp(scores[j] - mx);
                sum += scores[j];
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j < n_kv; ++j)
                if (scores[j] != 0.0f) axpy_f16(o, scores[j] * inv, V + j * kv_dim + g * hd, hd);
        }
    });
}

}  // namespace pyllong
