// Scalar quantization from f32, following ggml's reference quantizers: round-to-nearest
// for the 32-element formats (the same float operations as gguf.quants, so the bytes
// match it), and the scale searches of quantize_row_qN_K_ref for the K-quants.
// Compiled with -ffp-contract=off so results do not depend on FMA contraction.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/formats.h"
#include "quant/kquant_search.h"

namespace pyllong::quant {

namespace {

// Value of largest magnitude, sign kept (first one on ties, as numpy's argmax).
float signed_absmax(const float* x, int n) {
    float amax = 0, max = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) { amax = std::fabs(x[i]); max = x[i]; }
    return max;
}
float inverse_or_zero(float d) { return d == 0 ? 0.f : 1.f / d; }

// Symmetric 4/5-bit: x (32,) -> q (32,) in [0, 2*half), d = max / -half.
float symmetric_levels(const float* x, int half, int* q) {
    const float d = signed_absmax(x, kQK32) / static_cast<float>(-half);
    const float id = inverse_or_zero(d);
    for (int l = 0; l < kQK32; ++l)
        q[l] = std::min(2 * half - 1, static_cast<int>(x[l] * id + (static_cast<float>(half) + 0.5f)));
    return d;
}

// Asymmetric 4/5-bit: x (32,) -> q in [0, nmax], x ~ d*q + min.
float affine_levels(const float* x, int nmax, float* min_out, int* q) {
    float mn = x[0], mx = x[0];
    for (int l = 1; l < kQK32; ++l) { mn = std::min(mn, x[l]); mx = std::max(mx, x[l]); }
    const float d = (mx - mn) / static_cast<float>(nmax);
    const float id = inverse_or_zero(d);
    for (int l = 0; l < kQK32; ++l) q[l] = std::min(nmax, static_cast<int>((x[l] - mn) * id + 0.5f));
    *min_out = mn;
    return d;
}

void pack_nibbles(const int* q, uint8_t* qs) {  // q (32,) -> qs (16,), element l+16 high
    for (int l = 0; l < 16; ++l) qs[l] = static_cast<uint8_t>((q[l] & 0xF) | ((q[l + 16] & 0xF) << 4));
}
void pack_fifth_bits(const int* q, uint8_t* qh) {  // bit 4 of q (32,) -> 32-bit mask
    uint32_t h = 0;
    for (int l = 0; l < kQK32; ++l) h |= static_cast<uint32_t>((q[l] >> 4) & 1) << l;
    std::memcpy(qh, &h, 4);
}

void q4_0(const float* x, BlockQ4_0& b) {
    int q[kQK32];
    b.d = fp32_to_fp16(symmetric_levels(x, 8, q));
    pack_nibbles(q, b.qs);
}
void q5_0(const float* x, BlockQ5_0& b) {
    int q[kQK32];
    b.d = fp32_to_fp16(symmetric_levels(x, 16, q));
    pack_nibbles(q, b.qs);
    pack_fifth_bits(q, b.qh);
}
void q4_1(const float* x, BlockQ4_1& b) {
    int q[kQK32];
    float mn;
    b.d = fp32_to_fp16(affine_levels(x, 15, &mn, q));
    b.m = fp32_to_fp16(mn);
    pack_nibbles(q, b.qs);
}
void q5_1(const float* x, BlockQ5_1& b) {
    int q[kQK32];
    float mn;
    b.d = fp32_to_fp16(affine_levels(x, 31, &mn, q));
    b.m = fp32_to_fp16(mn);
    pack_nibbles(q, b.qs);
    pack_fifth_bits(q, b.qh);
}
void q8_0(const float* x, BlockQ8_0& b) {
    float amax = 0;
    for (int l = 0; l < kQK32; ++l) amax = std::max(amax, std::fabs(x[l]));
    const float d = amax / 127.f, id = inverse_or_zero(d);
    for (int l = 0; l < kQK32; ++l) b.qs[l] = static_cast<int8_t>(std::round(x[l] * id));
    b.d = fp32_to_fp16(d);
}

// ---- K-quants: x (256,) per super-block ----------------------------------------

// Weights of the Q4_K/Q5_K searches: av_x + |x|, av_x the block's RMS.
void kquant_weights(const float* x, float* w) {  // (256,)
    float sum_x2 = 0;
    for (int l = 0; l < kQKK; ++l) sum_x2 += x[l] * x[l];
    const float av_x = std::sqrt(sum_x2 / kQKK);
    for (int l = 0; l < kQKK; ++l) w[l] = av_x + std::fabs(x[l]);
}

void q2_k(const float* x, BlockQ2_K& b) {
    uint8_t L[kQKK], Laux[16];
    float weights[16], scales[16], mins[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
        for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
        scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
        const float iscale = 15 / max_scale;
        for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
        b.d = fp32_to_fp16(max_scale / 15);
    } else {
        std::memset(b.scales, 0, sizeof b.scales);
        b.d = 0;
    }
    if (max_min > 0) {
        const float iscale = 15 / max_min;
        for (int j = 0; j < 16; ++j) b.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
        b.dmin = fp32_to_fp16(max_min / 15);
    } else {
        b.dmin = 0;
    }
    // Re-fit the levels to the rounded scales.
    for (int j = 0; j < 16; ++j) {
        const float d = fp16_to_fp32(b.d) * (b.scales[j] & 0xF);
        if (!d) continue;
        const float dm = fp16_to_fp32(b.dmin) * (b.scales[j] >> 4);
        for (int l = 0; l < 16; ++l)
            L[16 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[16 * j + l] + dm) / d), 0, 3));
    }
    for (int j = 0; j < kQKK; j += 128)
        for (int l = 0; l < 32; ++l)
            b.qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                   (L[j + l + 96] << 6));
}

