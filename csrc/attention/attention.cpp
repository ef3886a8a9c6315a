#include "attention/attention.h"
#include "attention/attention_decode.h"
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

// x[i] = exp(x[i] - shift), with -inf entries (masked pairs) giving exactly 0; returns the
// sum. Softmax spends most of its time here at long context, so AVX2 evaluates eight at
// once with Cephes' expf polynomial (relative error ~1e-7).
float exp_shifted_sum(float* x, int64_t n, float shift) {
    int64_t i = 0;
    float sum = 0;
#ifdef PYLLONG_ATTN_AVX2
    const __m256 vshift = _mm256_set1_ps(shift), ninf = _mm256_set1_ps(-INFINITY);
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), half = _mm256_set1_ps(0.5f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 vsum = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 raw = _mm256_loadu_ps(x + i);
        const __m256 masked = _mm256_cmp_ps(raw, ninf, _CMP_EQ_OQ);
        __m256 v = _mm256_max_ps(_mm256_min_ps(_mm256_sub_ps(raw, vshift), hi), lo);
        __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(v, log2e, half));
        v = _mm256_fnmadd_ps(fx, c1, v);
        v = _mm256_fnmadd_ps(fx, c2, v);
        __m256 y = _mm256_set1_ps(1.9875691500e-4f);
        y = _mm256_fmadd_ps(y, v, _mm256_set1_ps(1.3981999507e-3f));
        y = _mm256_fmadd_ps(y, v, _mm256_set1_ps(8.3334519073e-3f));
        y = _mm256_fmadd_ps(y, v, _mm256_set1_ps(4.1665795894e-2f));
        y = _mm256_fmadd_ps(y, v, _mm256_set1_ps(1.6666665459e-1f));
        y = _mm256_fmadd_ps(y, v, _mm256_set1_ps(5.0000001201e-1f));
        y = _mm256_fmadd_ps(y, _mm256_mul_ps(v, v), _mm256_add_ps(v, one));
        const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
        y = _mm256_mul_ps(y, _mm256_castsi256_ps(pow2n));
        y = _mm256_andnot_ps(masked, y);
        _mm256_storeu_ps(x + i, y);
        vsum = _mm256_add_ps(vsum, y);
    }
    sum = hsum(vsum);
#endif
    for (; i < n; ++i) {
        x[i] = x[i] == -INFINITY ? 0.0f : std::exp(x[i] - shift);
        sum += x[i];
    }
    return sum;
}

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

    static void load(const uint8_t* p, float* out, int64_t n) {
        const auto* v = reinterpret_cast<const uint16_t*>(p);
        int64_t i = 0;
#ifdef PYLLONG_ATTN_AVX2
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i))));
#endif
        for (; i < n; ++i) out[i] = fp16_to_fp32(v[i]);
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

    static void load(const uint8_t* p, float* out, int64_t n) {
        for (int64_t b = 0; b < n / kBlock; ++b, p += kBytes, out += kBlock) {
            const float d = block_scale(p);
            const auto* x = reinterpret_cast<const int8_t*>(p + 2);
            for (int i = 0; i < kBlock; ++i) out[i] = d * x[i];
        }
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
                inv[r] = 1.0f / exp_shifted_sum(scores.data() + r * n_kv, n_kv, mx[r]);
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


// The two inner products of the tiled loop, for one query row against one tile:
//   sc[jj] = q . K[jj]   with K transposed, (hd, kTileKeys)
//   a[:]  += sum_jj w[jj] * V[jj]   with V (kTileKeys, hd)
// AVX2 keeps the 64 scores (8 registers) and the row's accumulator (hd/8 registers, hd <=
// 128) in registers; other shapes and ISAs take the plain loops.
inline void tile_scores(const float* qv, const float* kt, int64_t hd, int64_t tile, float* sc) {
#ifdef PYLLONG_ATTN_AVX2
    if (tile == 64) {
        __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
        for (int64_t d = 0; d < hd; ++d) {
            const __m256 qd = _mm256_broadcast_ss(qv + d);
            const float* k = kt + d * 64;
            s0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 0), s0);
            s1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 8), s1);
            s2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 16), s2);
            s3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 24), s3);
            s4 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 32), s4);
            s5 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 40), s5);
            s6 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 48), s6);
            s7 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 56), s7);
        }
        _mm256_storeu_ps(sc + 0, s0); _mm256_storeu_ps(sc + 8, s1); _mm256_storeu_ps(sc + 16, s2);
        _mm256_storeu_ps(sc + 24, s3); _mm256_storeu_ps(sc + 32, s4); _mm256_storeu_ps(sc + 40, s5);
        _mm256_storeu_ps(sc + 48, s6); _mm256_storeu_ps(sc + 56, s7);
        return;
    }
