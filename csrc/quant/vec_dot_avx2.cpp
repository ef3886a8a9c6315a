// AVX2 dot products (compiled with -mavx2 -mfma -mf16c; run only when CPUID has them).
// Integer products use maddubs (u8 x s8 -> s16 pairs) and madd (-> s32); every integer
// sum stays exact (bounds noted beside each), only the block scaling is float.
#include <immintrin.h>

#include <cstddef>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {

namespace {

// Hardware fp16 -> f32 (F16C); the portable core/fp16.h version is branchy and would
// dominate the per-block cost.
inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 16 bytes of packed nibbles -> 32 bytes: element l (< 16) = low nibble of qs[l],
// element 16 + l = high nibble (the legacy formats' order).
inline __m256i nibbles32(const uint8_t* qs) {
    // both lanes = the 16 bytes (one broadcast load); the upper lane shifted by 4 bits
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(t, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
}

// 32 bits -> 32 bytes, 0x10 where the bit is set (the fifth bit of Q5_0 / Q5_1).
inline __m256i fifth_bits32(const uint8_t* qh4) {
    uint32_t x;
    std::memcpy(&x, qh4, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(x)), shuf);  // byte k = source byte k/8
    const __m256i bit = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);  // all ones except bit k%8 of byte k
    bytes = _mm256_cmpeq_epi8(_mm256_or_si256(bytes, bit), _mm256_set1_epi64x(-1));
    return _mm256_and_si256(bytes, _mm256_set1_epi8(0x10));
}

// Sums of 4 adjacent u8*s8 products as 8 int32. |sum| <= 4 * 255 * 127 when u8 < 256;
// the maddubs s16 stage is exact when u8 * 127 * 2 < 32768 (u8 <= 128).
inline __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}
// Signed x signed via |x| and sign(y, x); x >= -128 and y > -128 (activations are >= -127).
inline __m256i dot_s8s8(__m256i x, __m256i y) { return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)); }

// ---- float weights: F32, F16, BF16 x f32 activations ------------------------------

// load8(i): 8 weights from element i as floats; one(i): weight i as a float (tail).
template <class Load8, class One>
float dot_float_weights(int64_t n, const float* x, Load8 load8, One one) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load8(i), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(load8(i + 8), _mm256_loadu_ps(x + i + 8), acc1);
    }
    float s = hsum(_mm256_add_ps(acc0, acc1));
    for (; i < n; ++i) s += one(i) * x[i];
    return s;
}

float dot_f32(int64_t n, const void* w, const void* a) {
    const auto* wf = static_cast<const float*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a), [wf](int64_t i) { return _mm256_loadu_ps(wf + i); },
        [wf](int64_t i) { return wf[i]; });
}

float dot_f16(int64_t n, const void* w, const void* a) {
    const auto* wh = static_cast<const uint16_t*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a),
        [wh](int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wh + i))); },
        [wh](int64_t i) { return fp16_to_fp32(wh[i]); });
}

float dot_bf16(int64_t n, const void* w, const void* a) {
    const auto* wh = static_cast<const uint16_t*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a),
        [wh](int64_t i) {
            const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wh + i)));
            return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
        },
        [wh](int64_t i) { return bf16_to_fp32(wh[i]); });
}

// ---- 32-element blocks x BlockQ8A --------------------------------------------------

// Unsigned levels of a legacy block: (32,) bytes in [0, 2^bits).
template <class Block> __m256i levels_u(const Block& b);
template <> inline __m256i levels_u(const BlockQ4_0& b) { return nibbles32(b.qs); }
template <> inline __m256i levels_u(const BlockQ4_1& b) { return nibbles32(b.qs); }
template <> inline __m256i levels_u(const BlockQ5_0& b) { return _mm256_or_si256(nibbles32(b.qs), fifth_bits32(b.qh)); }
template <> inline __m256i levels_u(const BlockQ5_1& b) { return _mm256_or_si256(nibbles32(b.qs), fifth_bits32(b.qh)); }

