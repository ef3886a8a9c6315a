// AArch64 NEON dot products, included by two translation units:
//   vec_dot_neon.cpp          plain Advanced SIMD (the AArch64 baseline),
//   vec_dot_neon_dotprod.cpp  compiled with +dotprod, where int8 dot products use SDOT.
// Which int8 product is used depends only on __ARM_FEATURE_DOTPROD (dot_s8 below); the
// dispatcher runs the +dotprod table only when the CPU reports HWCAP_ASIMDDP.
//
// As on x86, every integer sum is exact (bounds noted beside each) and only the block
// scaling is float, so the results differ from the scalar path only by float rounding.
// All weight levels are handled as signed int8: x = d * (q - offset) for the symmetric
// formats, the offset subtracted before the product (|q - offset| <= 32).
#pragma once
#ifndef __aarch64__
#error "vec_dot_neon_impl.h is for AArch64 only (CMakeLists.txt drops *_neon*.cpp elsewhere)"
#endif
#include <arm_neon.h>

#include <cstddef>
#include <cstring>

#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {
// Internal linkage on purpose: the two including translation units are compiled with
// different ISA flags, so their copies of these inline functions must never be merged
// by the linker (an SDOT copy called from the plain path would fault on older CPUs).
namespace {

// fp16 bits -> float with the FCVT instruction (base AArch64).
inline float h2f(uint16_t h) {
    __fp16 v;
    std::memcpy(&v, &h, 2);
    return static_cast<float>(v);
}

// acc (4 x int32) += sums of 4 adjacent products a*b (int8 x int8). Which lanes get
// which products differs between the two forms; callers only use lane sums or scale
// whole vectors, so both give the same total. Exact: |a*b| <= 128*128 in int16.
inline int32x4_t dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
    const int16x8_t hi = vmull_high_s8(a, b);
    return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

// The kernels take NT activation rows at once (a + k * a_stride, k < NT) and write NT
// dot products: the weight block is unpacked once and reused NT times (GEMM). NT = 1 is
// the GEMV kernel, which keeps kUnroll independent float accumulators to break the
// fma dependency chain.
template <class Act>
inline const Act* act_row(const void* a, size_t a_stride, int k) {
    return reinterpret_cast<const Act*>(static_cast<const uint8_t*>(a) + k * a_stride);
}
template <int NT>
constexpr int kUnroll = NT == 1 ? 4 : 1;

template <auto kKernel>
float single(int64_t n, const void* w, const void* a) {
    float out;
    kKernel(n, w, a, 0, &out);
    return out;
}

// ---- float weights: F32, F16, BF16 x f32 activations ------------------------------

// load4(i): 4 weights from element i as floats; one(i): weight i (tail).
template <class Load4, class One>
inline float dot_float_weights(int64_t n, const float* x, Load4 load4, One one) {
    float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0), acc2 = vdupq_n_f32(0), acc3 = vdupq_n_f32(0);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = vfmaq_f32(acc0, load4(i), vld1q_f32(x + i));
        acc1 = vfmaq_f32(acc1, load4(i + 4), vld1q_f32(x + i + 4));
        acc2 = vfmaq_f32(acc2, load4(i + 8), vld1q_f32(x + i + 8));
        acc3 = vfmaq_f32(acc3, load4(i + 12), vld1q_f32(x + i + 12));
    }
    for (; i + 4 <= n; i += 4) acc0 = vfmaq_f32(acc0, load4(i), vld1q_f32(x + i));
    float s = vaddvq_f32(vaddq_f32(vaddq_f32(acc0, acc1), vaddq_f32(acc2, acc3)));
    for (; i < n; ++i) s += one(i) * x[i];
    return s;
}

inline float dot_f32(int64_t n, const void* w, const void* a) {
    const auto* wf = static_cast<const float*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a), [wf](int64_t i) { return vld1q_f32(wf + i); },
        [wf](int64_t i) { return wf[i]; });
}

inline float dot_f16(int64_t n, const void* w, const void* a) {
    const auto* wh = static_cast<const uint16_t*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a),
        [wh](int64_t i) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(wh + i))); },
        [wh](int64_t i) { return h2f(wh[i]); });
}

