#include "attention/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "core/fp16.h"

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define PYLLONG_ATTN_AVX2 1
#endif

namespace pyllong {

namespace {

#ifdef PYLLONG_ATTN_AVX2
inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_hadd_ps(s, s);
    s = _mm_hadd_ps(s, s);
    return _mm_cvtss_f32(s);
}
#endif

// How a cache row is read: the byte address of element `first` (a head's slice), the dot
// product of an f32 query with n elements, and acc += w * row. One codec per KVType;
// the attention loop below is written once over them.
struct F16Rows {
    static const uint8_t* at(const uint8_t* row, int64_t first) { return row + first * 2; }

    static float dot(const float* q, const uint8_t* p, int64_t n) {
        const auto* k = reinterpret_cast<const uint16_t*>(p);
        int64_t i = 0;
        float sum = 0;
#ifdef PYLLONG_ATTN_AVX2
        __m256 acc = _mm256_setzero_ps();
        for (; i + 8 <= n; i += 8)
            acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i),
                                  _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i))), acc);
        sum = hsum(acc);
#endif
        for (; i < n; ++i) sum += q[i] * fp16_to_fp32(k[i]);
        return sum;
    }

    static void axpy(float* acc, float w, const uint8_t* p, int64_t n) {
        const auto* v = reinterpret_cast<const uint16_t*>(p);
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
};

// q8_0: blocks of {f16 d; int8 q[32]} (34 bytes); heads start on block boundaries
// (head_dim % 32 == 0 is checked when the context is made).
struct Q8Rows {
    static constexpr int64_t kBlock = 32, kBytes = 34;
    static const uint8_t* at(const uint8_t* row, int64_t first) { return row + first / kBlock * kBytes; }

    static float block_scale(const uint8_t* b) {
        uint16_t h;
        std::memcpy(&h, b, 2);
        return fp16_to_fp32(h);
    }

    static float dot(const float* q, const uint8_t* p, int64_t n) {
        float sum = 0;
        for (int64_t b = 0; b < n / kBlock; ++b, p += kBytes, q += kBlock) {
            const auto* x = reinterpret_cast<const int8_t*>(p + 2);
            float s = 0;
#ifdef PYLLONG_ATTN_AVX2
            __m256 acc = _mm256_setzero_ps();
            for (int i = 0; i < kBlock; i += 8) {
                const __m256 xv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i))));
                acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + i), xv, acc);
            }
            s = hsum(acc);
#else
            for (int i = 0; i < kBlock; ++i) s += q[i] * x[i];
#endif
            sum += block_scale(p) * s;
        }
        return sum;
    }

    static void axpy(float* acc, float w, const uint8_t* p, int64_t n) {
        for (int64_t b = 0; b < n / kBlock; ++b, p += kBytes, acc += kBlock) {
            const float wd = w * block_scale(p);
            const auto* x = reinterpret_cast<const int8_t*>(p + 2);
#ifdef PYLLONG_ATTN_AVX2
            const __m256 wv = _mm256_set1_ps(wd);
            for (int i = 0; i < kBlock; i += 8) {
                const __m256 xv = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x + i))));
                _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(wv, xv, _mm256_loadu_ps(acc + i)));
            }
#else
            for (int i = 0; i < kBlock; ++i) acc[i] += wd * x[i];
#endif
        }
    }
};