// The kernels below take NT activation rows at once (a + k * a_stride, k < NT) and
// write NT dot products to out: the weight block is unpacked once and reused NT times,
// which is what makes GEMM (prefill) faster than NT GEMVs. NT = 1 is the GEMV kernel.
template <class Act>
inline const Act* act_row(const void* a, size_t a_stride, int k) {
    return reinterpret_cast<const Act*>(static_cast<const uint8_t*>(a) + k * a_stride);
}

// For one activation row (GEMV) the float accumulations would form one dependency
// chain per block (fmadd latency, ~4 cycles), slower than the memory stream; kUnroll
// independent accumulators per row break it. With NT >= 4 rows the rows already do.
template <int NT>
constexpr int kUnroll = NT == 1 ? 4 : 1;

// Symmetric: x = d * (q - offset). Signed levels make the integer sum exact.
template <class Block, int kOffset, int NT>
void dot_sym32(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    constexpr int U = kUnroll<NT>;
    const auto* wb = static_cast<const Block*>(w);  // (n/32,)
    const BlockQ8A* ab[NT];                         // NT x (n/32,)
    __m256 acc[NT][U];
    for (int k = 0; k < NT; ++k) {
        ab[k] = act_row<BlockQ8A>(a, a_stride, k);
        for (int u = 0; u < U; ++u) acc[k][u] = _mm256_setzero_ps();
    }
    auto step = [&](int64_t i, int u) {
        const float dw = h2f(wb[i].d);
        if constexpr (kOffset == 0) {  // Q8_0: signed levels, sign trick
            const __m256i q = load256(reinterpret_cast<const BlockQ8_0*>(&wb[i])->qs);
            const __m256i qabs = _mm256_sign_epi8(q, q);
            for (int k = 0; k < NT; ++k) {
                const __m256i sumi = dot_u8s8(qabs, _mm256_sign_epi8(load256(ab[k][i].qs), q));
                acc[k][u] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab[k][i].d), _mm256_cvtepi32_ps(sumi), acc[k][u]);
            }
        } else {  // (q - offset) * a in int16: q*a - offset*a, both exact (31*127*2 < 2^15)
            const __m256i q = levels_u(wb[i]);
            const __m256i off = _mm256_set1_epi8(kOffset);
            for (int k = 0; k < NT; ++k) {
                const __m256i av = load256(ab[k][i].qs);
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, av), _mm256_maddubs_epi16(off, av));
                const __m256i sumi = _mm256_madd_epi16(p, _mm256_set1_epi16(1));
                acc[k][u] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab[k][i].d), _mm256_cvtepi32_ps(sumi), acc[k][u]);
            }
        }
    };
    const int64_t nb = n / kQK32;
    int64_t i = 0;
    for (; i + U <= nb; i += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) step(i + u, u);  // constant u: accumulators stay in registers
    }
    for (; i < nb; ++i) step(i, 0);
    for (int k = 0; k < NT; ++k) {
        for (int u = 1; u < U; ++u) acc[k][0] = _mm256_add_ps(acc[k][0], acc[k][u]);
        out[k] = hsum(acc[k][0]);
    }
}

