// The x86 kernels over the repacked layouts of quant/repack.h: one driver (token tiles,
// stores) and one block step per layout, both templates on an integer-dot policy:
//   IsaAvx2: u8 x s8 by maddubs + madd (AVX2 files, 16 ymm registers: 4-token tiles);
//   IsaVnni: vpdpbusd on ymm (AVX512-VL + VNNI, 32 ymm registers: 8-token tiles).
// A lane of every vector is one of the 8 rows of a group; the activation bytes are
// broadcast 4 at a time (one 32-bit word), matching the 4-byte interleave of the weights.
//
// Included by repack_avx2.cpp and repack_avx512.cpp, each compiled with its own ISA flags:
// everything here has internal linkage (anonymous namespace) so the two instantiations never
// merge at link time.
#pragma once
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "quant/blocks.h"
#include "quant/repack.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {
namespace {

inline __m256i ld(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
// One 4-byte activation word broadcast to the 8 lanes.
inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}
// 8 fp16 scales (one per row) -> 8 floats.
inline __m256 scales8(const uint16_t* d) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(d))); }
// 8 bytes (one per row) -> 8 int32, unsigned / signed.
inline __m256i u8x8(const uint8_t* p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline __m256i s8x8(const int8_t* p) { return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }

struct IsaAvx2 {
    static constexpr int kTile = 4;
    static constexpr bool kVnni = false;
    // acc + per lane the sum of 4 u8 x s8 products (exact while u8 * 127 * 2 < 2^15)
    static __m256i dot(__m256i acc, __m256i u, __m256i s) {
        return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
    }
    // the same, each lane's sum times the lane's 16-bit scale (scale in both halves of the lane)
    static __m256i dot_scaled(__m256i acc, __m256i u, __m256i s, __m256i sc16) {
        return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), sc16));
    }
};

#ifdef __AVX512VNNI__
struct IsaVnni {
    static constexpr int kTile = 8;
    static constexpr bool kVnni = true;
    static __m256i dot(__m256i acc, __m256i u, __m256i s) { return _mm256_dpbusd_epi32(acc, u, s); }  // any u8: exact
};
#endif

// int32 scale per lane -> the same in both 16-bit halves (for madd), 0 <= |sc| < 2^15
inline __m256i dup16(__m256i sc32) {
    return _mm256_or_si256(_mm256_and_si256(sc32, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(sc32, 16));
}

// ---- block steps: acc[t] += the 8 rows' dot products with token t over one block ------

// Independent integer partial sums per token in the 32-element formats: with few tokens,
// one chain of dependent dot instructions per block would limit the loads in flight.
template <int T>
constexpr int kSplit = T == 1 ? 4 : T == 2 ? 2 : 1;

// The integer sums of nibble levels q (0..15) times activations over one 32-element block,
// per lane (row) and token: element l < 16 is the low nibble of byte l, 16 + l the high.
template <class Isa, int T>
inline void nibble_sums(const uint8_t* qs, const BlockQ8A* const* a, __m256i* sum) {
    constexpr int S = kSplit<T>;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256i is[T][S];
    for (int t = 0; t < T; ++t)
        for (int s = 0; s < S; ++s) is[t][s] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
        const __m256i v = ld(qs + 32 * c);
        const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        for (int t = 0; t < T; ++t) {
            is[t][(2 * c) % S] = Isa::dot(is[t][(2 * c) % S], lo, bcast4(a[t]->qs + 4 * c));  // elements 4c..4c+3
            is[t][(2 * c + 1) % S] = Isa::dot(is[t][(2 * c + 1) % S], hi, bcast4(a[t]->qs + 16 + 4 * c));  // 16+4c..
        }
    }
    for (int t = 0; t < T; ++t) {
        sum[t] = is[t][0];
        for (int k = 1; k < S; ++k) sum[t] = _mm256_add_epi32(sum[t], is[t][k]);
    }
}

