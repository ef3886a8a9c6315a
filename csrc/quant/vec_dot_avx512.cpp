// AVX-512 (F/BW/VL/DQ) dot products for the K-quants, with an optional VNNI variant
// (vpdpbusd) chosen at run time: a K-quant sub-block pair fills one 512-bit register.
// Integer sums are exact, as in the AVX2 and scalar kernels. The float and 32-block
// formats keep their AVX2 kernels on this path: AVX-512 versions (two blocks per
// register, see git history) measured 20-40 % slower than the tuned AVX2 ones on the
// Zen 4 dev machines (BENCHMARKS.md).
#include <immintrin.h>

#include <cstring>

#include "quant/blocks.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }
inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
inline __m512i load512(const void* p) { return _mm512_loadu_si512(p); }
inline __m512i join(__m256i lo, __m256i hi) { return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1); }

// Sums of 4 adjacent u8*s8 products as 16 int32, exact for u8 <= 128 (maddubs stage) or
// any u8 with VNNI.
template <bool kVnni>
inline __m512i dot_u8s8(__m512i u, __m512i s) {
    if constexpr (kVnni) return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
    else return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}

// ---- K-quants x BlockQ8K --------------------------------------------------------------

inline __m512i join_scales_i32(int lo, int hi) {
    return _mm512_inserti64x4(_mm512_set1_epi32(lo), _mm256_set1_epi32(hi), 1);
}

// Q4_K / Q5_K: per 64 elements, [low nibbles | high nibbles] of qs[32j..32j+32) are
// sub-blocks 2j and 2j+1, matching the activation bytes a[64j..64j+64).
template <class Block, bool kFifthBit, bool kVnni>
float dot_k4_family(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const Block*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m512 acc = _mm512_setzero_ps();
    __m128 acc_m = _mm_setzero_ps();  // 4 lanes of mins x activation sums
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const Block& b = wb[i];
        uint8_t sc[16];  // 8 scales, 8 mins
        k4_unpack_scales(b.scales, sc);
        // <mins, sums of 32 activations> (|sum| <= 4064 fits int16)
        const __m128i mins16 = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc + 8)));
        const __m128i bs_lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab[i].bsums));
        const __m128i bs_hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ab[i].bsums + 8));
        const __m128i summ4 = _mm_madd_epi16(mins16, _mm_hadd_epi16(bs_lo, bs_hi));
        __m256i qh;
        if constexpr (kFifthBit) qh = load256(reinterpret_cast<const BlockQ5_K*>(&b)->qh);
        __m512i sumi = _mm512_setzero_si512();
        for (int j = 0; j < 4; ++j) {
            const __m256i bytes = load256(b.qs + 32 * j);
            __m256i lo = _mm256_and_si256(bytes, m4);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), m4);
            if constexpr (kFifthBit) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one), 4));
            }
            const __m512i d4 = dot_u8s8<kVnni>(join(lo, hi), load512(ab[i].qs + 64 * j));
            sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(d4, join_scales_i32(sc[2 * j], sc[2 * j + 1])));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ab[i].d * h2f(b.d)), _mm512_cvtepi32_ps(sumi), acc);
        acc_m = _mm_fmadd_ps(_mm_set1_ps(ab[i].d * h2f(b.dmin)), _mm_cvtepi32_ps(summ4), acc_m);
    }
    __m128 m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return _mm512_reduce_add_ps(acc) - _mm_cvtss_f32(m);
}