#endif
    std::fill(sc, sc + tile, 0.0f);
    for (int64_t d = 0; d < hd; ++d) {
        const float qd = qv[d];
        const float* k = kt + d * tile;
        for (int64_t jj = 0; jj < tile; ++jj) sc[jj] += qd * k[jj];
    }
}

#ifdef PYLLONG_ATTN_AVX2
template <int HD8>
void tile_accumulate_avx2(float* a, const float* w, const float* vt, int64_t nk) {
    __m256 acc[HD8];
    for (int i = 0; i < HD8; ++i) acc[i] = _mm256_loadu_ps(a + 8 * i);
    for (int64_t jj = 0; jj < nk; ++jj) {
        if (w[jj] == 0.0f) continue;
        const __m256 wv = _mm256_set1_ps(w[jj]);
        const float* v = vt + jj * HD8 * 8;
        for (int i = 0; i < HD8; ++i) acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(v + 8 * i), acc[i]);
    }
    for (int i = 0; i < HD8; ++i) _mm256_storeu_ps(a + 8 * i, acc[i]);
}
#endif

inline void tile_accumulate(float* a, const float* w, const float* vt, int64_t hd, int64_t nk) {
#ifdef PYLLONG_ATTN_AVX2
    switch (hd) {
        case 64: return tile_accumulate_avx2<8>(a, w, vt, nk);
        case 128: return tile_accumulate_avx2<16>(a, w, vt, nk);
        case 32: return tile_accumulate_avx2<4>(a, w, vt, nk);
        case 96: return tile_accumulate_avx2<12>(a, w, vt, nk);
        case 80: return tile_accumulate_avx2<10>(a, w, vt, nk);
        default: break;
    }
#endif
    for (int64_t jj = 0; jj < nk; ++jj) {
        if (w[jj] == 0.0f) continue;
        const float* v = vt + jj * hd;
        for (int64_t d = 0; d < hd; ++d) a[d] += w[jj] * v[d];
    }
}

// Prefill: many query rows per kv head. Keys and values are converted to f32 once per
// tile of kTileKeys cells and shared by a block of kRowBlock query rows; scores use the
// transposed key tile (one broadcast-FMA per dimension for all keys of the tile, no
// horizontal sums) and a running (online) softmax per row, as flash attention does.
// Same mask and SelfExtend policy as the per-row loop above.
constexpr int64_t kTileKeys = 64, kRowBlock = 32;

