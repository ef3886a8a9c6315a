#include "attention/attention_decode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention/kernels.h"
#include "core/fp16.h"
#include "core/work_split.h"

namespace pyllong {

namespace {

// A whole cache row (all kv heads, kv_dim elements) as f32, through the row codecs of kernels.h.
inline void load_full_row(KVType type, const uint8_t* row, float* out, int64_t kv_dim) {
    if (type == KVType::F16) attn::F16Rows::load(row, out, kv_dim);
    else attn::Q8Rows::load(row, out, kv_dim);
}

// Asks for bytes [p, p + n) ahead of use, into L2. The decode loop computes on one tile of
// rows while the next tile's rows arrive: without it the row loads ran at DRAM latency (61 %
// of this loop's samples at depth 16k, SmolLM2, where the cache is 4x the weights); with it,
// tg32 at 16k went from 29.7 to 31.5 tok/s (2 threads, quiet, 3 paired runs).
inline void prefetch_range(const uint8_t* p, int64_t n) {
    for (int64_t o = 0; o < n; o += 64) __builtin_prefetch(p + o, 0, 2);
}

// sc[i] = q . k_i for n keys k_i = k + i * stride (hd elements each).
inline void scores_block(const float* q, const float* k, int64_t stride, int64_t hd, int64_t n, float* sc) {
    int64_t i = 0;
#ifdef PYLLONG_ATTN_AVX2
    if (hd % 8 == 0) {
        // Eight keys at a time: eight 8-lane partial sums, then one transposing reduction
        // (hadd tree) instead of eight horizontal sums.
        for (; i + 8 <= n; i += 8) {
            const float* kb = k + i * stride;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            for (int64_t d = 0; d < hd; d += 8) {
                const __m256 qd = _mm256_loadu_ps(q + d);
                a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 0 * stride + d), a0);
                a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 1 * stride + d), a1);
                a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 2 * stride + d), a2);
                a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 3 * stride + d), a3);
                a4 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 4 * stride + d), a4);
                a5 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 5 * stride + d), a5);
                a6 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 6 * stride + d), a6);
                a7 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(kb + 7 * stride + d), a7);
            }
            const __m256 t0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
            const __m256 t1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
            // t0 lanes: [s0 s1 s2 s3 | s0 s1 s2 s3] halves of keys 0-3; t1 the same for keys 4-7.
            const __m256 lo = _mm256_permute2f128_ps(t0, t1, 0x20), hi = _mm256_permute2f128_ps(t0, t1, 0x31);
            _mm256_storeu_ps(sc + i, _mm256_add_ps(lo, hi));
        }
    }
#endif
    for (; i < n; ++i) {
        const float* kr = k + i * stride;
        float s = 0;
        for (int64_t d = 0; d < hd; ++d) s += q[d] * kr[d];
        sc[i] = s;
    }
}

#ifdef PYLLONG_ATTN_AVX2
template <int HD8>
inline void accumulate_avx2(float* a, const float* w, const float* v, int64_t stride, int64_t n) {
    __m256 acc[HD8];
    for (int i = 0; i < HD8; ++i) acc[i] = _mm256_loadu_ps(a + 8 * i);
    for (int64_t j = 0; j < n; ++j) {
        if (w[j] == 0.0f) continue;
        const __m256 wv = _mm256_set1_ps(w[j]);
        const float* vr = v + j * stride;
        for (int i = 0; i < HD8; ++i) acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(vr + 8 * i), acc[i]);
    }
    for (int i = 0; i < HD8; ++i) _mm256_storeu_ps(a + 8 * i, acc[i]);
}
#endif

// a (hd,) += sum_j w[j] * v_j for n value rows v_j = v + j * stride.
inline void accumulate(float* a, const float* w, const float* v, int64_t stride, int64_t hd, int64_t n) {
#ifdef PYLLONG_ATTN_AVX2
    switch (hd) {
        case 64: return accumulate_avx2<8>(a, w, v, stride, n);
        case 128: return accumulate_avx2<16>(a, w, v, stride, n);
        case 32: return accumulate_avx2<4>(a, w, v, stride, n);
        case 96: return accumulate_avx2<12>(a, w, v, stride, n);
        case 80: return accumulate_avx2<10>(a, w, v, stride, n);
        default: break;
    }
#endif
    for (int64_t j = 0; j < n; ++j) {
        if (w[j] == 0.0f) continue;
        const float* vr = v + j * stride;
        for (int64_t d = 0; d < hd; ++d) a[d] += w[j] * vr[d];
    }
}