// Affine: x = d * q + m; <x, a> = d*d_a*<q, qa> + m * s_a.
template <class Block, int NT>
void dot_affine32(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    static_assert(offsetof(Block, m) == offsetof(Block, d) + 2, "d and m adjacent");
    static_assert(offsetof(BlockQ8A, s) == offsetof(BlockQ8A, d) + 4, "d and s adjacent");
    constexpr int U = kUnroll<NT>;
    const auto* wb = static_cast<const Block*>(w);
    const BlockQ8A* ab[NT];
    __m256 acc[NT][U];
    __m128 acc_m[NT][U];  // lane 1: sum of m * s_a (lane 0 unused)
    for (int k = 0; k < NT; ++k) {
        ab[k] = act_row<BlockQ8A>(a, a_stride, k);
        for (int u = 0; u < U; ++u) { acc[k][u] = _mm256_setzero_ps(); acc_m[k][u] = _mm_setzero_ps(); }
    }
    auto step = [&](int64_t i, int u) {
        const __m256i q = levels_u(wb[i]);
        // [d, m] of the weight block in one conversion, times [d_a, s_a]: [d*d_a, m*s_a]
        int32_t dm_bits;
        std::memcpy(&dm_bits, &wb[i].d, 4);
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(dm_bits));
        for (int k = 0; k < NT; ++k) {
            const __m128 ds = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(&ab[k][i].d)));
            const __m128 prod = _mm_mul_ps(dm, ds);
            const __m256i sumi = dot_u8s8(q, load256(ab[k][i].qs));  // q <= 31: exact
            acc[k][u] = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), _mm256_cvtepi32_ps(sumi), acc[k][u]);
            acc_m[k][u] = _mm_add_ps(acc_m[k][u], prod);
        }
    };
    const int64_t nb = n / kQK32;
    int64_t i = 0;
    for (; i + U <= nb; i += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) step(i + u, u);  // constant u: accumulators stay in registers
    }
    for (; i < nb; ++i) step(i, 0);
    for (int k = 0; k < NT; ++k) {
        for (int u = 1; u < U; ++u) {
            acc[k][0] = _mm256_add_ps(acc[k][0], acc[k][u]);
            acc_m[k][0] = _mm_add_ps(acc_m[k][0], acc_m[k][u]);
        }
        out[k] = hsum(acc[k][0]) + _mm_cvtss_f32(_mm_movehdup_ps(acc_m[k][0]));
    }
}

// ---- K-quants x BlockQ8K ------------------------------------------------------------

// Q4_K / Q5_K: 8 sub-blocks of 32; sub-blocks 2j and 2j+1 are the low and high nibbles
// of qs[32j .. 32j+32). For Q5_K, bit s of qh[l] is bit 4 of sub-block s.
template <class Block, bool kFifthBit, int NT>
void dot_k4_family(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    const auto* wb = static_cast<const Block*>(w);
    const BlockQ8K* ab[NT];
    __m256 acc[NT];
    __m128 acc_m[NT];  // 4 lanes of mins x activation sums
    for (int k = 0; k < NT; ++k) {
        ab[k] = act_row<BlockQ8K>(a, a_stride, k);
        acc[k] = _mm256_setzero_ps();
        acc_m[k] = _mm_setzero_ps();
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const Block& b = wb[i];
        uint8_t scm[16];  // 8 scales, 8 mins
        k4_unpack_scales(b.scales, scm);
        const uint8_t* sc = scm;
        // mins as int16, for <mins, sums of 32 activations> with madd
        const __m128i mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(scm + 8)));
        __m256i qh;
        if constexpr (kFifthBit) qh = load256(reinterpret_cast<const BlockQ5_K*>(&b)->qh);
        __m256i sumi[NT];
        for (int k = 0; k < NT; ++k) sumi[k] = _mm256_setzero_si256();
        for (int j = 0; j < 4; ++j) {
            const __m256i bytes = load256(b.qs + 32 * j);
            __m256i lo = _mm256_and_si256(bytes, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4);
            if constexpr (kFifthBit) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4));
            }
            const __m256i sc_lo = _mm256_set1_epi16(sc[2 * j]), sc_hi = _mm256_set1_epi16(sc[2 * j + 1]);
            for (int k = 0; k < NT; ++k) {
                // q <= 31: maddubs exact (31*127*2); times 6-bit scales well inside int32.
                const __m256i plo = _mm256_maddubs_epi16(lo, load256(ab[k][i].qs + 64 * j));
                const __m256i phi = _mm256_maddubs_epi16(hi, load256(ab[k][i].qs + 64 * j + 32));
                sumi[k] = _mm256_add_epi32(sumi[k], _mm256_add_epi32(_mm256_madd_epi16(plo, sc_lo), _mm256_madd_epi16(phi, sc_hi)));
            }
        }
        const float d = h2f(b.d), dmin = h2f(b.dmin);
        for (int k = 0; k < NT; ++k) {
            // sums of 32 activations per sub-block (|.| <= 4064 fits int16), times the mins
            const __m128i bs_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab[k][i].bsums));
            const __m128i bs_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab[k][i].bsums + 8));
            const __m128i summ4 = _mm_madd_epi16(mins16, _mm_hadd_epi16(bs_lo, bs_hi));  // 4 x int32
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(ab[k][i].d * d), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
            acc_m[k] = _mm_fmadd_ps(_mm_set1_ps(ab[k][i].d * dmin), _mm_cvtepi32_ps(summ4), acc_m[k]);
        }
    }
    for (int k = 0; k < NT; ++k) {
        __m128 m = _mm_add_ps(acc_m[k], _mm_movehl_ps(acc_m[k], acc_m[k]));
        m = _mm_add_ss(m, _mm_movehdup_ps(m));
        out[k] = hsum(acc[k]) - _mm_cvtss_f32(m);
    }
}