template <class Rows>
void attend_tiled(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const KVCache& cache,
                  int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool,
                  int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int64_t n_rows = n_tok * group, n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> kt(static_cast<size_t>(hd * kTileKeys));   // (hd, kTileKeys) keys, transposed
        std::vector<float> kgt(se.enabled() ? kt.size() : 0);          // (hd, kTileKeys) grouped keys
        std::vector<float> vt(static_cast<size_t>(kTileKeys * hd));   // (kTileKeys, hd) values
        std::vector<float> row(static_cast<size_t>(hd));              // (hd,) one converted row
        std::vector<float> acc(static_cast<size_t>(kRowBlock * hd));  // (kRowBlock, hd) running sums
        float m[kRowBlock], l[kRowBlock], sc[kTileKeys], sg[kTileKeys];
        for (int64_t item = ith; item < p.n_head_kv * n_blocks; item += nth) {
            const int64_t g = item / n_blocks, r0 = (item % n_blocks) * kRowBlock;
            const int64_t nr = std::min(kRowBlock, n_rows - r0);
            int32_t pmax = INT32_MIN;
            for (int64_t r = 0; r < nr; ++r) pmax = std::max(pmax, q_pos[(r0 + r) / group]);
            std::fill(m, m + kRowBlock, -INFINITY);
            std::fill(l, l + kRowBlock, 0.0f);
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t j0 = 0; j0 < n_kv; j0 += kTileKeys) {
                const int64_t nk = std::min(kTileKeys, n_kv - j0);
                int32_t pk_min = INT32_MAX;
                for (int64_t jj = 0; jj < nk; ++jj) pk_min = std::min(pk_min, k_pos[j0 + jj]);
                if (pk_min > pmax) continue;  // the whole tile is in every row's future
                const bool any_grouped = se.enabled() && se.grouped(pmax, pk_min);
                for (int64_t jj = 0; jj < nk; ++jj) {
                    Rows::load(Rows::at(cache.k_row(layer, j0 + jj), g * hd), row.data(), hd);
                    for (int64_t d = 0; d < hd; ++d) kt[d * kTileKeys + jj] = row[d];
                    if (any_grouped) {
                        Rows::load(Rows::at(cache.kg_row(layer, j0 + jj), g * hd), row.data(), hd);
                        for (int64_t d = 0; d < hd; ++d) kgt[d * kTileKeys + jj] = row[d];
                    }
                    Rows::load(Rows::at(cache.v_row(layer, j0 + jj), g * hd), vt.data() + jj * hd, hd);
                }
                for (int64_t r = 0; r < nr; ++r) {
                    const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                    const int32_t pq = q_pos[t];
                    const float* qv = q + (t * p.n_head + h) * hd;
                    tile_scores(qv, kt.data(), hd, kTileKeys, sc);
                    const bool row_grouped = se.enabled() && se.grouped(pq, pk_min);
                    if (row_grouped) {
                        tile_scores(q_group + (t * p.n_head + h) * hd, kgt.data(), hd, kTileKeys, sg);
                    }
                    float tmax = -INFINITY;
                    for (int64_t jj = 0; jj < nk; ++jj) {
                        const int32_t pk = k_pos[j0 + jj];
                        const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                        const float s = row_grouped && se.grouped(pq, pk) ? sg[jj] : sc[jj];
                        sc[jj] = visible ? s * p.scale : -INFINITY;
                        tmax = std::max(tmax, sc[jj]);
                    }
                    if (tmax == -INFINITY) continue;
                    const float m_new = std::max(m[r], tmax);
                    const float c = std::exp(m[r] - m_new);  // rescales what was summed so far
                    float* a = acc.data() + r * hd;
                    if (c != 1.0f) {
                        l[r] *= c;
                        for (int64_t d = 0; d < hd; ++d) a[d] *= c;
                    }
                    m[r] = m_new;
                    l[r] += exp_shifted_sum(sc, nk, m_new);
                    tile_accumulate(a, sc, vt.data(), hd, nk);
                }
            }
            for (int64_t r = 0; r < nr; ++r) {
                const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                float* o = out + (t * p.n_head + h) * hd;
                const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
                for (int64_t d = 0; d < hd; ++d) o[d] = acc[r * hd + d] * inv;
            }
        }
    });
}

}  // namespace

void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const KVCache& cache,
               int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads) {
    // Few query rows per kv head (decode): read each cached row once, per row. Many rows
    // (prefill): convert tiles once and share them across a block of rows.
    const bool tiled = n_tok * (p.n_head / p.n_head_kv) >= 16;
    const bool f16 = cache.type() == KVType::F16;
    if (tiled && f16) attend_tiled<F16Rows>(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else if (tiled) attend_tiled<Q8Rows>(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    // Decode over a long cache: split the keys too, so every thread has an equal share.
    else if (n_kv >= 2 * kMinKeysPerSplit) attention_decode(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else if (f16) attend<F16Rows>(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else attend<Q8Rows>(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
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