// Keys per tile: the tile's key and value rows, as f32, stay in L1/L2 while every query head
// uses them.
inline int64_t tile_keys(int64_t kv_dim) {
    return std::clamp<int64_t>((6144 / std::max<int64_t>(1, kv_dim)) / 8 * 8, 8, 64);
}

}  // namespace

int64_t attention_decode_splits(int64_t n_tok, int64_t n_kv, int n_threads) {
    // About 4 items per thread, so a thread slowed by another process hands work to the others.
    const int64_t want = (4 * int64_t{n_threads} + n_tok - 1) / std::max<int64_t>(1, n_tok);
    return std::clamp<int64_t>(want, 1, std::max<int64_t>(1, n_kv / kMinKeysPerSplit));
}

void attention_decode(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok,
                      const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out,
                      ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, n_head = p.n_head;
    const int64_t kv_dim = p.n_head_kv * hd, q_dim = n_head * hd;
    const int nth = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());
    const int64_t n_split = attention_decode_splits(n_tok, n_kv, nth);
    const int64_t span = (n_kv + n_split - 1) / n_split;  // keys per item
    const int64_t n_items = n_tok * n_split;
    const int64_t tk = tile_keys(kv_dim);
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const KVType type = cache.type();
    // Partial results of each item (token, key range) when the keys are split: per query head,
    // the running max, the sum of exponentials and the unnormalized output (hd).
    std::vector<float> part_m, part_l, part_o;  // (n_items, n_head), (n_items, n_head), (n_items, n_head, hd)
    if (n_split > 1) {
        part_m.resize(static_cast<size_t>(n_items * n_head));
        part_l.resize(static_cast<size_t>(n_items * n_head));
        part_o.resize(static_cast<size_t>(n_items * q_dim));
    }
    WorkSplit split(n_items, nth);
    pool.run(nth, [&](int ith, int) {
        // One tile of rows, all kv heads: each cache row is read once for every query head.
        std::vector<float> kf(static_cast<size_t>(tk * kv_dim)), vf(kf.size());  // (tk, kv_dim)
        std::vector<float> sc(static_cast<size_t>(n_head * tk)), scg(static_cast<size_t>(tk));  // (n_head, tk), (tk,)
        std::vector<float> acc(static_cast<size_t>(q_dim));                             // (n_head, hd)
        std::vector<float> mx(static_cast<size_t>(n_head)), sum(static_cast<size_t>(n_head));
        std::vector<uint8_t> vis(static_cast<size_t>(tk)), grp(static_cast<size_t>(tk));
        split.run(ith, [&](int64_t item) {
            const int64_t t = item / n_split, s = item % n_split;
            const int64_t j0 = s * span, j1 = std::min(n_kv, j0 + span);
            const float* qt = q + t * q_dim;                                  // (n_head, hd)
            const float* qgt = se.enabled() ? q_group + t * q_dim : nullptr;  // (n_head, hd)
            const int32_t pq = q_pos[t];
            std::fill(mx.begin(), mx.end(), -INFINITY);
            std::fill(sum.begin(), sum.end(), 0.0f);
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t a = j0; a < j1; a += tk) {
                const int64_t n = std::min(tk, j1 - a);
                if (a + tk < j1) {  // the next tile: plain or grouped keys (SelfExtend), values
                    const int64_t an = a + tk, nn = std::min(tk, j1 - an), bytes = nn * cache.row_bytes();
                    const bool g0 = se.enabled() && se.grouped(pq, k_pos[an]);
                    const bool g1 = se.enabled() && se.grouped(pq, k_pos[an + nn - 1]);
                    if (!g0 || !g1) prefetch_range(cache.k_row(layer, an), bytes);
                    if (g0 || g1) prefetch_range(cache.kg_row(layer, an), bytes);
                    prefetch_range(cache.v_row(layer, an), bytes);
                }
                int64_t n_vis = 0, n_grp = 0;
                for (int64_t jj = 0; jj < n; ++jj) {
                    const int32_t pk = k_pos[a + jj];
                    vis[jj] = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                    grp[jj] = vis[jj] && se.grouped(pq, pk);  // SelfExtend: both sides at group positions
                    n_vis += vis[jj];
                    n_grp += grp[jj];
                }
                if (n_vis == 0) continue;  // e.g. outside a sliding window: the rows are not read
                for (int64_t jj = 0; jj < n; ++jj) {
                    float* kr = kf.data() + jj * kv_dim;
                    if (!vis[jj]) std::fill(kr, kr + kv_dim, 0.0f);
                    else load_full_row(type, grp[jj] ? cache.kg_row(layer, a + jj) : cache.k_row(layer, a + jj), kr, kv_dim);
                }
                for (int64_t h = 0; h < n_head; ++h) {
                    const int64_t g = h / group;
                    float* sh = sc.data() + h * tk;
                    // Neighbour keys score against the query at its true position, grouped keys
                    // against the query at its group position; a tile straddling the window
                    // edge takes both and picks per key.
                    if (n_grp < n_vis) scores_block(qt + h * hd, kf.data() + g * hd, kv_dim, hd, n, sh);
                    if (n_grp > 0) {
                        float* dst = n_grp == n_vis ? sh : scg.data();
                        scores_block(qgt + h * hd, kf.data() + g * hd, kv_dim, hd, n, dst);
                        if (dst != sh)
                            for (int64_t jj = 0; jj < n; ++jj)
                                if (grp[jj]) sh[jj] = scg[jj];
                    }
                    for (int64_t jj = 0; jj < n; ++jj) sh[jj] = vis[jj] ? sh[jj] * p.scale : -INFINITY;
                    // Folds the tile into the head's running max / sum / output; sh becomes weights.
                    if (!attn::online_softmax_step(sh, n, mx[h], sum[h], acc.data() + h * hd, hd))
                        std::fill(sh, sh + n, 0.0f);
                }
                for (int64_t jj = 0; jj < n; ++jj) {
                    float* vr = vf.data() + jj * kv_dim;
                    if (!vis[jj]) std::fill(vr, vr + kv_dim, 0.0f);
                    else load_full_row(type, cache.v_row(layer, a + jj), vr, kv_dim);
                }
                for (int64_t h = 0; h < n_head; ++h)
                    accumulate(acc.data() + h * hd, sc.data() + h * tk, vf.data() + (h / group) * hd, kv_dim, hd, n);
            }
            if (n_split == 1) {  // the whole range: normalize into the output directly
                float* o = out + t * q_dim;  // (n_head, hd)
                for (int64_t h = 0; h < n_head; ++h) {
                    const float inv = sum[h] > 0 ? 1.0f / sum[h] : 0.0f;  // nothing visible: zeros
                    for (int64_t d = 0; d < hd; ++d) o[h * hd + d] = acc[h * hd + d] * inv;
                }
            } else {
                std::copy(mx.begin(), mx.end(), part_m.begin() + item * n_head);
                std::copy(sum.begin(), sum.end(), part_l.begin() + item * n_head);
                std::copy(acc.begin(), acc.end(), part_o.begin() + item * q_dim);
            }
        });
    });
    if (n_split == 1) return;
    // Merge the key ranges of each (token, query head): rescale each range to the common max.
    for (int64_t t = 0; t < n_tok; ++t) {
        for (int64_t h = 0; h < n_head; ++h) {
            float* o = out + t * q_dim + h * hd;  // (hd,)
            float m = -INFINITY;
            for (int64_t s = 0; s < n_split; ++s) m = std::max(m, part_m[(t * n_split + s) * n_head + h]);
            std::fill(o, o + hd, 0.0f);
            if (m == -INFINITY) continue;  // nothing visible (not for causal self-attention)
            float den = 0;
            for (int64_t s = 0; s < n_split; ++s) {
                const int64_t it = t * n_split + s;
                const float ms = part_m[it * n_head + h];
                if (ms == -INFINITY) continue;
                const float c = std::exp(ms - m);
                den += c * part_l[it * n_head + h];
                const float* po = part_o.data() + it * q_dim + h * hd;
                for (int64_t d = 0; d < hd; ++d) o[d] += c * po[d];
            }
            const float inv = 1.0f / den;
            for (int64_t d = 0; d < hd; ++d) o[d] *= inv;
        }
    }
}

}  // namespace pyllong