// Q6_K: q in [0, 64), x = d*sc*(q - 32); the -32 is subtracted from the exact int32 sums.
template <bool kVnni>
float dot_q6_k(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const BlockQ6_K*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
    const __m512i k32 = _mm512_set1_epi8(32);
    // int8 scales s0..s3 -> 16 int32 lanes, each scale repeated over its 4 lanes (16 elements)
    const __m128i rep4 = _mm_set_epi8(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ6_K& b = wb[i];
        __m512i sumi = _mm512_setzero_si512();
        for (int h = 0; h < 2; ++h) {
            const __m256i ql0 = load256(b.ql + 64 * h), ql1 = load256(b.ql + 64 * h + 32);
            const __m256i qh = load256(b.qh + 32 * h);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                               _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
            const __m512i qpair[2] = {join(q0, q1), join(q2, q3)};
            for (int p = 0; p < 2; ++p) {
                const __m512i av = load512(ab[i].qs + 128 * h + 64 * p);
                const __m512i d4 = _mm512_sub_epi32(dot_u8s8<kVnni>(qpair[p], av), dot_u8s8<kVnni>(k32, av));
                int32_t s4;
                std::memcpy(&s4, b.scales + 8 * h + 4 * p, 4);
                const __m512i scv = _mm512_cvtepi8_epi32(_mm_shuffle_epi8(_mm_cvtsi32_si128(s4), rep4));
                sumi = _mm512_add_epi32(sumi, _mm512_mullo_epi32(d4, scv));
            }
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ab[i].d * h2f(b.d)), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

// ---- 32-element blocks x BlockQ8A, VNNI on 256-bit registers ------------------------
// The AVX2 kernels (vec_dot_avx2.cpp) with each maddubs + madd pair (two multiplies and a
// constant) replaced by one vpdpbusd on ymm registers (EVEX, AVX512-VL + VNNI: not
// double-pumped on Zen 4, unlike 512-bit registers, which measured slower for these
// formats). The integer sums are the same exact values and the float accumulation order is
// the AVX2 one, so the results are bitwise those of the AVX2 path. The profile of SmolLM2
// prefill had 70 % of its samples in the Q4_1 4-row kernel.

inline __m256i dp(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 16 bytes of packed nibbles -> 32 bytes: low nibbles, then high nibbles (legacy order).
inline __m256i nibbles32(const uint8_t* qs) {
    const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
    return _mm256_and_si256(_mm256_srlv_epi64(t, _mm256_set_epi64x(4, 4, 0, 0)), _mm256_set1_epi8(0x0F));
}

template <int NT> constexpr int kUnroll32 = NT == 1 ? 4 : 1;  // as in the AVX2 kernels

// Q4_0 (kOffset 8) and Q8_0 (kOffset 0): x = d * (q - offset).
template <class Block, int kOffset, int NT>
void dot_sym32_vnni(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    constexpr int U = kUnroll32<NT>;
    const auto* wb = static_cast<const Block*>(w);
    const BlockQ8A* ab[NT];
    __m256 acc[NT][U];
    for (int k = 0; k < NT; ++k) {
        ab[k] = reinterpret_cast<const BlockQ8A*>(static_cast<const uint8_t*>(a) + k * a_stride);
        for (int u = 0; u < U; ++u) acc[k][u] = _mm256_setzero_ps();
    }
    auto step = [&](int64_t i, int u) {
        const float dw = h2f(wb[i].d);
        if constexpr (kOffset == 0) {  // signed levels: |q| x sign(a, q)
            const __m256i q = load256(reinterpret_cast<const BlockQ8_0*>(&wb[i])->qs);
            const __m256i qabs = _mm256_sign_epi8(q, q);
            for (int k = 0; k < NT; ++k) {
                const __m256i sumi = dp(qabs, _mm256_sign_epi8(load256(ab[k][i].qs), q));
                acc[k][u] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab[k][i].d), _mm256_cvtepi32_ps(sumi), acc[k][u]);
            }
        } else {  // q.a - offset * sum(a), both exact in int32
            const __m256i q = nibbles32(reinterpret_cast<const BlockQ4_0*>(&wb[i])->qs);
            const __m256i off = _mm256_set1_epi8(kOffset);
            for (int k = 0; k < NT; ++k) {
                const __m256i av = load256(ab[k][i].qs);
                const __m256i sumi = _mm256_sub_epi32(dp(q, av), dp(off, av));
                acc[k][u] = _mm256_fmadd_ps(_mm256_set1_ps(dw * ab[k][i].d), _mm256_cvtepi32_ps(sumi), acc[k][u]);
            }
        }
    };
    const int64_t nb = n / kQK32;
    int64_t i = 0;
    for (; i + U <= nb; i += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) step(i + u, u);
    }
    for (; i < nb; ++i) step(i, 0);
    for (int k = 0; k < NT; ++k) {
        for (int u = 1; u < U; ++u) acc[k][0] = _mm256_add_ps(acc[k][0], acc[k][u]);
        out[k] = hsum256(acc[k][0]);
    }
}