inline float dot_bf16(int64_t n, const void* w, const void* a) {
    const auto* wh = static_cast<const uint16_t*>(w);
    return dot_float_weights(
        n, static_cast<const float*>(a),
        [wh](int64_t i) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(wh + i), 16)); },
        [wh](int64_t i) { return bf16_to_fp32(wh[i]); });
}

// ---- 32-element blocks x BlockQ8A --------------------------------------------------

// Signed levels of a legacy block: lo = elements 0..15, hi = elements 16..31.
struct Levels32 { int8x16_t lo, hi; };

// 16 bytes of packed nibbles: element l (< 16) = low nibble of qs[l], element 16 + l
// = high nibble, minus offset.
template <int kOffset>
inline Levels32 nibbles32(const uint8_t* qs) {
    const uint8x16_t v = vld1q_u8(qs);
    const int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F)));
    const int8x16_t hi = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));
    if constexpr (kOffset == 0) return {lo, hi};
    return {vsubq_s8(lo, vdupq_n_s8(kOffset)), vsubq_s8(hi, vdupq_n_s8(kOffset))};
}

// The fifth bit of Q5_0 / Q5_1: bit l of the 32-bit qh is bit 4 of element l. Returns
// 0x10 where set, for elements 0..15 (lo) and 16..31 (hi).
inline void fifth_bits32(const uint8_t* qh4, uint8x16_t* lo, uint8x16_t* hi) {
    uint32_t x;
    std::memcpy(&x, qh4, 4);
    const uint8x16_t bytes = vreinterpretq_u8_u32(vdupq_n_u32(x));  // qh bytes 0..3, repeated
    static const uint8_t kIdx[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                     2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
    static const uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x16_t bit = vld1q_u8(kBit), k10 = vdupq_n_u8(0x10);
    // byte k of a lane group = source byte k/8; vtst: 0xFF where bit k%8 is set
    *lo = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(kIdx)), bit), k10);
    *hi = vandq_u8(vtstq_u8(vqtbl1q_u8(bytes, vld1q_u8(kIdx + 16)), bit), k10);
}

template <int kOffset>
inline Levels32 fivebit32(const uint8_t* qs, const uint8_t* qh4) {
    const uint8x16_t v = vld1q_u8(qs);
    uint8x16_t h_lo, h_hi;
    fifth_bits32(qh4, &h_lo, &h_hi);
    const int8x16_t lo = vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), h_lo));
    const int8x16_t hi = vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), h_hi));
    if constexpr (kOffset == 0) return {lo, hi};
    return {vsubq_s8(lo, vdupq_n_s8(kOffset)), vsubq_s8(hi, vdupq_n_s8(kOffset))};
}

inline Levels32 levels(const BlockQ4_0& b) { return nibbles32<8>(b.qs); }    // -8..7
inline Levels32 levels(const BlockQ4_1& b) { return nibbles32<0>(b.qs); }    // 0..15
inline Levels32 levels(const BlockQ5_0& b) { return fivebit32<16>(b.qs, b.qh); }  // -16..15
inline Levels32 levels(const BlockQ5_1& b) { return fivebit32<0>(b.qs, b.qh); }   // 0..31
inline Levels32 levels(const BlockQ8_0& b) { return {vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}; }  // -128..127

// <q, a> of one 32-block as 4 int32 lanes; |sum| <= 32 * 128 * 127.
inline int32x4_t block_dot(const Levels32& q, const int8_t* a) {
    return dot_s8(dot_s8(vdupq_n_s32(0), q.lo, vld1q_s8(a)), q.hi, vld1q_s8(a + 16));
}

// Symmetric (Q4_0, Q5_0, Q8_0): sum d_w * d_a * <q, a>.
template <class Block, int NT>
void dot_sym32(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    constexpr int U = kUnroll<NT>;
    const auto* wb = static_cast<const Block*>(w);  // (n/32,)
    const BlockQ8A* ab[NT];                         // NT x (n/32,)
    float32x4_t acc[NT][U];
    for (int k = 0; k < NT; ++k) {
        ab[k] = act_row<BlockQ8A>(a, a_stride, k);
        for (int u = 0; u < U; ++u) acc[k][u] = vdupq_n_f32(0);
    }
    auto step = [&](int64_t i, int u) {
        const Levels32 q = levels(wb[i]);
        const float dw = h2f(wb[i].d);
        for (int k = 0; k < NT; ++k)
            acc[k][u] = vfmaq_n_f32(acc[k][u], vcvtq_f32_s32(block_dot(q, ab[k][i].qs)), dw * ab[k][i].d);
    };
    const int64_t nb = n / kQK32;
    int64_t i = 0;
    for (; i + U <= nb; i += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; ++u) step(i + u, u);
    }
    for (; i < nb; ++i) step(i, 0);
    for (int k = 0; k < NT; ++k) {
        for (int u = 1; u < U; ++u) acc[k][0] = vaddq_f32(acc[k][0], acc[k][u]);
        out[k] = vaddvq_f32(acc[k][0]);
    }
}

