// The scalar reference dot products: integer sums of weight levels times int8
// activations per (sub-)block, scaled in float. Every SIMD kernel is tested against these.
#include "core/fp16.h"
#include "quant/blocks.h"
#include "quant/levels.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {

namespace {

float dot_f32(int64_t n, const void* w, const void* a) {
    const auto* x = static_cast<const float*>(w);
    const auto* y = static_cast<const float*>(a);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
    return s;
}
template <float (*kToF32)(uint16_t)>
float dot_half(int64_t n, const void* w, const void* a) {  // F16 / BF16 weights
    const auto* x = static_cast<const uint16_t*>(w);
    const auto* y = static_cast<const float*>(a);
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += kToF32(x[i]) * y[i];
    return s;
}

int int_dot(const int8_t* q, const int8_t* a, int k) {
    int s = 0;
    for (int i = 0; i < k; ++i) s += q[i] * a[i];
    return s;
}

// Symmetric 32-blocks (Q4_0, Q5_0, Q8_0): sum d_w * d_a * <q, a>.
template <class Block>
float dot_sym32(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const Block*>(w);     // (n/32,)
    const auto* ab = static_cast<const BlockQ8A*>(a);  // (n/32,)
    float s = 0;
    int8_t q[kQK32];
    for (int64_t i = 0; i < n / kQK32; ++i) {
        levels::of(wb[i], q);
        s += fp16_to_fp32(wb[i].d) * ab[i].d * static_cast<float>(int_dot(q, ab[i].qs, kQK32));
    }
    return s;
}
// Affine 32-blocks (Q4_1, Q5_1): x = d*q + m, so <x, a> = d*d_a*<q, qa> + m * (d_a * sum qa).
template <class Block>
float dot_affine32(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const Block*>(w);
    const auto* ab = static_cast<const BlockQ8A*>(a);
    float s = 0;
    int8_t q[kQK32];
    for (int64_t i = 0; i < n / kQK32; ++i) {
        levels::of(wb[i], q);
        s += fp16_to_fp32(wb[i].d) * ab[i].d * static_cast<float>(int_dot(q, ab[i].qs, kQK32)) +
             fp16_to_fp32(wb[i].m) * ab[i].s;
    }
    return s;
}

float dot_q2_k(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const BlockQ2_K*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    float s = 0;
    int8_t q[kQKK];
    for (int64_t i = 0; i < n / kQKK; ++i) {
        levels::of(wb[i], q);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 16; ++j) {
            sumi += (wb[i].scales[j] & 0xF) * int_dot(q + 16 * j, ab[i].qs + 16 * j, 16);
            summ += (wb[i].scales[j] >> 4) * ab[i].bsums[j];
        }
        s += ab[i].d * (fp16_to_fp32(wb[i].d) * sumi - fp16_to_fp32(wb[i].dmin) * summ);
    }
    return s;
}

float dot_q3_k(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const BlockQ3_K*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    float s = 0;
    int8_t q[kQKK];
    for (int64_t i = 0; i < n / kQKK; ++i) {
        levels::of(wb[i], q);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) sumi += q3k_scale(j, wb[i].scales) * int_dot(q + 16 * j, ab[i].qs + 16 * j, 16);
        s += ab[i].d * fp16_to_fp32(wb[i].d) * sumi;
    }
    return s;
}

template <class Block>  // Q4_K, Q5_K
float dot_k4_family(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const Block*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    float s = 0;
    int8_t q[kQKK];
    for (int64_t i = 0; i < n / kQKK; ++i) {
        levels::of(wb[i], q);
        int sumi = 0, summ = 0;
        for (int j = 0; j < 8; ++j) {
            uint8_t sc, m;
            k4_scale_min(j, wb[i].scales, &sc, &m);
            sumi += sc * int_dot(q + 32 * j, ab[i].qs + 32 * j, 32);
            summ += m * (ab[i].bsums[2 * j] + ab[i].bsums[2 * j + 1]);
        }
        s += ab[i].d * (fp16_to_fp32(wb[i].d) * sumi - fp16_to_fp32(wb[i].dmin) * summ);
    }
    return s;
}

float dot_q6_k(int64_t n, const void* w, const void* a) {
    const auto* wb = static_cast<const BlockQ6_K*>(w);
    const auto* ab = static_cast<const BlockQ8K*>(a);
    float s = 0;
    int8_t q[kQKK];
    for (int64_t i = 0; i < n / kQKK; ++i) {
        levels::of(wb[i], q);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) sumi += wb[i].scales[j] * int_dot(q + 16 * j, ab[i].qs + 16 * j, 16);
        s += ab[i].d * fp16_to_fp32(wb[i].d) * sumi;
    }
    return s;
}

}  // namespace

void fill_dot_table_scalar(DotTable& t) {
    t.set(GGMLType::F32, dot_f32);
    t.set(GGMLType::F16, dot_half<fp16_to_fp32>);
    t.set(GGMLType::BF16, dot_half<bf16_to_fp32>);
    t.set(GGMLType::Q4_0, dot_sym32<BlockQ4_0>);
    t.set(GGMLType::Q4_1, dot_affine32<BlockQ4_1>);
    t.set(GGMLType::Q5_0, dot_sym32<BlockQ5_0>);
    t.set(GGMLType::Q5_1, dot_affine32<BlockQ5_1>);
    t.set(GGMLType::Q8_0, dot_sym32<BlockQ8_0>);
    t.set(GGMLType::Q2_K, dot_q2_k);
    t.set(GGMLType::Q3_K, dot_q3_k);
    t.set(GGMLType::Q4_K, dot_k4_family<BlockQ4_K>);
    t.set(GGMLType::Q5_K, dot_k4_family<BlockQ5_K>);
    t.set(GGMLType::Q6_K, dot_q6_k);
}

}  // namespace pyllong::quant
