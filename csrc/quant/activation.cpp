#include "quant/activation.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "quant/kquant_search.h"

namespace pyllong::quant {

ActFormat act_format(GGMLType t) {
    switch (t) {
        case GGMLType::F32: case GGMLType::F16: case GGMLType::BF16: return ActFormat::F32;
        case GGMLType::Q4_0: case GGMLType::Q4_1: case GGMLType::Q5_0: case GGMLType::Q5_1:
        case GGMLType::Q8_0: return ActFormat::Q8A;
        case GGMLType::Q2_K: case GGMLType::Q3_K: case GGMLType::Q4_K: case GGMLType::Q5_K:
        case GGMLType::Q6_K: return ActFormat::Q8K;
        default: throw InvalidArgument("no activation format for this weight type");
    }
}

size_t act_row_bytes(ActFormat f, int64_t n) {
    switch (f) {
        case ActFormat::F32: return static_cast<size_t>(n) * sizeof(float);
        case ActFormat::Q8A: return static_cast<size_t>(n / kQK32) * sizeof(BlockQ8A);
        case ActFormat::Q8K: return static_cast<size_t>(n / kQKK) * sizeof(BlockQ8K);
    }
    return 0;
}

namespace {
// x: (k,) -> q: (k,) int8 in [-127, 127]; returns the scale d.
float absmax_int8(const float* x, int k, int8_t* q) {
    float amax = 0;
    for (int i = 0; i < k; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.f, id = d ? 1.f / d : 0.f;
    for (int i = 0; i < k; ++i) q[i] = static_cast<int8_t>(std::clamp(nearest_int(x[i] * id), -127, 127));
    return d;
}
}  // namespace

void quantize_activation_row(ActFormat f, const float* x, void* dst, int64_t n) {
    switch (f) {
        case ActFormat::F32: std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float)); return;
        case ActFormat::Q8A: {
            auto* b = static_cast<BlockQ8A*>(dst);  // (n/32,)
            for (int64_t i = 0; i < n / kQK32; ++i) {
                b[i].d = absmax_int8(x + i * kQK32, kQK32, b[i].qs);
                int sum = 0;
                for (int l = 0; l < kQK32; ++l) sum += b[i].qs[l];
                b[i].s = b[i].d * static_cast<float>(sum);
            }
            return;
        }
        case ActFormat::Q8K: {
            auto* b = static_cast<BlockQ8K*>(dst);  // (n/256,)
            for (int64_t i = 0; i < n / kQKK; ++i) {
                b[i].d = absmax_int8(x + i * kQKK, kQKK, b[i].qs);
                for (int j = 0; j < kQKK / 16; ++j) {
                    int sum = 0;
                    for (int l = 0; l < 16; ++l) sum += b[i].qs[16 * j + l];
                    b[i].bsums[j] = static_cast<int16_t>(sum);
                }
            }
            return;
        }
    }
}

void dequantize_activation_row(ActFormat f, const void* src, float* y, int64_t n) {
    switch (f) {
        case ActFormat::F32: std::memcpy(y, src, static_cast<size_t>(n) * sizeof(float)); return;
        case ActFormat::Q8A: {
            const auto* b = static_cast<const BlockQ8A*>(src);
            for (int64_t i = 0; i < n; ++i) y[i] = b[i / kQK32].d * b[i / kQK32].qs[i % kQK32];
            return;
        }
        case ActFormat::Q8K: {
            const auto* b = static_cast<const BlockQ8K*>(src);
            for (int64_t i = 0; i < n; ++i) y[i] = b[i / kQKK].d * b[i / kQKK].qs[i % kQKK];
            return;
        }
    }
}

}  // namespace pyllong::quant