// Affine (Q4_1, Q5_1): x = d * q + m; <x, a> = d*d_a*<q, qa> + m * s_a.
template <class Block, int NT>
void dot_affine32(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    constexpr int U = kUnroll<NT>;
    const auto* wb = static_cast<const Block*>(w);
    const BlockQ8A* ab[NT];
    float32x4_t acc[NT][U];
    float acc_m[NT];
    for (int k = 0; k < NT; ++k) {
        ab[k] = act_row<BlockQ8A>(a, a_stride, k);
        acc_m[k] = 0;
        for (int u = 0; u < U; ++u) acc[k][u] = vdupq_n_f32(0);
    }
    auto step = [&](int64_t i, int u) {
        const Levels32 q = levels(wb[i]);
        const float dw = h2f(wb[i].d), mw = h2f(wb[i].m);
        for (int k = 0; k < NT; ++k) {
            acc[k][u] = vfmaq_n_f32(acc[k][u], vcvtq_f32_s32(block_dot(q, ab[k][i].qs)), dw * ab[k][i].d);
            acc_m[k] += mw * ab[k][i].s;
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
        for (int u = 1; u < U; ++u) acc[k][0] = vaddq_f32(acc[k][0], acc[k][u]);
        out[k] = vaddvq_f32(acc[k][0]) + acc_m[k];
    }
}

// ---- K-quants x BlockQ8K ------------------------------------------------------------

// <mins, sums of 32 activations per sub-block> for Q4_K / Q5_K: mins (8,) u8 and
// bsums (16,) int16 sums of 16; pairs summed in int16 (|.| <= 32*127), products in int32.
inline int32_t k4_min_sum(const uint8_t* mins, const int16_t* bsums) {
    const int16x8_t s32 = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));  // 8 sums of 32
    const int16x8_t m = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mins)));
    const int32x4_t p = vmlal_s16(vmull_s16(vget_low_s16(m), vget_low_s16(s32)), vget_high_s16(m), vget_high_s16(s32));
    return vaddvq_s32(p);
}