// Q4_0 (P = BlockQ4_0x8), x = d (q - 8): d_w * (d_a * sum - 8 * s_a) with s_a = d_a * sum(a)
// (BlockQ8A::s). Q4_1 (P = BlockQ4_1x8), x = d q + m: d_w * d_a * sum + m_w * s_a.
template <class P>
struct LayoutNibbles {
    using Packed = P;
    using Act = BlockQ8A;
    static constexpr int kBlock = kQK32;
    template <class Isa, int T>
    static void step(const Packed& b, const Act* const* a, __m256* acc) {
        __m256i sum[T];
        nibble_sums<Isa, T>(b.qs, a, sum);
        const __m256 dw = scales8(b.d);
        for (int t = 0; t < T; ++t) {
            const __m256 st = _mm256_cvtepi32_ps(sum[t]);
            if constexpr (std::is_same_v<P, BlockQ4_1x8>) {
                acc[t] = _mm256_fmadd_ps(scales8(b.m), _mm256_set1_ps(a[t]->s), acc[t]);
                acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a[t]->d)), st, acc[t]);
            } else {
                const __m256 f = _mm256_fmsub_ps(st, _mm256_set1_ps(a[t]->d), _mm256_set1_ps(8.0f * a[t]->s));
                acc[t] = _mm256_fmadd_ps(dw, f, acc[t]);
            }
        }
    }
};
using LayoutQ4_0 = LayoutNibbles<BlockQ4_0x8>;
using LayoutQ4_1 = LayoutNibbles<BlockQ4_1x8>;

// Q8_0: x = d q, q signed. AVX2: |q| x sign(a, q) (exact); VNNI: (q + 128) as u8 and
// d_w * (d_a * sum - 128 * s_a).
struct LayoutQ8_0 {
    using Packed = BlockQ8_0x8;
    using Act = BlockQ8A;
    static constexpr int kBlock = kQK32;
    template <class Isa, int T>
    static void step(const Packed& b, const Act* const* a, __m256* acc) {
        constexpr int S = kSplit<T>;
        __m256i is[T][S];
        for (int t = 0; t < T; ++t)
            for (int s = 0; s < S; ++s) is[t][s] = _mm256_setzero_si256();
        for (int c = 0; c < 8; ++c) {
            const __m256i v = ld(b.qs + 32 * c);
            if constexpr (Isa::kVnni) {
                const __m256i u = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
                for (int t = 0; t < T; ++t) is[t][c % S] = Isa::dot(is[t][c % S], u, bcast4(a[t]->qs + 4 * c));
            } else {
                const __m256i u = _mm256_sign_epi8(v, v);
                for (int t = 0; t < T; ++t)
                    is[t][c % S] = Isa::dot(is[t][c % S], u, _mm256_sign_epi8(bcast4(a[t]->qs + 4 * c), v));
            }
        }
        const __m256 dw = scales8(b.d);
        for (int t = 0; t < T; ++t) {
            __m256i s = is[t][0];
            for (int k = 1; k < S; ++k) s = _mm256_add_epi32(s, is[t][k]);
            __m256 f;
            if constexpr (Isa::kVnni)
                f = _mm256_fmsub_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a[t]->d), _mm256_set1_ps(128.0f * a[t]->s));
            else
                f = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(a[t]->d));
            acc[t] = _mm256_fmadd_ps(dw, f, acc[t]);
        }
    }
};

// The 8 sums of 32 activations of a BlockQ8K (int16, |.| <= 4064) as 4 int32 pairs
// (sums of sub-blocks 2p, 2p+1), in both 128-bit lanes.
inline __m256i q8k_sums32(const BlockQ8K& a) {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums));
    const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.bsums + 8));
    return _mm256_broadcastsi128_si256(_mm_hadd_epi16(lo, hi));
}
// Lane p (0..3) of a 128-bit pair vector broadcast to all 8 lanes.
template <int P>
inline __m256i pair(__m256i v) { return _mm256_shuffle_epi32(v, P * 0x55); }

