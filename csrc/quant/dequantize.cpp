// Scalar dequantization, one block at a time. The float operations are those of
// gguf.quants (same products, same order, no fused multiply-add: this file is compiled
// with -ffp-contract=off) so the results are bit-identical to it.
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/formats.h"
#include "quant/levels.h"

namespace pyllong::quant {

namespace {

// y = d * q for the symmetric formats (gguf: d * q.astype(float32)); y: (32,)
template <class Block>
void symmetric32(const Block& b, float* y) {
    int8_t q[kQK32];
    levels::of(b, q);
    const float d = fp16_to_fp32(b.d);
    for (int l = 0; l < kQK32; ++l) y[l] = d * static_cast<float>(q[l]);
}
// y = d * q + m (two roundings, as gguf)
template <class Block>
void affine32(const Block& b, float* y) {
    int8_t q[kQK32];
    levels::of(b, q);
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
    for (int l = 0; l < kQK32; ++l) y[l] = d * static_cast<float>(q[l]) + m;
}

// y: (256,)
void block_q2_k(const BlockQ2_K& b, float* y) {
    int8_t q[kQKK];
    levels::of(b, q);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int e = 0; e < kQKK; ++e) {
        const uint8_t sc = b.scales[e / 16];
        const float dl = d * static_cast<float>(sc & 0xF), ml = dmin * static_cast<float>(sc >> 4);
        y[e] = dl * static_cast<float>(q[e]) - ml;
    }
}

void block_q3_k(const BlockQ3_K& b, float* y) {
    int8_t q[kQKK];
    levels::of(b, q);
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < kQKK; ++e) y[e] = (d * static_cast<float>(q3k_scale(e / 16, b.scales))) * static_cast<float>(q[e]);
}

// Q4_K and Q5_K: y = (d*sc) * q - (dmin*m) per 32-sub-block
template <class Block>
void k4_family(const Block& b, float* y) {
    int8_t q[kQKK];
    levels::of(b, q);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    for (int s = 0; s < 8; ++s) {
        uint8_t sc, m;
        k4_scale_min(s, b.scales, &sc, &m);
        const float dl = d * static_cast<float>(sc), dm = dmin * static_cast<float>(m);
        for (int l = 0; l < 32; ++l) y[32 * s + l] = dl * static_cast<float>(q[32 * s + l]) - dm;
    }
}

void block_q6_k(const BlockQ6_K& b, float* y) {
    int8_t q[kQKK];
    levels::of(b, q);
    const float d = fp16_to_fp32(b.d);
    for (int e = 0; e < kQKK; ++e) y[e] = (d * static_cast<float>(b.scales[e / 16])) * static_cast<float>(q[e]);
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
        case GGMLType::Q4_0: return blocks<BlockQ4_0, kQK32>(symmetric32<BlockQ4_0>, src, dst, n);
        case GGMLType::Q4_1: return blocks<BlockQ4_1, kQK32>(affine32<BlockQ4_1>, src, dst, n);
        case GGMLType::Q5_0: return blocks<BlockQ5_0, kQK32>(symmetric32<BlockQ5_0>, src, dst, n);
        case GGMLType::Q5_1: return blocks<BlockQ5_1, kQK32>(affine32<BlockQ5_1>, src, dst, n);
        case GGMLType::Q8_0: return blocks<BlockQ8_0, kQK32>(symmetric32<BlockQ8_0>, src, dst, n);
        case GGMLType::Q2_K: return blocks<BlockQ2_K, kQKK>(block_q2_k, src, dst, n);
        case GGMLType::Q3_K: return blocks<BlockQ3_K, kQKK>(block_q3_k, src, dst, n);
        case GGMLType::Q4_K: return blocks<BlockQ4_K, kQKK>(k4_family<BlockQ4_K>, src, dst, n);
        case GGMLType::Q5_K: return blocks<BlockQ5_K, kQKK>(k4_family<BlockQ5_K>, src, dst, n);
        case GGMLType::Q6_K: return blocks<BlockQ6_K, kQKK>(block_q6_k, src, dst, n);
        default: throw InvalidArgument("dequantize: unsupported type");
    }
}

}  // namespace pyllong::quant
