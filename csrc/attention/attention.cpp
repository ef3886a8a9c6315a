#include "attention/attention.h"

#include <algorithm>
#include <functional>
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

// Online softmax step (as flash attention): folds scores sc (n,), already scaled, -inf where
// masked, into a query row's running max m, sum l and unnormalized output acc (hd,). Leaves in
// sc the weights exp(sc - m) with which the caller adds the value rows to acc. Returns false
// (and changes nothing) when no score is visible.
inline bool online_softmax_step(float* sc, int64_t n, float& m, float& l, float* acc, int64_t hd) {
    float tmax = -INFINITY;
    for (int64_t j = 0; j < n; ++j) tmax = std::max(tmax, sc[j]);
    if (tmax == -INFINITY) return false;
    const float m_new = std::max(m, tmax);
    const float c = std::exp(m - m_new);  // rescales what was summed so far (0 when nothing was)
    if (c != 1.0f) {
        l *= c;
        for (int64_t d = 0; d < hd; ++d) acc[d] *= c;
    }
    m = m_new;
    l += exp_shifted_sum(sc, n, m_new);
    return true;
}

// The kNN memory policy. A memory layer's queries attend to their local window (causal, with
// RoPE at local positions) and to the memory's unrotated keys (no mask), in ONE softmax: the
// loops below fold the memory part into each row's running (m, l, acc), which merges the two
// parts exactly by log-sum-exp. fot: every memory key; knn: each row's top-k keys by q.k.
struct MemoryPolicy {
    const KVMemory* mem = nullptr;
    const float* q = nullptr;  // (n_tok, n_head * hd) queries for memory scores (see MemoryParams::distance)
    int64_t slot = -1;  // this layer's memory slot, -1 = not a memory layer
    bool knn = false;
    int64_t k = 0, n_probe = 0;

    int64_t n() const { return slot >= 0 ? mem->size(slot) : 0; }
    MemoryHead head(int64_t g) const { return mem->head(slot, g); }
};

MemoryPolicy memory_policy(const AttentionParams& p, int64_t layer, const float* q, const float* q_mem) {
    MemoryPolicy mp;
    if (!p.memory) return mp;
    mp.mem = p.memory;
    mp.q = q_mem ? q_mem : q;
    mp.slot = p.memory->slot(layer);
    mp.knn = p.memory->params().mode == MemoryMode::Knn;
    mp.k = p.memory->params().k;
    mp.n_probe = p.memory->params().n_probe;
    return mp;
}

inline const uint8_t* f16_row(const uint16_t* base, int64_t j, int64_t hd) {
    return reinterpret_cast<const uint8_t*>(base + j * hd);
}

// Moves the k best of nc candidates (score, memory row) to the front, O(nc); ties go to the
// older row. Returns min(k, nc).
int64_t select_top_k(std::vector<std::pair<float, int32_t>>& cand, int64_t nc, int64_t k) {
    const int64_t kk = std::min(k, nc);
    auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    if (kk > 0 && kk < nc) std::nth_element(cand.begin(), cand.begin() + (kk - 1), cand.begin() + nc, better);
    return kk;
}

// The k best of n scores s (n,) as (score, row + row0) in cand, by the same rule as
// select_top_k, without building n pairs: nth_element on a float copy (tmp) finds the k-th
// score, then one pass keeps what beats it and the oldest of its ties.
void top_k_of_scores(const float* s, int64_t n, int64_t k, int32_t row0, std::vector<float>& tmp,
                     std::vector<std::pair<float, int32_t>>& cand) {
    const int64_t kk = std::min(k, n);
    cand.clear();
    if (kk == 0) return;
    tmp.assign(s, s + n);
    std::nth_element(tmp.begin(), tmp.begin() + (kk - 1), tmp.end(), std::greater<float>());
    const float thr = tmp[kk - 1];
    int64_t ties = kk;  // rows scoring exactly thr that fit
    for (int64_t j = 0; j < n; ++j) ties -= s[j] > thr;
    for (int64_t j = 0; j < n; ++j)
        if (s[j] > thr || (s[j] == thr && ties-- > 0)) cand.emplace_back(s[j], static_cast<int32_t>(row0 + j));
}