// Q4_1: x = d * q + m; <x, a> = d*d_a*<q, qa> + m * s_a.
template <int NT>
void dot_q4_1_vnni(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    constexpr int U = kUnroll32<NT>;
    const auto* wb = static_cast<const BlockQ4_1*>(w);
    const BlockQ8A* ab[NT];
    __m256 acc[NT][U];
    __m128 acc_m[NT][U];  // lane 1: sum of m * s_a
    for (int k = 0; k < NT; ++k) {
        ab[k] = reinterpret_cast<const BlockQ8A*>(static_cast<const uint8_t*>(a) + k * a_stride);
        for (int u = 0; u < U; ++u) { acc[k][u] = _mm256_setzero_ps(); acc_m[k][u] = _mm_setzero_ps(); }
    }
    auto step = [&](int64_t i, int u) {
        const __m256i q = nibbles32(wb[i].qs);
        int32_t dm_bits;
        std::memcpy(&dm_bits, &wb[i].d, 4);
        const __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128(dm_bits));
        for (int k = 0; k < NT; ++k) {
            const __m128 ds = _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(&ab[k][i].d)));
            const __m128 prod = _mm_mul_ps(dm, ds);
            const __m256i sumi = dp(q, load256(ab[k][i].qs));
            acc[k][u] = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), _mm256_cvtepi32_ps(sumi), acc[k][u]);
            acc_m[k][u] = _mm_add_ps(acc_m[k][u], prod);
        }
    };
    const int64_t nb = n / kQK32;
    int64_t i = 0;
    for (; i + U <= nb; i += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) step(i + u, u);
    }
    for (; i < nb; ++i) step(i, 0);
    for (int k = 0; k < NT; ++k) {
        for (int u = 1; u < U; ++u) {
            acc[k][0] = _mm256_add_ps(acc[k][0], acc[k][u]);
            acc_m[k][0] = _mm_add_ps(acc_m[k][0], acc_m[k][u]);
        }
        out[k] = hsum256(acc[k][0]) + _mm_cvtss_f32(_mm_movehdup_ps(acc_m[k][0]));
    }
}

template <auto kKernel>
float single32(int64_t n, const void* w, const void* a) {
    float out;
    kKernel(n, w, a, 0, &out);
    return out;
}

template <bool kVnni>
void fill(DotTable& t) {
    if constexpr (kVnni) {
        t.set(GGMLType::Q4_0, single32<dot_sym32_vnni<BlockQ4_0, 8, 1>>, dot_sym32_vnni<BlockQ4_0, 8, 4>);
        t.set(GGMLType::Q8_0, single32<dot_sym32_vnni<BlockQ8_0, 0, 1>>, dot_sym32_vnni<BlockQ8_0, 0, 4>);
        t.set(GGMLType::Q4_1, single32<dot_q4_1_vnni<1>>, dot_q4_1_vnni<4>);
    }
    t.set(GGMLType::Q4_K, dot_k4_family<BlockQ4_K, false, kVnni>);
    t.set(GGMLType::Q5_K, dot_k4_family<BlockQ5_K, true, kVnni>);
    t.set(GGMLType::Q6_K, dot_q6_k<kVnni>);
}

}  // namespace

void fill_dot_table_avx512(DotTable& t, bool vnni) {
    if (vnni) fill<true>(t);
    else fill<false>(t);
}

}  // namespace pyllong::quant