// Q4_K: x = d sc_j q - dmin m_j per sub-block j of 32. Per lane: sum_j sc_j <q_j, a_j>
// exactly in int32 (15 * 127 * 63 * 256 < 2^31), and sum_j m_j sum(a_j) by madd of
// 16-bit pairs; then d_a (d * isum - dmin * msum).
struct LayoutQ4_K {
    using Packed = BlockQ4_Kx8;
    using Act = BlockQ8K;
    static constexpr int kBlock = kQKK;
    template <class Isa, int T>
    static void step(const Packed& b, const Act* const* a, __m256* acc) {
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        __m256i tot[T];
        for (int t = 0; t < T; ++t) tot[t] = _mm256_setzero_si256();
        for (int j = 0; j < 8; ++j) {  // sub-block j: nibbles (j odd: high) of words 8 (j / 2) .. + 8
            const uint8_t* q = b.qs + 256 * (j / 2);
            auto w_of = [&](int c) {
                const __m256i v = ld(q + 32 * c);
                return (j & 1) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4) : _mm256_and_si256(v, m4);
            };
            const __m256i sc = u8x8(b.sc[j]);
            if constexpr (Isa::kVnni) {
                __m256i s[T];
                for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
                for (int c = 0; c < 8; ++c) {
                    const __m256i w = w_of(c);
                    for (int t = 0; t < T; ++t) s[t] = Isa::dot(s[t], w, bcast4(a[t]->qs + 32 * j + 4 * c));
                }
                for (int t = 0; t < T; ++t) tot[t] = _mm256_add_epi32(tot[t], _mm256_mullo_epi32(s[t], sc));
            } else {
                const __m256i sc16 = dup16(sc);
                for (int c = 0; c < 8; ++c) {
                    const __m256i w = w_of(c);
                    for (int t = 0; t < T; ++t) tot[t] = Isa::dot_scaled(tot[t], w, bcast4(a[t]->qs + 32 * j + 4 * c), sc16);
                }
            }
        }
        __m256i mp[4];  // lane r: (m_2p, m_2p+1) of row r as 16-bit pair
        for (int p = 0; p < 4; ++p) mp[p] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.m2[p])));
        const __m256 d = scales8(b.d), dmin = scales8(b.dmin);
        for (int t = 0; t < T; ++t) {
            const __m256i bs = q8k_sums32(*a[t]);
            __m256i ms = _mm256_madd_epi16(mp[0], pair<0>(bs));
            ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mp[1], pair<1>(bs)));
            ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mp[2], pair<2>(bs)));
            ms = _mm256_add_epi32(ms, _mm256_madd_epi16(mp[3], pair<3>(bs)));
            const __m256 da = _mm256_set1_ps(a[t]->d);
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, da), _mm256_cvtepi32_ps(tot[t]), acc[t]);
            acc[t] = _mm256_fnmadd_ps(_mm256_mul_ps(dmin, da), _mm256_cvtepi32_ps(ms), acc[t]);
        }
    }
};