// knn: folds the k best of nc candidate memory rows into one query row's running softmax.
void fold_top_k(std::vector<std::pair<float, int32_t>>& cand, int64_t nc, int64_t k, const MemoryHead& mh, int64_t hd,
                float& m, float& l, float* acc) {
    const int64_t kk = select_top_k(cand, nc, k);
    float w[256];  // (256,) scores, then weights: several passes merge exactly, as tiles do
    for (int64_t i0 = 0; i0 < kk; i0 += 256) {
        const int64_t nb = std::min<int64_t>(256, kk - i0);
        for (int64_t i = 0; i < nb; ++i) w[i] = cand[i0 + i].first;
        if (!online_softmax_step(w, nb, m, l, acc, hd)) continue;
        for (int64_t i = 0; i < nb; ++i)
            if (w[i] != 0.0f) F16Rows::axpy(acc, w[i], f16_row(mh.values, cand[i0 + i].second, hd), hd);
    }
}

// Memory attention for `group` query rows q (group, hd) that share KV head memory `mh`.
// fot: one key scan for all rows, scores (group, n) by an exact SIMD dot product over f16
// keys, all folded in. knn: each row's top-k among its candidates: every row (exact scan),
// or with a trained IVF index the rows of its n_probe nearest lists. ms (group * n) and
// cand (n) are the caller's scratch.
void fold_memory_rows(const float* q, int64_t group, const MemoryHead& mh, const MemoryPolicy& mp, int64_t hd,
                      float scale, float* m, float* l, float* acc, std::vector<float>& ms,
                      std::vector<std::pair<float, int32_t>>& cand) {
    const int64_t n = mh.n;
    const bool ivf = mp.knn && mh.index && mh.index->trained();
    if (ivf) {
        std::vector<int64_t> probed;  // absolute ids of the probed lists' rows
        for (int64_t r = 0; r < group; ++r) {
            probed.clear();
            mh.index->probe(q + r * hd, mp.n_probe, probed);
            cand.resize(probed.size());
            for (size_t i = 0; i < probed.size(); ++i) {
                const int32_t j = static_cast<int32_t>(probed[i] - mh.base);
                cand[i] = {F16Rows::dot(q + r * hd, f16_row(mh.keys, j, hd), hd) * scale, j};
            }
            fold_top_k(cand, static_cast<int64_t>(cand.size()), mp.k, mh, hd, m[r], l[r], acc + r * hd);
        }
        return;
    }
    ms.resize(static_cast<size_t>(group * n));  // (group, n) scaled scores, then weights
    for (int64_t j = 0; j < n; ++j) {
        const uint8_t* krow = f16_row(mh.keys, j, hd);
        for (int64_t r = 0; r < group; ++r) ms[r * n + j] = F16Rows::dot(q + r * hd, krow, hd) * scale;
    }
    if (mp.knn) {
        std::vector<float> tmp;  // (n,)
        for (int64_t r = 0; r < group; ++r) {
            top_k_of_scores(ms.data() + r * n, n, mp.k, 0, tmp, cand);
            fold_top_k(cand, static_cast<int64_t>(cand.size()), mp.k, mh, hd, m[r], l[r], acc + r * hd);
        }
        return;
    }
    bool any = false;
    for (int64_t r = 0; r < group; ++r) any |= online_softmax_step(ms.data() + r * n, n, m[r], l[r], acc + r * hd, hd);
    if (!any) return;
    for (int64_t j = 0; j < n; ++j) {
        const uint8_t* vrow = f16_row(mh.values, j, hd);
        for (int64_t r = 0; r < group; ++r)
            if (ms[r * n + j] != 0.0f) F16Rows::axpy(acc + r * hd, ms[r * n + j], vrow, hd);
    }
}

// Decode over a large memory has few (token, kv head) items, fewer than threads: the memory
// is then split into blocks scanned in parallel (as flash-decoding splits the keys), and each
// row merges its blocks afterwards: fot by their partial softmax states (log-sum-exp), knn by
// a top-k of the blocks' top-k candidates (which contain the global top-k). IVF is not split.
constexpr int64_t kMemoryBlockMin = 1024;