void q3_k(const float* x, BlockQ3_K& b) {
    int8_t L[kQKK];
    float scales[16];
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
        scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
        if (std::fabs(scales[j]) > amax) { amax = std::fabs(scales[j]); max_scale = scales[j]; }
    }
    std::memset(b.scales, 0, sizeof b.scales);
    if (max_scale) {
        const float iscale = -32.f / max_scale;
        for (int j = 0; j < 16; ++j) {
            int l = std::clamp(nearest_int(iscale * scales[j]), -32, 31) + 32;
            if (j < 8) b.scales[j] = static_cast<uint8_t>(l & 0xF);
            else b.scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
            l >>= 4;
            b.scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
        }
        b.d = fp32_to_fp16(1 / iscale);
    } else {
        b.d = 0;
    }
    for (int j = 0; j < 16; ++j) {
        const float d = fp16_to_fp32(b.d) * q3k_scale(j, b.scales);
        if (!d) continue;
        for (int l = 0; l < 16; ++l)
            L[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -4, 3) + 4);
    }
    std::memset(b.hmask, 0, sizeof b.hmask);
    for (int j = 0; j < kQKK; ++j) {  // bit 2 of level j goes to hmask[j % 32], bit j / 32
        if (L[j] > 3) {
            b.hmask[j % 32] |= static_cast<uint8_t>(1 << (j / 32));
            L[j] -= 4;
        }
    }
    for (int j = 0; j < kQKK; j += 128)
        for (int l = 0; l < 32; ++l)
            b.qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                                   (L[j + l + 96] << 6));
}

