// Integer levels of one weight block, unpacked to int8 (one value per element), plus
// the per-sub-block scale fields. Shared by the scalar dequantizer and the scalar dot
// products so that each layout is decoded in exactly one place.
#pragma once
#include <cstdint>
#include <cstring>

#include "quant/blocks.h"

namespace pyllong::quant::levels {

// q: (32,). Nibble l of qs is element l, high nibble element l + 16.
inline void nibbles32(const uint8_t* qs, int offset, int8_t* q) {
    for (int l = 0; l < 16; ++l) {
        q[l] = static_cast<int8_t>((qs[l] & 0xF) - offset);
        q[l + 16] = static_cast<int8_t>((qs[l] >> 4) - offset);
    }
}
// q: (32,) 5-bit values, minus offset.
inline void fivebit32(const uint8_t* qs, const uint8_t* qh4, int offset, int8_t* q) {
    uint32_t qh;
    std::memcpy(&qh, qh4, 4);
    for (int l = 0; l < 16; ++l) {
        q[l] = static_cast<int8_t>(((qs[l] & 0xF) | (((qh >> l) & 1) << 4)) - offset);
        q[l + 16] = static_cast<int8_t>(((qs[l] >> 4) | (((qh >> (l + 16)) & 1) << 4)) - offset);
    }
}

inline void of(const BlockQ4_0& b, int8_t* q) { nibbles32(b.qs, 8, q); }        // -8..7
inline void of(const BlockQ4_1& b, int8_t* q) { nibbles32(b.qs, 0, q); }        // 0..15
inline void of(const BlockQ5_0& b, int8_t* q) { fivebit32(b.qs, b.qh, 16, q); } // -16..15
inline void of(const BlockQ5_1& b, int8_t* q) { fivebit32(b.qs, b.qh, 0, q); }  // 0..31
inline void of(const BlockQ8_0& b, int8_t* q) { std::memcpy(q, b.qs, kQK32); }

// q: (256,) for the K-quants. Element e = 128*half + 32*j + l.
inline void of(const BlockQ2_K& b, int8_t* q) {  // 0..3
    for (int e = 0; e < kQKK; ++e)
        q[e] = static_cast<int8_t>((b.qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3);
}
inline void of(const BlockQ3_K& b, int8_t* q) {  // -4..3; a set hmask bit cancels the -4
    for (int e = 0; e < kQKK; ++e) {
        const int half = e / 128, j = (e % 128) / 32, l = e % 32;
        const int lo = (b.qs[half * 32 + l] >> (2 * j)) & 3;
        q[e] = static_cast<int8_t>(lo - (((b.hmask[l] >> (half * 4 + j)) & 1) ? 0 : 4));
    }
}
inline void of(const BlockQ4_K& b, int8_t* q) {  // 0..15; sub-block s = nibble (s&1) of qs[32*(s/2)+l]
    for (int e = 0; e < kQKK; ++e) q[e] = static_cast<int8_t>((b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) & 1))) & 0xF);
}
inline void of(const BlockQ5_K& b, int8_t* q) {  // 0..31; bit 4 of sub-block s is bit s of qh[l]
    for (int e = 0; e < kQKK; ++e)
        q[e] = static_cast<int8_t>(((b.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) & 1))) & 0xF) |
                                   (((b.qh[e % 32] >> (e / 32)) & 1) << 4));
}
inline void of(const BlockQ6_K& b, int8_t* q) {  // -32..31
    for (int e = 0; e < kQKK; ++e) {
        const int half = e / 128, w = e % 128, l = e % 32;
        const int lo = (b.ql[half * 64 + w % 64] >> (4 * (w / 64))) & 0xF;
        const int hi = (b.qh[half * 32 + l] >> (2 * (w / 32))) & 3;
        q[e] = static_cast<int8_t>((lo | (hi << 4)) - 32);
    }
}

}  // namespace pyllong::quant::levels