// Q6_K: x = d sc_j (q - 32) per sub-block j of 16, q in [0, 64). Per lane:
// sum_j sc_j <q_j, a_j> exactly (63 * 127 * 128 * 256 < 2^31), minus 32 sum_j sc_j sum(a_j)
// (madd of 16-bit pairs with the activation sums of 16).
struct LayoutQ6_K {
    using Packed = BlockQ6_Kx8;
    using Act = BlockQ8K;
    static constexpr int kBlock = kQKK;
    // Levels of elements 128h + 32K + 4c .. + 4 of the 8 rows (K constant: the nibble and
    // bit-pair selection compile to fixed shifts).
    template <int K>
    static inline __attribute__((always_inline)) __m256i levels(const Packed& b, int h, int c) {
        const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
        const __m256i l4 = ld(b.w[8 * h + c][K & 1]);
        const __m256i hb = ld(b.w[8 * h + c][2]);
        const __m256i lo = (K & 2) ? _mm256_and_si256(_mm256_srli_epi16(l4, 4), m4) : _mm256_and_si256(l4, m4);
        const __m256i hi = _mm256_and_si256(K ? _mm256_srli_epi16(hb, 2 * K) : hb, m2);
        return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
    }
    // tot[t] += the scaled sums of sub-blocks 8h + 2K and 8h + 2K + 1 (16 elements each).
    template <class Isa, int T, int K>
    static inline __attribute__((always_inline)) void sub_blocks(const Packed& b, const Act* const* a, int h,
                                                                 __m256i* tot) {
        for (int half = 0; half < 2; ++half) {
            const int j = 8 * h + 2 * K + half;
            const __m256i sc = s8x8(b.sc[j]);
            const int8_t* ap[T];
            for (int t = 0; t < T; ++t) ap[t] = a[t]->qs + 128 * h + 32 * K + 16 * half;
            if constexpr (Isa::kVnni) {
                __m256i s[T];
                for (int t = 0; t < T; ++t) s[t] = _mm256_setzero_si256();
                for (int c = 0; c < 4; ++c) {
                    const __m256i w = levels<K>(b, h, 4 * half + c);
                    for (int t = 0; t < T; ++t) s[t] = Isa::dot(s[t], w, bcast4(ap[t] + 4 * c));
                }
                for (int t = 0; t < T; ++t) tot[t] = _mm256_add_epi32(tot[t], _mm256_mullo_epi32(s[t], sc));
            } else {
                const __m256i sc16 = dup16(sc);
                for (int c = 0; c < 4; ++c) {
                    const __m256i w = levels<K>(b, h, 4 * half + c);
                    for (int t = 0; t < T; ++t) tot[t] = Isa::dot_scaled(tot[t], w, bcast4(ap[t] + 4 * c), sc16);
                }
            }
        }
    }
    // Few tokens (GEMV): each ql/ql/qh word triple is loaded once and gives the levels of
    // four sub-blocks (8h + 2K + half, K < 4), accumulated separately: about half the
    // operations of sub_blocks, which re-derives the levels per sub-block (fine when a
    // token tile amortizes it, and it needs 4x fewer accumulators).
    template <class Isa, int T>
    static inline __attribute__((always_inline)) void shared_words(const Packed& b, const Act* const* a, int h,
                                                                   int half, __m256i* tot) {
        const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
        const __m256i sc0 = s8x8(b.sc[8 * h + half]), sc1 = s8x8(b.sc[8 * h + 2 + half]);
        const __m256i sc2 = s8x8(b.sc[8 * h + 4 + half]), sc3 = s8x8(b.sc[8 * h + 6 + half]);
        __m256i s0[T], s1[T], s2[T], s3[T];
        for (int t = 0; t < T; ++t) s0[t] = s1[t] = s2[t] = s3[t] = _mm256_setzero_si256();
#pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
            const int cc = 4 * half + c;
            const __m256i A = ld(b.w[8 * h + cc][0]), B = ld(b.w[8 * h + cc][1]), H = ld(b.w[8 * h + cc][2]);
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(A, m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), m30));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(B, m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), m30));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), m4), _mm256_and_si256(H, m30));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B, 4), m4),
                                               _mm256_and_si256(_mm256_srli_epi16(H, 2), m30));
            for (int t = 0; t < T; ++t) {
                const int8_t* ap = a[t]->qs + 128 * h + 16 * half + 4 * c;
                if constexpr (Isa::kVnni) {
                    s0[t] = Isa::dot(s0[t], q0, bcast4(ap));
                    s1[t] = Isa::dot(s1[t], q1, bcast4(ap + 32));
                    s2[t] = Isa::dot(s2[t], q2, bcast4(ap + 64));
                    s3[t] = Isa::dot(s3[t], q3, bcast4(ap + 96));
                } else {
                    s0[t] = Isa::dot_scaled(s0[t], q0, bcast4(ap), dup16(sc0));
                    s1[t] = Isa::dot_scaled(s1[t], q1, bcast4(ap + 32), dup16(sc1));
                    s2[t] = Isa::dot_scaled(s2[t], q2, bcast4(ap + 64), dup16(sc2));
                    s3[t] = Isa::dot_scaled(s3[t], q3, bcast4(ap + 96), dup16(sc3));
                }
            }
        }
        for (int t = 0; t < T; ++t) {
            if constexpr (Isa::kVnni) {
                const __m256i p = _mm256_add_epi32(_mm256_mullo_epi32(s0[t], sc0), _mm256_mullo_epi32(s1[t], sc1));
                const __m256i q = _mm256_add_epi32(_mm256_mullo_epi32(s2[t], sc2), _mm256_mullo_epi32(s3[t], sc3));
                tot[t] = _mm256_add_epi32(tot[t], _mm256_add_epi32(p, q));
            } else {
                tot[t] = _mm256_add_epi32(tot[t], _mm256_add_epi32(_mm256_add_epi32(s0[t], s1[t]), _mm256_add_epi32(s2[t], s3[t])));
            }
        }
    }
    template <class Isa, int T>
    static void step(const Packed& b, const Act* const* a, __m256* acc) {
        __m256i tot[T];
        for (int t = 0; t < T; ++t) tot[t] = _mm256_setzero_si256();
        if constexpr (T <= 2) {
            for (int h = 0; h < 2; ++h) {
                shared_words<Isa, T>(b, a, h, 0, tot);
                shared_words<Isa, T>(b, a, h, 1, tot);
            }
        } else {
            for (int h = 0; h < 2; ++h) {
                sub_blocks<Isa, T, 0>(b, a, h, tot);
                sub_blocks<Isa, T, 1>(b, a, h, tot);
                sub_blocks<Isa, T, 2>(b, a, h, tot);
                sub_blocks<Isa, T, 3>(b, a, h, tot);
            }
        }
        // lane r: (sc_2p, sc_2p+1) of row r as signed 16-bit pairs
        __m256i sp[8];
        for (int p = 0; p < 8; ++p) {
            const __m128i s0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc[2 * p]));
            const __m128i s1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b.sc[2 * p + 1]));
            sp[p] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s0, s1));
        }
        const __m256 d = scales8(b.d);
        for (int t = 0; t < T; ++t) {
            // activation sums of 16 as int32 pairs (bsums 2p, 2p+1), each pair broadcast
            const __m256i b0 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[t]->bsums)));
            const __m256i b1 = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a[t]->bsums + 8)));
            __m256i cs = _mm256_madd_epi16(sp[0], pair<0>(b0));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[1], pair<1>(b0)));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[2], pair<2>(b0)));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[3], pair<3>(b0)));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[4], pair<0>(b1)));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[5], pair<1>(b1)));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[6], pair<2>(b1)));
            cs = _mm256_add_epi32(cs, _mm256_madd_epi16(sp[7], pair<3>(b1)));
            const __m256i isum = _mm256_sub_epi32(tot[t], _mm256_slli_epi32(cs, 5));  // exact: |.| < 2^31
            acc[t] = _mm256_fmadd_ps(_mm256_mul_ps(d, _mm256_set1_ps(a[t]->d)), _mm256_cvtepi32_ps(isum), acc[t]);
        }
    }
};

