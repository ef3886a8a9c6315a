// NEON activation quantization, bit-identical to quantize_activation_row: the same
// max|x|, d = max/127, id = 1/d, x*id rounded to nearest-even (FCVTNS, as nearest_int),
// clamped to [-127, 127], and the same integer sums.
#include <arm_neon.h>

#include <cstring>

#include "quant/activation.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {

namespace {

// x: (k,) with k a multiple of 16 -> q (k,) int8; returns d. Also writes the sums of
// each 16 values to sums16 (k/16,) when non-null.
float absmax_int8(const float* x, int k, int8_t* q, int16_t* sums16) {
    float32x4_t amax = vdupq_n_f32(0);
    // vmaxnm ignores NaN like the scalar std::max(amax, NaN); FCVTNS(NaN) = 0 like nearest_int
    for (int i = 0; i < k; i += 4) amax = vmaxnmq_f32(amax, vabsq_f32(vld1q_f32(x + i)));
    const float d = vmaxvq_f32(amax) / 127.f;
    const float id = d ? 1.f / d : 0.f;
    const int32x4_t hi = vdupq_n_s32(127), lo = vdupq_n_s32(-127);
    for (int i = 0; i < k; i += 16) {
        int32x4_t v[4];
        for (int j = 0; j < 4; ++j)
            v[j] = vmaxq_s32(vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + i + 4 * j), id)), hi), lo);
        const int16x8_t a = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));  // exact: |v| <= 127
        const int16x8_t b = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
        const int8x16_t p = vcombine_s8(vmovn_s16(a), vmovn_s16(b));
        vst1q_s8(q + i, p);
        if (sums16) sums16[i / 16] = vaddlvq_s8(p);  // |sum| <= 16 * 127
    }
    return d;
}

void quantize_activation_neon(ActFormat f, const float* x, void* dst, int64_t n) {
    switch (f) {
        case ActFormat::F32: std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float)); return;
        case ActFormat::Q8A: {
            auto* b = static_cast<BlockQ8A*>(dst);  // (n/32,)
            for (int64_t i = 0; i < n / kQK32; ++i) {
                b[i].d = absmax_int8(x + i * kQK32, kQK32, b[i].qs, nullptr);
                const int sum = vaddlvq_s8(vld1q_s8(b[i].qs)) + vaddlvq_s8(vld1q_s8(b[i].qs + 16));
                b[i].s = b[i].d * static_cast<float>(sum);
            }
            return;
        }
        case ActFormat::Q8K: {
            auto* b = static_cast<BlockQ8K*>(dst);  // (n/256,)
            for (int64_t i = 0; i < n / kQKK; ++i) b[i].d = absmax_int8(x + i * kQKK, kQKK, b[i].qs, b[i].bsums);
            return;
        }
    }
}

}  // namespace

void fill_act_quantizer_neon(DotTable& t) { t.quantize_act = quantize_activation_neon; }

}  // namespace pyllong::quant