// Work items are (token, kv head): the `group` query heads that share a kv head are
// scored together, so each cached key and value row is read once per token, not once
// per query head (GQA decode at depth is bound by reading the cache).
template <class Rows>
void attend(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const KVCache& cache,
            int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const int64_t n_items = n_tok * p.n_head_kv;
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> scores(static_cast<size_t>(group * n_kv));  // (group, n_kv)
        std::vector<float> mx(static_cast<size_t>(group)), inv(static_cast<size_t>(group));
        for (int64_t item = ith; item < n_items; item += nth) {
            const int64_t t = item / p.n_head_kv, g = item % p.n_head_kv;
            const int64_t h0 = g * group;  // first query head of this kv head
            const float* qh = q + (t * p.n_head + h0) * hd;                                // (group, hd)
            const float* qgh = se.enabled() ? q_group + (t * p.n_head + h0) * hd : nullptr;  // (group, hd)
            float* o = out + (t * p.n_head + h0) * hd;                                     // (group, hd)
            const int32_t pq = q_pos[t];
            std::fill(mx.begin(), mx.end(), -INFINITY);
            for (int64_t j = 0; j < n_kv; ++j) {
                const int32_t pk = k_pos[j];
                const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                if (!visible) {
                    for (int64_t r = 0; r < group; ++r) scores[r * n_kv + j] = -INFINITY;
                    continue;
                }
                // SelfExtend: distant pairs use both sides at grouped positions.
                const bool grouped = se.grouped(pq, pk);
                const uint8_t* krow = Rows::at(grouped ? cache.kg_row(layer, j) : cache.k_row(layer, j), g * hd);
                const float* qs = grouped ? qgh : qh;
                for (int64_t r = 0; r < group; ++r) {
                    const float sc = Rows::dot(qs + r * hd, krow, hd) * p.scale;
                    scores[r * n_kv + j] = sc;
                    mx[r] = std::max(mx[r], sc);
                }
            }
            std::fill(o, o + group * hd, 0.0f);
            for (int64_t r = 0; r < group; ++r) {
                if (mx[r] == -INFINITY) { inv[r] = 0; continue; }  // nothing visible (not for causal self-attention)
                float sum = 0;
                float* sr = scores.data() + r * n_kv;
                for (int64_t j = 0; j < n_kv; ++j) {
                    sr[j] = sr[j] == -INFINITY ? 0.0f : std::exp(sr[j] - mx[r]);
                    sum += sr[j];
                }
                inv[r] = 1.0f / sum;
            }
            for (int64_t j = 0; j < n_kv; ++j) {
                const uint8_t* vrow = Rows::at(cache.v_row(layer, j), g * hd);
                for (int64_t r = 0; r < group; ++r) {
                    const float w = scores[r * n_kv + j];
                    if (w != 0.0f) Rows::axpy(o + r * hd, w * inv[r], vrow, hd);
                }
            }
        }
    });
}

}  // namespace

void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const KVCache& cache,
               int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads) {
    if (cache.type() == KVType::F16)
        attend<F16Rows>(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else
        attend<Q8Rows>(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
}

void attention_step(float* q, float* k, const float* v, const int32_t* pos, int64_t n, KVCache& cache,
                    int64_t layer, int64_t cell, const RopeParams& rp, const AttentionParams& p, float* scratch_q,
                    float* scratch_k, float* out, ThreadPool& pool, int n_threads) {
    const int64_t q_dim = p.n_head * p.head_dim, kv_dim = p.n_head_kv * p.head_dim;
    const SelfExtend& se = p.self_extend;
    if (se.enabled()) {
        // Grouped rotations first, from the unrotated q and k.
        std::vector<int32_t> qpos(static_cast<size_t>(n)), kpos(static_cast<size_t>(n));  // (n,)
        for (int64_t t = 0; t < n; ++t) {
            qpos[t] = se.query_pos(pos[t]);
            kpos[t] = se.key_pos(pos[t]);
        }
        std::memcpy(scratch_q, q, n * q_dim * sizeof(float));
        std::memcpy(scratch_k, k, n * kv_dim * sizeof(float));
        rope(scratch_q, qpos.data(), n, p.n_head, p.head_dim, rp);
        rope(scratch_k, kpos.data(), n, p.n_head_kv, p.head_dim, rp);
    }
    rope(q, pos, n, p.n_head, p.head_dim, rp);
    rope(k, pos, n, p.n_head_kv, p.head_dim, rp);
    cache.store(layer, cell, k, v, n, se.enabled() ? scratch_k : nullptr);
    attention(q, se.enabled() ? scratch_q : nullptr, pos, n, cache, layer, cell + n, p, out, pool, n_threads);
}

}  // namespace pyllong
