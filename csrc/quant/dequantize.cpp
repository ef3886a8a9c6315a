// Scalar dequantization, one block at a time. The float operations are those of
// gguf.quants (same products, same order, no fused multiply-add: this file is compiled
// with -ffp-contract=off) so the results are bit-identical to it.
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/formats.h"

namespace pyllong::quant {

namespace {

// y: (32,)
void block_q4_0(const BlockQ4_0& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    for (int l = 0; l < kQK32 / 2; ++l) {
        y[l] = d * static_cast<float>((b.qs[l] & 0xF) - 8);
        y[l + 16] = d * static_cast<float>((b.qs[l] >> 4) - 8);
    }
}

void block_q4_1(const BlockQ4_1& b, float* y) {
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
    for (int l = 0; l < kQK32 / 2; ++l) {
        y[l] = d * static_cast<float>(b.qs[l] & 0xF) + m;
        y[l + 16] = d * static_cast<float>(b.qs[l] >> 4) + m;
    }
}

// The 5-bit values of a Q5_0 / Q5_1 block: q: (32,) in 0..31.
template <class Block>
void q5_values(const Block& b, int* q) {
    uint32_t qh;
    std::memcpy(&qh, b.qh, 4);
    for (int l = 0; l < kQK32 / 2; ++l) {
        q[l] = (b.qs[l] & 0xF) | (((qh >> l) & 1) << 4);
        q[l + 16] = (b.qs[l] >> 4) | (((qh >> (l + 16)) & 1) << 4);
    }
}

void block_q5_0(const BlockQ5_0& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    int q[kQK32];
    q5_values(b, q);
    for (int l = 0; l < kQK32; ++l) y[l] = d * static_cast<float>(q[l] - 16);
}

void block_q5_1(const BlockQ5_1& b, float* y) {
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
    int q[kQK32];
    q5_values(b, q);
    for (int l = 0; l < kQK32; ++l) y[l] = d * static_cast<float>(q[l]) + m;
}

void block_q8_0(const BlockQ8_0& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    for (int l = 0; l < kQK32; ++l) y[l] = static_cast<float>(b.qs[l]) * d;
}

// y: (256,)
void block_q2_k(const BlockQ2_K& b, float* y) {
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < kQKK; ++e) {
        const int half = e / 128, shift = 2 * ((e % 128) / 32), l = e % 32;
        const uint8_t sc = b.scales[e / 16];
        const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
        const int q = (b.qs[half * 32 + l] >> shift) & 3;
        y[e] = dl * static_cast<float>(q) - ml;
    }
}

void block_q3_k(const BlockQ3_K& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < kQKK; ++e) {
        const int half = e / 128, j = (e % 128) / 32, l = e % 32;
        const float dl = d * static_cast<float>(q3k_scale(e / 16, b.scales));
        const int lo = (b.qs[half * 32 + l] >> (2 * j)) & 3;
        const int hbit = (b.hmask[l] >> (half * 4 + j)) & 1;  // bit set: no -4 offset
        y[e] = dl * static_cast<float>(lo - (hbit ? 0 : 4));
    }
}

void block_q4_k(const BlockQ4_K& b, float* y) {
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int s = 0; s < 8; ++s) {  // sub-block s: nibble (s & 1) of qs[32*(s/2) + l]
        uint8_t sc, m;
        k4_scale_min(s, b.scales, &sc, &m);
        const float dl = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
        const uint8_t* q = b.qs + 32 * (s / 2);
        const int shift = 4 * (s & 1);
        for (int l = 0; l < 32; ++l) y[32 * s + l] = dl * static_cast<float>((q[l] >> shift) & 0xF) - dm;
    }
}

void block_q5_k(const BlockQ5_K& b, float* y) {
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int s = 0; s < 8; ++s) {
        uint8_t sc, m;
        k4_scale_min(s, b.scales, &sc, &m);
        const float dl = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
        const uint8_t* q = b.qs + 32 * (s / 2);
        const int shift = 4 * (s & 1);
        for (int l = 0; l < 32; ++l) {
            const int v = ((q[l] >> shift) & 0xF) | (((b.qh[l] >> s) & 1) << 4);
            y[32 * s + l] = dl * static_cast<float>(v) - dm;
        }
    }
}

void block_q6_k(const BlockQ6_K& b, float* y) {
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < kQKK; ++e) {
        const int half = e / 128, w = e % 128, l = e % 32;
        const int lo = (b.ql[half * 64 + w % 64] >> (4 * (w / 64))) & 0xF;
        const int hi = (b.qh[half * 32 + l] >> (2 * (w / 32))) & 3;
        const float dl = d * static_cast<float>(b.scales[e / 16]);
        y[e] = dl * static_cast<float>((lo | (hi << 4)) - 32);
    }
}

template <class Block, int kElems>
void blocks(void (*one)(const Block&, float*), const void* src, float* dst, int64_t n) {
    const auto* b = static_cast<const Block*>(src);  // (n / kElems) blocks
    for (int64_t i = 0; i < n / kElems; ++i) one(b[i], dst + i * kElems);
}

}  // namespace

void dequantize_row(GGMLType t, const void* src, float* dst, int64_t n) {
    row_bytes(t, n);  // validates type and length
    const auto* u16 = static_cast<const uint16_t*>(src);
    switch (t) {
        case GGMLType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
        case GGMLType::F16: for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(u16[i]); return;
        case GGMLType::BF16: for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(u16[i]); return;
        case GGMLType::Q4_0: return blocks<BlockQ4_0, kQK32>(block_q4_0, src, dst, n);
        case GGMLType::Q4_1: return blocks<BlockQ4_1, kQK32>(block_q4_1, src, dst, n);
        case GGMLType::Q5_0: return blocks<BlockQ5_0, kQK32>(block_q5_0, src, dst, n);
        case GGMLType::Q5_1: return blocks<BlockQ5_1, kQK32>(block_q5_1, src, dst, n);
        case GGMLType::Q8_0: return blocks<BlockQ8_0, kQK32>(block_q8_0, src, dst, n);
        case GGMLType::Q2_K: return blocks<BlockQ2_K, kQKK>(block_q2_k, src, dst, n);
        case GGMLType::Q3_K: return blocks<BlockQ3_K, kQKK>(block_q3_k, src, dst, n);
        case GGMLType::Q4_K: return blocks<BlockQ4_K, kQKK>(block_q4_k, src, dst, n);
        case GGMLType::Q5_K: return blocks<BlockQ5_K, kQKK>(block_q5_k, src, dst, n);
        case GGMLType::Q6_K: return blocks<BlockQ6_K, kQKK>(block_q6_k, src, dst, n);
        default: throw InvalidArgument("dequantize: unsupported type");
    }
}

}  // namespace pyllong::quant
