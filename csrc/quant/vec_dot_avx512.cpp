// AVX-512 (F/BW/VL/DQ) dot products, with an optional VNNI variant (vpdpbusd), chosen
// at run time. Legacy 32-blocks go two per 512-bit register; K-quant sub-block pairs
// fill one register. Integer sums are exact, as in the AVX2 and scalar kernels.
// Formats not listed in fill_dot_table_avx512 keep their AVX2 kernels.
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
inline __m512 join_scales(float lo, float hi) {  // lanes 0-7 = lo, 8-15 = hi
    return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1);
}

// Sums of 4 adjacent u8*s8 products as 16 int32, exact for u8 <= 128 (maddubs stage) or
// any u8 with VNNI.
template <bool kVnni>
inline __m512i dot_u8s8(__m512i u, __m512i s) {
    if constexpr (kVnni) return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
    else return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}
// Signed x signed: |x| times y negated where x < 0 (AVX-512 has no vpsignb). y > -128.
template <bool kVnni>
inline __m512i dot_s8s8(__m512i x, __m512i y) {
    const __mmask64 neg = _mm512_movepi8_mask(x);
    return dot_u8s8<kVnni>(_mm512_abs_epi8(x), _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y));
}

// ---- float weights ------------------------------------------------------------------

template <class Load16, class One>
float dot_float_weights(int64_t n, const float* x, Load16 load16, One one) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(load16(i), _mm512_loadu_ps(x + i), acc0);
        acc1 = _mm512_fmadd_ps(load16(i + 16), _mm512_loadu_ps(x + i + 16), acc1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < n; ++i) s += one(i) * x[i];
    return s;
}

float dot_f32(int64_t n, const void* w, const void* a) {
    const auto* wf = static_cast<const float*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a), [wf](int64_t i) { return _mm512_loadu_ps(wf + i); },
        [wf](int64_t i) { return wf[i]; });
}

float dot_f16(int64_t n, const void* w, const void* a) {
    const auto* wh = static_cast<const uint16_t*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a), [wh](int64_t i) { return _mm512_cvtph_ps(load256(wh + i)); },
        [wh](int64_t i) { return h2f(wh[i]); });
}

// ---- 32-element blocks x BlockQ8A, two blocks per step ------------------------------

inline __m256i nibbles32(const uint8_t* qs) {
    const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0F));
}
inline __m256i fifth_bits32(const uint8_t* qh4) {  // 0x10 where bit l of the 32-bit mask is set
    uint32_t x;
    std::memcpy(&x, qh4, 4);
    return _mm256_maskz_set1_epi8(x, 0x10);
}

// Unsigned levels of a legacy block, (32,) bytes.
inline __m256i levels_u(const BlockQ4_0& b) { return nibbles32(b.qs); }
inline __m256i levels_u(const BlockQ4_1& b) { return nibbles32(b.qs); }
inline __m256i levels_u(const BlockQ5_0& b) { return _mm256_or_si256(nibbles32(b.qs), fifth_bits32(b.qh)); }
inline __m256i levels_u(const BlockQ5_1& b) { return _mm256_or_si256(nibbles32(b.qs), fifth_bits32(b.qh)); }
inline __m256i levels_u(const BlockQ8_0& b) { return load256(b.qs); }

template <class Block, int kOffset, bool kVnni>  // x = d * (q - offset); Q8_0: offset 0, q signed
float dot_sym32(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const Block*>(w);     // (n/32,)
    const auto* ab = static_cast<const BlockQ8A*>(a);  // (n/32,)
    const int64_t nb = n / kQK32;
    const __m512i off = _mm512_set1_epi8(kOffset);
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i q = _mm512_sub_epi8(join(levels_u(wb[i]), levels_u(wb[i + 1])), off);
        const __m512i sumi = dot_s8s8<kVnni>(q, join(load256(ab[i].qs), load256(ab[i + 1].qs)));
        const __m512 d = join_scales(h2f(wb[i].d) * ab[i].d, h2f(wb[i + 1].d) * ab[i + 1].d);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
    }
    if (i < nb) {  // odd block count: the upper half is zero
        const __m512i q = _mm512_sub_epi8(join(levels_u(wb[i]), _mm256_set1_epi8(kOffset)), off);
        const __m512i sumi = dot_s8s8<kVnni>(q, join(load256(ab[i].qs), _mm256_setzero_si256()));
        acc = _mm512_fmadd_ps(join_scales(h2f(wb[i].d) * ab[i].d, 0.f), _mm512_cvtepi32_ps(sumi), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

template <class Block, bool kVnni>  // x = d * q + m
float dot_affine32(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const Block*>(w);
    const auto* ab = static_cast<const BlockQ8A*>(a);
    const int64_t nb = n / kQK32;
    __m512 acc = _mm512_setzero_ps();
    float acc_m0 = 0, acc_m1 = 0;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const __m512i sumi = dot_u8s8<kVnni>(join(levels_u(wb[i]), levels_u(wb[i + 1])),
                                             join(load256(ab[i].qs), load256(ab[i + 1].qs)));  // q <= 31
        const __m512 d = join_scales(h2f(wb[i].d) * ab[i].d, h2f(wb[i + 1].d) * ab[i + 1].d);
        acc = _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(sumi), acc);
        acc_m0 += h2f(wb[i].m) * ab[i].s;
        acc_m1 += h2f(wb[i + 1].m) * ab[i + 1].s;
    }
    if (i < nb) {
        const __m512i sumi = dot_u8s8<kVnni>(join(levels_u(wb[i]), _mm256_setzero_si256()),
                                             join(load256(ab[i].qs), _mm256_setzero_si256()));
        acc = _mm512_fmadd_ps(join_scales(h2f(wb[i].d) * ab[i].d, 0.f), _mm512_cvtepi32_ps(sumi), acc);
        acc_m0 += h2f(wb[i].m) * ab[i].s;
    }
    return _mm512_reduce_add_ps(acc) + (acc_m0 + acc_m1);
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
    float acc_m = 0;
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const Block& b = wb[i];
        uint8_t sc[8], m[8];
        int summ = 0;
        for (int j = 0; j < 8; ++j) {
            k4_scale_min(j, b.scales, &sc[j], &m[j]);
            summ += m[j] * (ab[i].bsums[2 * j] + ab[i].bsums[2 * j + 1]);
        }
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
        acc_m += ab[i].d * h2f(b.dmin) * static_cast<float>(summ);
    }
    return _mm512_reduce_add_ps(acc) - acc_m;
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

template <bool kVnni>
void fill(DotTable& t) {
    t.set(GGMLType::F32, dot_f32);
    t.set(GGMLType::F16, dot_f16);
    t.set(GGMLType::Q4_0, dot_sym32<BlockQ4_0, 8, kVnni>);
    t.set(GGMLType::Q5_0, dot_sym32<BlockQ5_0, 16, kVnni>);
    t.set(GGMLType::Q8_0, dot_sym32<BlockQ8_0, 0, kVnni>);
    t.set(GGMLType::Q4_1, dot_affine32<BlockQ4_1, kVnni>);
    t.set(GGMLType::Q5_1, dot_affine32<BlockQ5_1, kVnni>);
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