// Q4_K / Q5_K: 8 sub-blocks of 32; sub-blocks 2j and 2j+1 are the low and high nibbles
// of qs[32j .. 32j+32). For Q5_K, bit s of qh[l] is bit 4 of sub-block s.
template <class Block, bool kFifthBit, int NT>
void dot_k4_family(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    const auto* wb = static_cast<const Block*>(w);
    const BlockQ8K* ab[NT];
    float32x4_t acc[NT];
    float acc_m[NT];
    for (int k = 0; k < NT; ++k) {
        ab[k] = act_row<BlockQ8K>(a, a_stride, k);
        acc[k] = vdupq_n_f32(0);
        acc_m[k] = 0;
    }
    const uint8x16_t m4 = vdupq_n_u8(0x0F), k10 = vdupq_n_u8(0x10);
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const Block& b = wb[i];
        uint8_t scm[16];  // 8 scales, 8 mins
        k4_unpack_scales(b.scales, scm);
        uint8x16_t qh0, qh1;
        if constexpr (kFifthBit) {
            qh0 = vld1q_u8(reinterpret_cast<const BlockQ5_K*>(&b)->qh);
            qh1 = vld1q_u8(reinterpret_cast<const BlockQ5_K*>(&b)->qh + 16);
        }
        int32x4_t sumi[NT];
        for (int k = 0; k < NT; ++k) sumi[k] = vdupq_n_s32(0);
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
            const uint8x16_t b0 = vld1q_u8(b.qs + 32 * j), b1 = vld1q_u8(b.qs + 32 * j + 16);
            uint8x16_t lo0 = vandq_u8(b0, m4), lo1 = vandq_u8(b1, m4);  // sub-block 2j
            uint8x16_t hi0 = vshrq_n_u8(b0, 4), hi1 = vshrq_n_u8(b1, 4);  // sub-block 2j+1
            if constexpr (kFifthBit) {
                const uint8x16_t bit_lo = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * j)));
                const uint8x16_t bit_hi = vdupq_n_u8(static_cast<uint8_t>(1u << (2 * j + 1)));
                lo0 = vorrq_u8(lo0, vandq_u8(vtstq_u8(qh0, bit_lo), k10));
                lo1 = vorrq_u8(lo1, vandq_u8(vtstq_u8(qh1, bit_lo), k10));
                hi0 = vorrq_u8(hi0, vandq_u8(vtstq_u8(qh0, bit_hi), k10));
                hi1 = vorrq_u8(hi1, vandq_u8(vtstq_u8(qh1, bit_hi), k10));
            }
            const int sc_lo = scm[2 * j], sc_hi = scm[2 * j + 1];
            for (int k = 0; k < NT; ++k) {
                const int8_t* av = ab[k][i].qs + 64 * j;
                // per sub-block |<q, a>| <= 32*31*127; times a 6-bit scale, 8 sub-blocks: < 2^26
                const int32x4_t plo = dot_s8(dot_s8(vdupq_n_s32(0), vreinterpretq_s8_u8(lo0), vld1q_s8(av)),
                                             vreinterpretq_s8_u8(lo1), vld1q_s8(av + 16));
                const int32x4_t phi = dot_s8(dot_s8(vdupq_n_s32(0), vreinterpretq_s8_u8(hi0), vld1q_s8(av + 32)),
                                             vreinterpretq_s8_u8(hi1), vld1q_s8(av + 48));
                sumi[k] = vmlaq_n_s32(vmlaq_n_s32(sumi[k], plo, sc_lo), phi, sc_hi);
            }
        }
        const float d = h2f(b.d), dmin = h2f(b.dmin);
        for (int k = 0; k < NT; ++k) {
            acc[k] = vfmaq_n_f32(acc[k], vcvtq_f32_s32(sumi[k]), ab[k][i].d * d);
            acc_m[k] += ab[k][i].d * dmin * static_cast<float>(k4_min_sum(scm + 8, ab[k][i].bsums));
        }
    }
    for (int k = 0; k < NT; ++k) out[k] = vaddvq_f32(acc[k]) - acc_m[k];
}

