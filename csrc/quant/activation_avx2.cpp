// AVX2 activation quantization, bit-identical to quantize_activation_row: the same
// max|x|, d = max/127, id = 1/d, x*id rounded to nearest-even (as nearest_int), sums.
#include <immintrin.h>

#include <cstring>

#include "quant/activation.h"
#include "quant/vec_dot.h"

namespace pyllong::quant {

namespace {

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

// x: (k,) with k a multiple of 32 -> q (k,) int8; returns d. Also writes the sums of
// each 16 values to sums16 (k/16,) when non-null.
float absmax_int8(const float* x, int k, int8_t* q, int16_t* sums16) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 amax = _mm256_setzero_ps();
    for (int i = 0; i < k; i += 8) amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    const float d = hmax(amax) / 127.f;
    const __m256 id = _mm256_set1_ps(d ? 1.f / d : 0.f);
    for (int i = 0; i < k; i += 32) {
        __m256i v[4];
        for (int j = 0; j < 4; ++j) {
            const __m256 r = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * j), id),
                                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            // |r| <= 127 for finite x; the clamp matches the scalar version on inf/NaN too
            v[j] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(r), _mm256_set1_epi32(127)),
                                    _mm256_set1_epi32(-127));
        }
        // pack 32 int32 -> 32 int8 in order (packs work per 128-bit lane: fix with a permute)
        const __m256i p16a = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), p8);
        if (sums16) {
            // sums of 16 consecutive values: int32 lanes of v[0..1] and v[2..3]
            for (int h = 0; h < 2; ++h) {
                __m256i s = _mm256_add_epi32(v[2 * h], v[2 * h + 1]);
                __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
                t = _mm_hadd_epi32(t, t);
                t = _mm_hadd_epi32(t, t);
                sums16[i / 16 + h] = static_cast<int16_t>(_mm_cvtsi128_si32(t));
            }
        }
    }
    return d;
}

int sum_int8_32(const int8_t* q) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
    const __m256i s16 = _mm256_maddubs_epi16(_mm256_set1_epi8(1), v);
    const __m256i s32 = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s32), _mm256_extracti128_si256(s32, 1));
    t = _mm_hadd_epi32(t, t);
    t = _mm_hadd_epi32(t, t);
    return _mm_cvtsi128_si32(t);
}

void quantize_activation_avx2(ActFormat f, const float* x, void* dst, int64_t n) {
    switch (f) {
        case ActFormat::F32: std::memcpy(dst, x, static_cast<size_t>(n) * sizeof(float)); return;
        case ActFormat::Q8A: {
            auto* b = static_cast<BlockQ8A*>(dst);  // (n/32,)
            for (int64_t i = 0; i < n / kQK32; ++i) {
                b[i].d = absmax_int8(x + i * kQK32, kQK32, b[i].qs, nullptr);
                b[i].s = b[i].d * static_cast<float>(sum_int8_32(b[i].qs));
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

void fill_act_quantizer_avx2(DotTable& t) { t.quantize_act = quantize_activation_avx2; }

}  // namespace pyllong::quant
