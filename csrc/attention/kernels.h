// The inner kernels of the one attention loop, shared by its local part (attention.cpp) and
// its kNN-memory policy (memory_attention.cpp): the AVX2 softmax exponent, the row codecs of
// the KV cache (f16, q8_0), and the online-softmax step that merges parts exactly.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/exp_avx2.h"
#include "core/fp16.h"

#if defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
#include <immintrin.h>
#define PYLLONG_ATTN_AVX2 1
#endif

namespace pyllong::attn {

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
inline float exp_shifted_sum(float* x, int64_t n, float shift) {
    int64_t i = 0;
    float sum = 0;
#ifdef PYLLONG_ATTN_AVX2
    const __m256 vshift = _mm256_set1_ps(shift), ninf = _mm256_set1_ps(-INFINITY);
    __m256 vsum = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 raw = _mm256_loadu_ps(x + i);
        const __m256 masked = _mm256_cmp_ps(raw, ninf, _CMP_EQ_OQ);
        const __m256 y = _mm256_andnot_ps(masked, exp8(_mm256_sub_ps(raw, vshift)));
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

// Keys per tile of the tiled loops (prefill, and the memory's fot scans).
constexpr int64_t kTileKeys = 64;

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
inline void tile_accumulate_avx2(float* a, const float* w, const float* vt, int64_t nk) {
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

}  // namespace pyllong::attn