// Shared by Q4_K and Q5_K: scale search per 32-sub-block, 6-bit packing of scales and
// mins, then the levels L (256,) re-fitted to the rounded scales. nmax = 15 or 31.
void k4_scales_and_levels(const float* x, int nmax, float rmin, int nstep, uint16_t* d_out,
                          uint16_t* dmin_out, uint8_t* packed, uint8_t* L) {
    float weights[kQKK], scales[8], mins[8];
    uint8_t Laux[32];
    kquant_weights(x, weights);
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights + 32 * j, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        const uint8_t ls = static_cast<uint8_t>(std::min(63, nearest_int(inv_scale * scales[j])));
        const uint8_t lm = static_cast<uint8_t>(std::min(63, nearest_int(inv_min * mins[j])));
        if (j < 4) {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
            packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
            packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
        }
    }
    *d_out = fp32_to_fp16(max_scale / 63.f);
    *dmin_out = fp32_to_fp16(max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        k4_scale_min(j, packed, &sc, &m);
        const float d = fp16_to_fp32(*d_out) * sc;
        if (!d) continue;
        const float dm = fp16_to_fp32(*dmin_out) * m;
        for (int l = 0; l < 32; ++l)
            L[32 * j + l] = static_cast<uint8_t>(std::clamp(nearest_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
}

void q4_k(const float* x, BlockQ4_K& b) {
    uint8_t L[kQKK];
    std::memset(b.scales, 0, sizeof b.scales);
    k4_scales_and_levels(x, 15, -1.f, 20, &b.d, &b.dmin, b.scales, L);
    for (int j = 0; j < kQKK; j += 64)  // sub-blocks 2k / 2k+1 in low / high nibbles
        for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

void q5_k(const float* x, BlockQ5_K& b) {
    uint8_t L[kQKK];
    std::memset(b.scales, 0, sizeof b.scales);
    k4_scales_and_levels(x, 31, -0.5f, 15, &b.d, &b.dmin, b.scales, L);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int j = 0; j < kQKK; j += 64)
        for (int l = 0; l < 32; ++l) {
            const int s = j / 32;  // sub-block of L[j + l]; s + 1 is that of L[j + l + 32]
            const int l1 = L[j + l], l2 = L[j + l + 32];
            b.qh[l] |= static_cast<uint8_t>(((l1 >> 4) << s) | ((l2 >> 4) << (s + 1)));
            b.qs[j / 2 + l] = static_cast<uint8_t>((l1 & 0xF) | ((l2 & 0xF) << 4));
        }
}

void q6_k(const float* x, BlockQ6_K& b) {
    int8_t L[kQKK];
    float scales[16];
    float max_scale = 0, max_abs_scale = 0;
    for (int j = 0; j < 16; ++j) {
        scales[j] = make_qx_quants(16, 32, x + 16 * j, L + 16 * j);
        if (std::fabs(scales[j]) > max_abs_scale) { max_abs_scale = std::fabs(scales[j]); max_scale = scales[j]; }
    }
    if (max_abs_scale < kGroupMaxEps) {
        std::memset(&b, 0, sizeof b);
        return;
    }
    const float iscale = -128.f / max_scale;
    b.d = fp32_to_fp16(1 / iscale);
    for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[j])));
    for (int j = 0; j < 16; ++j) {
        const float d = fp16_to_fp32(b.d) * b.scales[j];
        if (!d) continue;
        for (int l = 0; l < 16; ++l)
            L[16 * j + l] = static_cast<int8_t>(std::clamp(nearest_int(x[16 * j + l] / d), -32, 31) + 32);
    }
    for (int j = 0; j < kQKK; j += 128)
        for (int l = 0; l < 32; ++l) {
            const int q1 = L[j + l], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
            b.ql[j / 2 + l] = static_cast<uint8_t>((q1 & 0xF) | ((q3 & 0xF) << 4));
            b.ql[j / 2 + l + 32] = static_cast<uint8_t>((q2 & 0xF) | ((q4 & 0xF) << 4));
            b.qh[j / 4 + l] = static_cast<uint8_t>((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
}

template <class Block, int kElems>
void blocks(void (*one)(const float*, Block&), const float* src, void* dst, int64_t n) {
    auto* b = static_cast<Block*>(dst);  // (n / kElems) blocks
    for (int64_t i = 0; i < n / kElems; ++i) one(src + i * kElems, b[i]);
}

}  // namespace

void quantize_row(GGMLType t, const float* src, void* dst, int64_t n) {
    row_bytes(t, n);  // validates type and length
    auto* u16 = static_cast<uint16_t*>(dst);
    switch (t) {
        case GGMLType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
        case GGMLType::F16: for (int64_t i = 0; i < n; ++i) u16[i] = fp32_to_fp16(src[i]); return;
        case GGMLType::BF16: for (int64_t i = 0; i < n; ++i) u16[i] = fp32_to_bf16(src[i]); return;
        case GGMLType::Q4_0: return blocks<BlockQ4_0, kQK32>(q4_0, src, dst, n);
        case GGMLType::Q4_1: return blocks<BlockQ4_1, kQK32>(q4_1, src, dst, n);
        case GGMLType::Q5_0: return blocks<BlockQ5_0, kQK32>(q5_0, src, dst, n);
        case GGMLType::Q5_1: return blocks<BlockQ5_1, kQK32>(q5_1, src, dst, n);
        case GGMLType::Q8_0: return blocks<BlockQ8_0, kQK32>(q8_0, src, dst, n);
        case GGMLType::Q2_K: return blocks<BlockQ2_K, kQKK>(q2_k, src, dst, n);
        case GGMLType::Q3_K: return blocks<BlockQ3_K, kQKK>(q3_k, src, dst, n);
        case GGMLType::Q4_K: return blocks<BlockQ4_K, kQKK>(q4_k, src, dst, n);
        case GGMLType::Q5_K: return blocks<BlockQ5_K, kQKK>(q5_k, src, dst, n);
        case GGMLType::Q6_K: return blocks<BlockQ6_K, kQKK>(q6_k, src, dst, n);
        default: throw InvalidArgument("quantize: unsupported type");
    }
}

}  // namespace pyllong::quant