// Q6_K: per 128-element half, ql (64 bytes) gives low nibbles, qh (32 bytes) 2 high bits;
// levels q in [0, 64) with x = d*sc*(q - 32). The -32 is applied in int16 (maddubs of
// 32 with a), so the sums stay exact.
template <int NT>
void dot_q6_k(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    const auto* wb = static_cast<const BlockQ6_K*>(w);
    const BlockQ8K* ab[NT];
    __m256 acc[NT];
    for (int k = 0; k < NT; ++k) { ab[k] = act_row<BlockQ8K>(a, a_stride, k); acc[k] = _mm256_setzero_ps(); }
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ6_K& b = wb[i];
        __m256i sumi[NT];
        for (int k = 0; k < NT; ++k) sumi[k] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i ql0 = load256(b.ql + 64 * h), ql1 = load256(b.ql + 64 * h + 32);
            const __m256i qh = load256(b.qh + 32 * h);
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
                _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4)),
            };
            for (int j = 0; j < 4; ++j) {
                const int s0 = b.scales[8 * h + 2 * j], s1 = b.scales[8 * h + 2 * j + 1];
                const __m256i scv = _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(s1)), _mm_set1_epi16(static_cast<int16_t>(s0)));
                for (int k = 0; k < NT; ++k) {
                    const __m256i av = load256(ab[k][i].qs + 128 * h + 32 * j);
                    // (q - 32) * a pairs: 63*127*2 and 32*127*2 both fit int16, as does the difference
                    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[j], av), _mm256_maddubs_epi16(k32, av));
                    sumi[k] = _mm256_add_epi32(sumi[k], _mm256_madd_epi16(p, scv));
                }
            }
        }
        const float d = h2f(b.d);
        for (int k = 0; k < NT; ++k)
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(ab[k][i].d * d), _mm256_cvtepi32_ps(sumi[k]), acc[k]);
    }
    for (int k = 0; k < NT; ++k) out[k] = hsum(acc[k]);
}

// A multi-row kernel used for one row: the GEMV entry of the table.
template <auto kKernel>
float single(int64_t n, const void* w, const void* a) {
    float out;
    kKernel(n, w, a, 0, &out);
    return out;
}

// Q2_K / Q3_K: 2-bit fields q_j = (qs[32h + l] >> 2j) & 3 are elements 128h + 32j + l;
// each 32 elements span two 16-element sub-blocks (two scales, one per 128-bit lane).
inline __m256i lane_scales(int lo, int hi) {
    return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(hi)), _mm_set1_epi16(static_cast<int16_t>(lo)));
}