int64_t memory_split(const MemoryPolicy& mp, int64_t n_items, int n_threads) {
    const int64_t n = mp.n();
    if (n == 0 || n_items >= n_threads || (mp.knn && mp.mem->params().ivf)) return 1;
    return std::max<int64_t>(1, std::min<int64_t>((2 * n_threads + n_items - 1) / n_items, n / kMemoryBlockMin));
}

// rows_m, rows_l (n_tok * n_head,): the local part's running max and sum; out: the local
// part's unnormalized outputs (n_tok, n_head * hd), normalized here after the merge.
void fold_memory_split(int64_t n_tok, const AttentionParams& p, const MemoryPolicy& mp,
                       int64_t n_split, std::vector<float>& rows_m, std::vector<float>& rows_l, float* out,
                       ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, n = mp.n(), blk = (n + n_split - 1) / n_split;
    const int64_t n_rows = n_tok * p.n_head, kk = std::min(mp.k, blk);
    // Per (row, block): fot a partial state (m, l, acc); knn its top-k candidates.
    std::vector<float> part_m(static_cast<size_t>(n_rows * n_split), -INFINITY), part_l(part_m.size(), 0.0f);
    std::vector<float> part_acc(mp.knn ? 0 : static_cast<size_t>(n_rows * n_split * hd), 0.0f);  // (rows, split, hd)
    std::vector<std::pair<float, int32_t>> part_cand(mp.knn ? static_cast<size_t>(n_rows * n_split * kk) : 0,
                                                     {-INFINITY, 0});  // (rows, split, kk)
    const int64_t n_items = n_tok * p.n_head_kv * n_split;
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> ms, tmp, m(static_cast<size_t>(group)), l(static_cast<size_t>(group));
        std::vector<float> acc(static_cast<size_t>(group * hd));
        std::vector<std::pair<float, int32_t>> cand;
        for (int64_t item = ith; item < n_items; item += nth) {
            const int64_t b = item % n_split, g = (item / n_split) % p.n_head_kv, t = item / n_split / p.n_head_kv;
            const int64_t j0 = b * blk, len = std::min(blk, n - j0);
            if (len <= 0) continue;
            MemoryHead sub = mp.head(g);
            sub.keys += j0 * hd, sub.values += j0 * hd, sub.n = len;
            const float* qh = mp.q + (t * p.n_head + g * group) * hd;  // (group, hd)
            const int64_t row0 = t * p.n_head + g * group;
            if (!mp.knn) {
                std::fill(m.begin(), m.end(), -INFINITY);
                std::fill(l.begin(), l.end(), 0.0f);
                std::fill(acc.begin(), acc.end(), 0.0f);
                fold_memory_rows(qh, group, sub, mp, hd, p.scale, m.data(), l.data(), acc.data(), ms, cand);
                for (int64_t r = 0; r < group; ++r) {
                    part_m[(row0 + r) * n_split + b] = m[r];
                    part_l[(row0 + r) * n_split + b] = l[r];
                    std::copy_n(acc.data() + r * hd, hd, part_acc.data() + ((row0 + r) * n_split + b) * hd);
                }
                continue;
            }
            ms.resize(static_cast<size_t>(len));  // (len,) one row's scores over the block
            for (int64_t r = 0; r < group; ++r) {
                for (int64_t j = 0; j < len; ++j) ms[j] = F16Rows::dot(qh + r * hd, f16_row(sub.keys, j, hd), hd) * p.scale;
                top_k_of_scores(ms.data(), len, kk, static_cast<int32_t>(j0), tmp, cand);
                std::copy(cand.begin(), cand.end(), part_cand.begin() + ((row0 + r) * n_split + b) * kk);
            }
        }
    });
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<std::pair<float, int32_t>> cand;
        for (int64_t row = ith; row < n_rows; row += nth) {
            float* o = out + row * hd;  // (hd,)
            float &m = rows_m[row], &l = rows_l[row];
            if (mp.knn) {
                cand.clear();
                for (int64_t i = 0; i < n_split * kk; ++i)
                    if (part_cand[row * n_split * kk + i].first != -INFINITY) cand.push_back(part_cand[row * n_split * kk + i]);
                fold_top_k(cand, static_cast<int64_t>(cand.size()), mp.k, mp.head(row % p.n_head / group), hd, m, l, o);
            } else {
                for (int64_t b = 0; b < n_split; ++b) {  // merge block b's state into the row's
                    const float mb = part_m[row * n_split + b];
                    if (mb == -INFINITY) continue;
                    const float m_new = std::max(m, mb), c = std::exp(m - m_new), cb = std::exp(mb - m_new);
                    const float* ab = part_acc.data() + (row * n_split + b) * hd;
                    for (int64_t d = 0; d < hd; ++d) o[d] = o[d] * c + ab[d] * cb;
                    l = l * c + part_l[row * n_split + b] * cb;
                    m = m_new;
                }
            }
            const float inv = l > 0 ? 1.0f / l : 0.0f;
            for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
        }
    });
}