// Q6_K: per 128-element half h, ql (64 bytes) gives the low nibbles and qh (32 bytes)
// two high bits each: element 128h + 32j + l has low nibble (j < 2: low, else high) of
// ql[64h + 32(j%2) + l] and bits 2j..2j+1 of qh[32h + l]. x = d * sc * (q - 32).
template <int NT>
void dot_q6_k(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
    const auto* wb = static_cast<const BlockQ6_K*>(w);
    const BlockQ8K* ab[NT];
    float32x4_t acc[NT];
    for (int k = 0; k < NT; ++k) { ab[k] = act_row<BlockQ8K>(a, a_stride, k); acc[k] = vdupq_n_f32(0); }
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
    const int8x16_t k32 = vdupq_n_s8(32);
    for (int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ6_K& b = wb[i];
        int32x4_t sumi[NT];
        for (int k = 0; k < NT; ++k) sumi[k] = vdupq_n_s32(0);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = b.ql + 64 * h;
            const uint8_t* qhp = b.qh + 32 * h;
            // [part][16-byte half]: part r = elements 128h + 32r .. +32
            const uint8x16_t l0a = vld1q_u8(ql), l0b = vld1q_u8(ql + 16);       // ql[0..32)
            const uint8x16_t l1a = vld1q_u8(ql + 32), l1b = vld1q_u8(ql + 48);  // ql[32..64)
            const uint8x16_t qa = vld1q_u8(qhp), qb = vld1q_u8(qhp + 16);
            uint8x16_t u[4][2] = {
                {vandq_u8(l0a, m4), vandq_u8(l0b, m4)},
                {vandq_u8(l1a, m4), vandq_u8(l1b, m4)},
                {vshrq_n_u8(l0a, 4), vshrq_n_u8(l0b, 4)},
                {vshrq_n_u8(l1a, 4), vshrq_n_u8(l1b, 4)},
            };
            u[0][0] = vorrq_u8(u[0][0], vshlq_n_u8(vandq_u8(qa, m3), 4));
            u[0][1] = vorrq_u8(u[0][1], vshlq_n_u8(vandq_u8(qb, m3), 4));
            u[1][0] = vorrq_u8(u[1][0], vshlq_n_u8(vandq_u8(vshrq_n_u8(qa, 2), m3), 4));
            u[1][1] = vorrq_u8(u[1][1], vshlq_n_u8(vandq_u8(vshrq_n_u8(qb, 2), m3), 4));
            u[2][0] = vorrq_u8(u[2][0], vshlq_n_u8(vandq_u8(vshrq_n_u8(qa, 4), m3), 4));
            u[2][1] = vorrq_u8(u[2][1], vshlq_n_u8(vandq_u8(vshrq_n_u8(qb, 4), m3), 4));
            u[3][0] = vorrq_u8(u[3][0], vshlq_n_u8(vshrq_n_u8(qa, 6), 4));
            u[3][1] = vorrq_u8(u[3][1], vshlq_n_u8(vshrq_n_u8(qb, 6), 4));
#pragma GCC unroll 4
            for (int r = 0; r < 4; ++r) {
                const int8x16_t q0 = vsubq_s8(vreinterpretq_s8_u8(u[r][0]), k32);  // -32..31
                const int8x16_t q1 = vsubq_s8(vreinterpretq_s8_u8(u[r][1]), k32);
                const int s0 = b.scales[8 * h + 2 * r], s1 = b.scales[8 * h + 2 * r + 1];
                for (int k = 0; k < NT; ++k) {
                    const int8_t* av = ab[k][i].qs + 128 * h + 32 * r;
                    // per 16-element sub-block |<q, a>| <= 16*32*127; times |scale| <= 128,
                    // 16 sub-blocks: < 2^28
                    const int32x4_t p0 = dot_s8(vdupq_n_s32(0), q0, vld1q_s8(av));
                    const int32x4_t p1 = dot_s8(vdupq_n_s32(0), q1, vld1q_s8(av + 16));
                    sumi[k] = vmlaq_n_s32(vmlaq_n_s32(sumi[k], p0, s0), p1, s1);
                }
            }
        }
        const float d = h2f(b.d);
        for (int k = 0; k < NT; ++k) acc[k] = vfmaq_n_f32(acc[k], vcvtq_f32_s32(sumi[k]), ab[k][i].d * d);
    }
    for (int k = 0; k < NT; ++k) out[k] = vaddvq_f32(acc[k]);
}

// The integer kernels of this translation unit into t (GEMV and 4-row GEMM entries).
inline void fill_integer_kernels(DotTable& t) {
    static_assert(kDotRows == 4, "the multi-row kernels below are instantiated for 4 rows");
    t.set(GGMLType::Q4_0, single<dot_sym32<BlockQ4_0, 1>>, dot_sym32<BlockQ4_0, 4>);
    t.set(GGMLType::Q5_0, single<dot_sym32<BlockQ5_0, 1>>, dot_sym32<BlockQ5_0, 4>);
    t.set(GGMLType::Q8_0, single<dot_sym32<BlockQ8_0, 1>>, dot_sym32<BlockQ8_0, 4>);
    t.set(GGMLType::Q4_1, single<dot_affine32<BlockQ4_1, 1>>, dot_affine32<BlockQ4_1, 4>);
    t.set(GGMLType::Q5_1, single<dot_affine32<BlockQ5_1, 1>>, dot_affine32<BlockQ5_1, 4>);
    t.set(GGMLType::Q4_K, single<dot_k4_family<BlockQ4_K, false, 1>>, dot_k4_family<BlockQ4_K, false, 4>);
    t.set(GGMLType::Q5_K, single<dot_k4_family<BlockQ5_K, true, 1>>, dot_k4_family<BlockQ5_K, true, 4>);
    t.set(GGMLType::Q6_K, single<dot_q6_k<1>>, dot_q6_k<4>);
}

}  // namespace
}  // namespace pyllong::quant