// ---- the driver: T tokens x 8 rows per pass over the group's blocks ------------------

template <class Isa, class L, int T>
void packed_tile(int64_t nb, const typename L::Packed* w, const uint8_t* a, size_t a_stride, float* y, size_t y_stride,
                 int n_rows) {
    using Act = typename L::Act;
    __m256 acc[T];
    const Act* ab[T];
    for (int t = 0; t < T; ++t) {
        acc[t] = _mm256_setzero_ps();
        ab[t] = reinterpret_cast<const Act*>(a + t * a_stride);
    }
    for (int64_t i = 0; i < nb; ++i) {
        const Act* ai[T];
        for (int t = 0; t < T; ++t) ai[t] = ab[t] + i;
        L::template step<Isa, T>(w[i], ai, acc);
    }
    for (int t = 0; t < T; ++t) {
        float* out = y + t * y_stride;
        if (n_rows == kPackRows) {
            _mm256_storeu_ps(out, acc[t]);
        } else {
            alignas(32) float tmp[kPackRows];
            _mm256_store_ps(tmp, acc[t]);
            for (int r = 0; r < n_rows; ++r) out[r] = tmp[r];
        }
    }
}

// DotTable::packed entry: one group of 8 rows (n_rows of them real) x n_tok tokens.
template <class Isa, class L>
void packed_gemm(int64_t n_in, const void* w, const void* a, size_t a_stride, int64_t n_tok, float* y, size_t y_stride,
                 int n_rows) {
    constexpr int T = Isa::kTile;
    const int64_t nb = n_in / L::kBlock;
    const auto* wb = static_cast<const typename L::Packed*>(w);
    const auto* ab = static_cast<const uint8_t*>(a);
    int64_t t = 0;
    for (; t + T <= n_tok; t += T) packed_tile<Isa, L, T>(nb, wb, ab + t * a_stride, a_stride, y + t * y_stride, y_stride, n_rows);
    if constexpr (T > 4) {
        if (t + 4 <= n_tok) {
            packed_tile<Isa, L, 4>(nb, wb, ab + t * a_stride, a_stride, y + t * y_stride, y_stride, n_rows);
            t += 4;
        }
    }
    if (t + 2 <= n_tok) {
        packed_tile<Isa, L, 2>(nb, wb, ab + t * a_stride, a_stride, y + t * y_stride, y_stride, n_rows);
        t += 2;
    }
    if (t < n_tok) packed_tile<Isa, L, 1>(nb, wb, ab + t * a_stride, a_stride, y + t * y_stride, y_stride, n_rows);
}

template <class Isa>
void fill_packed(DotTable& t) {
    t.set_packed(GGMLType::Q4_0, packed_gemm<Isa, LayoutQ4_0>);
    t.set_packed(GGMLType::Q4_1, packed_gemm<Isa, LayoutQ4_1>);
    t.set_packed(GGMLType::Q8_0, packed_gemm<Isa, LayoutQ8_0>);
    t.set_packed(GGMLType::Q4_K, packed_gemm<Isa, LayoutQ4_K>);
    t.set_packed(GGMLType::Q6_K, packed_gemm<Isa, LayoutQ6_K>);
}

}  // namespace
}  // namespace pyllong::quant