// Work items are (token, kv head): the `group` query heads that share a kv head are
// scored together, so each cached key and value row is read once per token, not once
// per query head (GQA decode at depth is bound by reading the cache).
template <class Rows>
void attend(const float* q, const float* q_group, const float* q_mem, const int32_t* q_pos, int64_t n_tok,
            const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool,
            int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const int64_t n_items = n_tok * p.n_head_kv;
    const MemoryPolicy mp = memory_policy(p, layer, q, q_mem);
    const int64_t n_split = memory_split(mp, n_items, n_threads);  // > 1: memory folded after this loop
    std::vector<float> rows_m(n_split > 1 ? n_tok * p.n_head : 0), rows_l(rows_m.size());  // (n_tok * n_head,)
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> scores(static_cast<size_t>(group * n_kv));  // (group, n_kv)
        std::vector<float> mx(static_cast<size_t>(group)), sum(static_cast<size_t>(group));  // (group,) softmax state
        std::vector<float> mem_scores;                      // (group, n_mem)
        std::vector<std::pair<float, int32_t>> mem_cand;    // (n_mem,)
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
            for (int64_t r = 0; r < group; ++r)  // nothing visible gives 0 (not for causal self-attention)
                sum[r] = mx[r] == -INFINITY ? 0.0f : exp_shifted_sum(scores.data() + r * n_kv, n_kv, mx[r]);
            for (int64_t j = 0; j < n_kv; ++j) {
                const uint8_t* vrow = Rows::at(cache.v_row(layer, j), g * hd);
                for (int64_t r = 0; r < group; ++r) {
                    const float w = scores[r * n_kv + j];
                    if (w != 0.0f) Rows::axpy(o + r * hd, w, vrow, hd);
                }
            }
            if (n_split > 1) {  // the split memory pass below merges and normalizes
                std::copy(mx.begin(), mx.end(), rows_m.begin() + t * p.n_head + h0);
                std::copy(sum.begin(), sum.end(), rows_l.begin() + t * p.n_head + h0);
                continue;
            }
            if (mp.n() > 0)
                fold_memory_rows(mp.q + (t * p.n_head + h0) * hd, group, mp.head(g), mp, hd, p.scale, mx.data(), sum.data(),
                                 o, mem_scores, mem_cand);
            for (int64_t r = 0; r < group; ++r) {
                const float inv = sum[r] > 0 ? 1.0f / sum[r] : 0.0f;
                for (int64_t d = 0; d < hd; ++d) o[r * hd + d] *= inv;
            }
        }
    });
    if (n_split > 1) fold_memory_split(n_tok, p, mp, n_split, rows_m, rows_l, out, pool, n_threads);
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
void attend_tiled(const float* q, const float* q_group, const float* q_mem, const int32_t* q_pos, int64_t n_tok,
                  const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out,
                  ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int64_t n_rows = n_tok * group, n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const MemoryPolicy mp = memory_policy(p, layer, q, q_mem);
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> mem_scores;                    // (n_mem,) knn: one row's memory scores
        std::vector<std::pair<float, int32_t>> mem_cand;  // (n_mem,)
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
                    for (int64_t jj = 0; jj < nk; ++jj) {
                        const int32_t pk = k_pos[j0 + jj];
                        const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                        const float s = row_grouped && se.grouped(pq, pk) ? sg[jj] : sc[jj];
                        sc[jj] = visible ? s * p.scale : -INFINITY;
                    }
                    float* a = acc.data() + r * hd;
                    if (online_softmax_step(sc, nk, m[r], l[r], a, hd)) tile_accumulate(a, sc, vt.data(), hd, nk);
                }
            }
            // Memory (no mask, no rotation): fot folds it as more tiles; knn scans per row.
            const MemoryHead mh = mp.n() > 0 ? mp.head(g) : MemoryHead{};
            for (int64_t j0 = 0; !mp.knn && j0 < mh.n; j0 += kTileKeys) {
                const int64_t nk = std::min(kTileKeys, mh.n - j0);
                for (int64_t jj = 0; jj < nk; ++jj) {
                    F16Rows::load(f16_row(mh.keys, j0 + jj, hd), row.data(), hd);
                    for (int64_t d = 0; d < hd; ++d) kt[d * kTileKeys + jj] = row[d];
                    F16Rows::load(f16_row(mh.values, j0 + jj, hd), vt.data() + jj * hd, hd);
                }
                for (int64_t r = 0; r < nr; ++r) {
                    const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                    tile_scores(mp.q + (t * p.n_head + h) * hd, kt.data(), hd, kTileKeys, sc);
                    for (int64_t jj = 0; jj < nk; ++jj) sc[jj] *= p.scale;
                    float* a = acc.data() + r * hd;
                    if (online_softmax_step(sc, nk, m[r], l[r], a, hd)) tile_accumulate(a, sc, vt.data(), hd, nk);
                }
            }
            for (int64_t r = 0; mp.knn && mh.n > 0 && r < nr; ++r) {
                const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                fold_memory_rows(mp.q + (t * p.n_head + h) * hd, 1, mh, mp, hd, p.scale, m + r, l + r,
                                 acc.data() + r * hd, mem_scores, mem_cand);
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
               int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads,
               const float* q_mem) {
    // Few query rows per kv head (decode): read each cached row once, per row. Many rows
    // (prefill): convert tiles once and share them across a block of rows.
    const bool tiled = n_tok * (p.n_head / p.n_head_kv) >= 16;
    const bool f16 = cache.type() == KVType::F16;
    if (tiled && f16) attend_tiled<F16Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else if (tiled) attend_tiled<Q8Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else if (f16) attend<F16Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else attend<Q8Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
}