float dot_q2_k(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const BlockQ2_K*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    const __m256i m2 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ2_K& b = wb[i];
        // <mins, sums of 16 activations>: 16 int16 products summed pairwise by madd
        const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_srli_epi16(
            _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)), _mm_set1_epi8(static_cast<char>(0xF0))), 4));
        const __m256i summ8 = _mm256_madd_epi16(mins16, load256(ab[i].bsums));
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i qv = load256(b.qs + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m2);
                const __m256i p = _mm256_maddubs_epi16(q, load256(ab[i].qs + 128 * h + 32 * j));  // 3*127*2
                const int sb = 8 * h + 2 * j;
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, lane_scales(b.scales[sb] & 0xF, b.scales[sb + 1] & 0xF)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ab[i].d * h2f(b.d)), _mm256_cvtepi32_ps(sumi), acc);
        acc_m = _mm256_fmadd_ps(_mm256_set1_ps(ab[i].d * h2f(b.dmin)), _mm256_cvtepi32_ps(summ8), acc_m);
    }
    return hsum(acc) - hsum(acc_m);
}

// Q3_K: q = lo2 + 4*hbit - 4 in [-4, 3]; the -4 is applied in int16 (exact).
float dot_q3_k(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const BlockQ3_K*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    const __m256i m2 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), k4 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ3_K& b = wb[i];
        const __m256i hm = load256(b.hmask);
        int8_t sc[16];
        q3k_unpack_scales(b.scales, sc);
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i qv = load256(b.qs + 32 * h);
            for (int j = 0; j < 4; ++j) {
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * j), m2);
                const __m256i hb = _mm256_and_si256(_mm256_srli_epi16(hm, 4 * h + j), one);
                const __m256i q = _mm256_or_si256(lo, _mm256_slli_epi16(hb, 2));  // 0..7
                const __m256i av = load256(ab[i].qs + 128 * h + 32 * j);
                const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, av), _mm256_maddubs_epi16(k4, av));
                const int sb = 8 * h + 2 * j;
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, lane_scales(sc[sb], sc[sb + 1])));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ab[i].d * h2f(b.d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    return hsum(acc);
}

}  // namespace

void fill_dot_table_avx2(DotTable& t) {
    t.set(GGMLType::F32, dot_f32);
    t.set(GGMLType::F16, dot_f16);
    t.set(GGMLType::BF16, dot_bf16);
    t.set(GGMLType::Q2_K, dot_q2_k);
    t.set(GGMLType::Q3_K, dot_q3_k);
    // Kernels with a multi-row form: GEMV entry (NT = 1) and the 4-row GEMM entry.
    t.set(GGMLType::Q4_0, single<dot_sym32<BlockQ4_0, 8, 1>>, dot_sym32<BlockQ4_0, 8, 4>);
    t.set(GGMLType::Q5_0, single<dot_sym32<BlockQ5_0, 16, 1>>, dot_sym32<BlockQ5_0, 16, 4>);
    t.set(GGMLType::Q8_0, single<dot_sym32<BlockQ8_0, 0, 1>>, dot_sym32<BlockQ8_0, 0, 4>);
    t.set(GGMLType::Q4_1, single<dot_affine32<BlockQ4_1, 1>>, dot_affine32<BlockQ4_1, 4>);
    t.set(GGMLType::Q5_1, single<dot_affine32<BlockQ5_1, 1>>, dot_affine32<BlockQ5_1, 4>);
    t.set(GGMLType::Q4_K, single<dot_k4_family<BlockQ4_K, false, 1>>, dot_k4_family<BlockQ4_K, false, 4>);
    t.set(GGMLType::Q5_K, single<dot_k4_family<BlockQ5_K, true, 1>>, dot_k4_family<BlockQ5_K, true, 4>);
    t.set(GGMLType::Q6_K, single<dot_q6_k<1>>, dot_q6_k<4>);
}

}  // namespace pyllong::quant
