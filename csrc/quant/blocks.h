// Block layouts of the ggml quantized formats, byte for byte as they lie in a GGUF file
// (ggml-common.h). Every struct is packed by construction (only uint8/uint16 members,
// 2-byte alignment at most) and its size is checked against csrc/gguf/types.cpp.
#pragma once
#include <cstdint>
#include <cstring>

namespace pyllong::quant {

constexpr int kQK32 = 32;   // elements per block of the "legacy" formats
constexpr int kQKK = 256;   // elements per super-block of the K-quants
constexpr int kKScaleBytes = 12;  // packed 6-bit scales+mins of Q4_K / Q5_K

// fp16 fields are stored as raw uint16 bits; convert with core/fp16.h.
struct BlockQ4_0 { uint16_t d; uint8_t qs[kQK32 / 2]; };              // x = d * (q - 8)
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[kQK32 / 2]; };           // x = d * q + m
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[kQK32 / 2]; };  // x = d * (q - 16)
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[kQK32 / 2]; };  // x = d * q + m
struct BlockQ8_0 { uint16_t d; int8_t qs[kQK32]; };                   // x = d * q

// Q2_K: 16 sub-blocks of 16; scales[i] = scale (low nibble) | min (high nibble).
struct BlockQ2_K { uint8_t scales[kQKK / 16]; uint8_t qs[kQKK / 4]; uint16_t d, dmin; };
// Q3_K: 16 sub-blocks of 16, 6-bit signed scales packed in 12 bytes; hmask holds bit 2.
struct BlockQ3_K { uint8_t hmask[kQKK / 8]; uint8_t qs[kQKK / 4]; uint8_t scales[12]; uint16_t d; };
// Q4_K: 8 sub-blocks of 32, 6-bit scales and mins. x = d*sc*q - dmin*m.
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[kKScaleBytes]; uint8_t qs[kQKK / 2]; };
// Q5_K: Q4_K plus a fifth bit per element in qh.
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[kKScaleBytes]; uint8_t qh[kQKK / 8]; uint8_t qs[kQKK / 2]; };
// Q6_K: 16 sub-blocks of 16, int8 scales; low 4 bits in ql, high 2 bits in qh. x = d*sc*(q-32).
struct BlockQ6_K { uint8_t ql[kQKK / 2]; uint8_t qh[kQKK / 4]; int8_t scales[kQKK / 16]; uint16_t d; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34, "legacy block sizes");
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210, "K-quant block sizes");

// Activation blocks (never stored in files): x quantized on the fly for the dot products.
// The scale is a float (not fp16 as in ggml) so the only activation error is int8 rounding.
struct BlockQ8A { float d; float s; int8_t qs[kQK32]; };  // s = d * sum(qs), used by Q4_1/Q5_1
struct BlockQ8K { float d; int8_t qs[kQKK]; int16_t bsums[kQKK / 16]; };  // bsums: sums of 16

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void k4_scale_min(int j, const uint8_t* s, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// All 8 scales and 8 mins of a Q4_K / Q5_K block at once with 32-bit operations (what
// k4_scale_min gives one by one): out[0..7] = scales, out[8..15] = mins.
inline void k4_unpack_scales(const uint8_t* s, uint8_t* out) {
    constexpr uint32_t kLow6 = 0x3f3f3f3f, kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
    uint32_t u[3], r[4];
    std::memcpy(u, s, 12);
    r[0] = u[0] & kLow6;                                      // sc 0..3
    r[1] = (u[2] & kLow4) | (((u[0] >> 6) & kLow2) << 4);     // sc 4..7
    r[2] = u[1] & kLow6;                                      // m 0..3
    r[3] = ((u[2] >> 4) & kLow4) | (((u[1] >> 6) & kLow2) << 4);  // m 4..7
    std::memcpy(out, r, 16);
}

// The signed 6-bit scale of sub-block j (0..15) of a Q3_K block.
inline int q3k_scale(int j, const uint8_t* s) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}

// All 16 signed scales of a Q3_K block at once with 32-bit operations (what q3k_scale
// gives one by one): out (16,) in [-32, 31].
inline void q3k_unpack_scales(const uint8_t* s, int8_t* out) {
    constexpr uint32_t kLow4 = 0x0f0f0f0f, kLow2 = 0x03030303;
    uint32_t a[3], r[4];
    std::memcpy(a, s, 12);
    r[0] = (a[0] & kLow4) | ((a[2] & kLow2) << 4);
    r[1] = (a[1] & kLow4) | (((a[2] >> 2) & kLow2) << 4);
    r[2] = ((a[0] >> 4) & kLow4) | (((a[2] >> 4) & kLow2) << 4);
    r[3] = ((a[1] >> 4) & kLow4) | (((a[2] >> 6) & kLow2) << 4);
    uint8_t u[16];
    std::memcpy(u, r, 16);
    for (int j = 0; j < 16; ++j) out[j] = static_cast<int8_t>(u[j] - 32);
}

}  // namespace pyllong::quant