void attention_step(float* q, float* k, const float* v, const int32_t* pos, int64_t n, KVCache& cache,
                    int64_t layer, int64_t cell, const RopeParams& rp, const AttentionParams& p, float* scratch_q,
                    float* scratch_k, float* out, ThreadPool& pool, int n_threads) {
    const int64_t q_dim = p.n_head * p.head_dim, kv_dim = p.n_head_kv * p.head_dim;
    const SelfExtend& se = p.self_extend;
    // Memory seen at a fixed distance D: memory keys are unrotated, so a query rotated at D
    // sees each at relative distance D (RoPE depends on the difference). From the unrotated q.
    const int64_t mem_distance = p.memory && p.memory->slot(layer) >= 0 ? p.memory->params().distance : 0;
    if (mem_distance > 0) {
        std::vector<int32_t> dpos(static_cast<size_t>(n), static_cast<int32_t>(mem_distance));  // (n,)
        std::memcpy(scratch_q, q, n * q_dim * sizeof(float));
        rope(scratch_q, dpos.data(), n, p.n_head, p.head_dim, rp);
    }
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
    attention(q, se.enabled() ? scratch_q : nullptr, pos, n, cache, layer, cell + n, p, out, pool, n_threads,
              mem_distance > 0 ? scratch_q : nullptr);
}

}  // namespace pyllong
