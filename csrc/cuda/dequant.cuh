// Device dequantization, 32 consecutive elements at a time ("a chunk"): chunk c of a row
// is elements [32c, 32c + 32). Every format has 32-aligned sub-blocks, so one chunk needs
// one block (legacy formats) or one 32-slice of a 256-super-block (K-quants). Layouts are
// those of csrc/quant/blocks.h and levels.h, which the CPU path decodes the same way.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "gguf/types.h"

namespace pyllong::cuda {

__device__ __forceinline__ float f16(const uint8_t* p) {
    return __half2float(__ushort_as_half(*reinterpret_cast<const uint16_t*>(p)));
}
__device__ __forceinline__ float bf16(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block (as k4_scale_min).
__device__ __forceinline__ void k4_scale_min(int j, const uint8_t* s, float& sc, float& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

template <GGMLType T>
struct Chunk;  // Chunk<T>::load(row, c, y): y (32,) = elements [32c, 32c+32) of the row

template <>
struct Chunk<GGMLType::F32> {
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const float4* p = reinterpret_cast<const float4*>(row) + c * 8;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const float4 v = p[i];
            y[4 * i] = v.x; y[4 * i + 1] = v.y; y[4 * i + 2] = v.z; y[4 * i + 3] = v.w;
        }
    }
};
template <>
struct Chunk<GGMLType::F16> {
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint4* p = reinterpret_cast<const uint4*>(row + c * 64);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint4 v = p[i];
            const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&w[j]));
                y[8 * i + 2 * j] = f.x;
                y[8 * i + 2 * j + 1] = f.y;
            }
        }
    }
};
template <>
struct Chunk<GGMLType::BF16> {
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + c * 32;
#pragma unroll
        for (int i = 0; i < 32; ++i) y[i] = bf16(p[i]);
    }
};

// Legacy 32-blocks: nibble l of qs is element l, its high nibble element l + 16.
template <>
struct Chunk<GGMLType::Q4_0> {  // {f16 d; u8 qs[16]}: d * (q - 8)
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + c * 18;
        const float d = f16(b);
        const uint16_t* qs = reinterpret_cast<const uint16_t*>(b + 2);  // 2-byte aligned
#pragma unroll
        for (int i = 0; i < 8; ++i) {
            const uint16_t two = qs[i];
            y[2 * i] = d * static_cast<float>((two & 0xF) - 8);
            y[2 * i + 1] = d * static_cast<float>(((two >> 8) & 0xF) - 8);
            y[2 * i + 16] = d * static_cast<float>(((two >> 4) & 0xF) - 8);
            y[2 * i + 17] = d * static_cast<float>((two >> 12) - 8);
        }
    }
};
template <>
struct Chunk<GGMLType::Q4_1> {  // {f16 d, m; u8 qs[16]}: d * q + m
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + c * 20;
        const float d = f16(b), m = f16(b + 2);
        const uint32_t* qs = reinterpret_cast<const uint32_t*>(b + 4);  // 4-byte aligned
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const uint32_t four = qs[i];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const uint32_t byte = (four >> (8 * j)) & 0xFF;
                y[4 * i + j] = d * static_cast<float>(byte & 0xF) + m;
                y[4 * i + j + 16] = d * static_cast<float>(byte >> 4) + m;
            }
        }
    }
};
template <GGMLType T, int kBytes, int kQs, int kQh, bool kAffine>
struct FiveBit {  // Q5_0 {d; qh[4]; qs[16]} and Q5_1 {d, m; qh[4]; qs[16]}
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + c * kBytes;
        const float d = f16(b), m = kAffine ? f16(b + 2) : 0.0f;
        const uint32_t qh = b[kQh] | (b[kQh + 1] << 8) | (b[kQh + 2] << 16) | (static_cast<uint32_t>(b[kQh + 3]) << 24);
        const int offset = kAffine ? 0 : 16;
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const uint8_t q = b[kQs + l];
            const int lo = (q & 0xF) | (((qh >> l) & 1) << 4), hi = (q >> 4) | (((qh >> (l + 16)) & 1) << 4);
            y[l] = kAffine ? d * static_cast<float>(lo) + m : d * static_cast<float>(lo - offset);
            y[l + 16] = kAffine ? d * static_cast<float>(hi) + m : d * static_cast<float>(hi - offset);
        }
    }
};
template <> struct Chunk<GGMLType::Q5_0> : FiveBit<GGMLType::Q5_0, 22, 6, 2, false> {};
template <> struct Chunk<GGMLType::Q5_1> : FiveBit<GGMLType::Q5_1, 24, 8, 4, true> {};
template <>
struct Chunk<GGMLType::Q8_0> {  // {f16 d; i8 qs[32]}: d * q
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + c * 34;
        const float d = f16(b);
        const uint16_t* qs = reinterpret_cast<const uint16_t*>(b + 2);
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            const uint16_t two = qs[i];
            y[2 * i] = d * static_cast<float>(static_cast<int8_t>(two & 0xFF));
            y[2 * i + 1] = d * static_cast<float>(static_cast<int8_t>(two >> 8));
        }
    }
};

// K-quants: chunk c is slice s = c % 8 of super-block c / 8; element e = 32 s + l.
template <>
struct Chunk<GGMLType::Q2_K> {  // {scales[16]; qs[64]; f16 d, dmin}
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + (c / 8) * 84;
        const int s = static_cast<int>(c % 8), half = s / 4, j = s % 4;
        const float d = f16(b + 80), dmin = f16(b + 82);
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            const uint8_t sc = b[(32 * s + l) / 16];
            const int q = (b[16 + half * 32 + l] >> (2 * j)) & 3;
            y[l] = d * static_cast<float>(sc & 0xF) * static_cast<float>(q) - dmin * static_cast<float>(sc >> 4);
        }
    }
};
__device__ __forceinline__ int q3k_scale(int j, const uint8_t* s) {
    const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | (hi << 4)) - 32;
}
template <>
struct Chunk<GGMLType::Q3_K> {  // {hmask[32]; qs[64]; scales[12]; f16 d}
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + (c / 8) * 110;
        const int s = static_cast<int>(c % 8), half = s / 4, j = s % 4;
        const float d = f16(b + 108);
        const float d0 = d * static_cast<float>(q3k_scale(2 * s, b + 96));
        const float d1 = d * static_cast<float>(q3k_scale(2 * s + 1, b + 96));
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            const int lo = (b[32 + half * 32 + l] >> (2 * j)) & 3;
            const int q = lo - (((b[l] >> (half * 4 + j)) & 1) ? 0 : 4);
            y[l] = (l < 16 ? d0 : d1) * static_cast<float>(q);
        }
    }
};
template <GGMLType T, int kBytes, int kQs, int kQh>
struct K4Family {  // Q4_K {d, dmin; scales[12]; qs[128]}, Q5_K {..; qh[32]; qs[128]}
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + (c / 8) * kBytes;
        const int s = static_cast<int>(c % 8);
        float sc, m;
        k4_scale_min(s, b + 4, sc, m);
        const float dl = f16(b) * sc, dm = f16(b + 2) * m;
        const uint8_t* qs = b + kQs + 32 * (s / 2);
        const int shift = 4 * (s & 1);
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            int q = (qs[l] >> shift) & 0xF;
            if (kQh) q |= ((b[kQh + l] >> s) & 1) << 4;
            y[l] = dl * static_cast<float>(q) - dm;
        }
    }
};
template <> struct Chunk<GGMLType::Q4_K> : K4Family<GGMLType::Q4_K, 144, 16, 0> {};
template <> struct Chunk<GGMLType::Q5_K> : K4Family<GGMLType::Q5_K, 176, 48, 16> {};
template <>
struct Chunk<GGMLType::Q6_K> {  // {ql[128]; qh[64]; i8 scales[16]; f16 d}: d * sc * (q - 32)
    __device__ static void load(const uint8_t* row, int64_t c, float* y) {
        const uint8_t* b = row + (c / 8) * 210;
        const int s = static_cast<int>(c % 8), half = s / 4, w0 = 32 * (s % 4);
        const float d = f16(b + 208);
        const float d0 = d * static_cast<float>(static_cast<int8_t>(b[192 + 2 * s]));
        const float d1 = d * static_cast<float>(static_cast<int8_t>(b[192 + 2 * s + 1]));
#pragma unroll
        for (int l = 0; l < 32; ++l) {
            const int w = w0 + l;
            const int lo = (b[half * 64 + w % 64] >> (4 * (w / 64))) & 0xF;
            const int hi = (b[128 + half * 32 + l] >> (2 * (w / 32))) & 3;
            y[l] = (l < 16 ? d0 : d1) * static_cast<float>((lo | (hi << 4)) - 32);
        }
    }
};

// Eight consecutive elements, [8g, 8g + 8), of a row: what one lane of the decode kernel
// reads per step, so that a warp's lanes read neighbouring bytes and neighbouring
// activations. F32 and F16 have their own loaders with wide loads; the others take their
// 32-chunk's slice from the chunk loader.
template <GGMLType T>
struct Group8 {
    __device__ static void load(const uint8_t* row, int64_t g, float* y) {
        float c[32];
        Chunk<T>::load(row, g / 4, c);
        const int s = static_cast<int>(g % 4);
#pragma unroll
        for (int i = 0; i < 8; ++i)  // compile-time indices only: c stays in registers
            y[i] = s == 0 ? c[i] : s == 1 ? c[8 + i] : s == 2 ? c[16 + i] : c[24 + i];
    }
};
template <>
struct Group8<GGMLType::F32> {
    __device__ static void load(const uint8_t* row, int64_t g, float* y) {
        const float4* p = reinterpret_cast<const float4*>(row) + 2 * g;
        const float4 a = p[0], b = p[1];
        y[0] = a.x; y[1] = a.y; y[2] = a.z; y[3] = a.w; y[4] = b.x; y[5] = b.y; y[6] = b.z; y[7] = b.w;
    }
};
template <>
struct Group8<GGMLType::F16> {
    __device__ static void load(const uint8_t* row, int64_t g, float* y) {
        const uint4 u = reinterpret_cast<const uint4*>(row)[g];
        const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float2 f = __half22float2(h[j]);
            y[2 * j] = f.x;
            y[2 * j + 1] = f.y;
        }
    }
};
// <8 elements of group g, xv (8,)>: dequantize, then dot. (Q4_0, Q4_1 and Q8_0 never come
// here: decode multiplies them packed, in matmul.cu.)
template <GGMLType T>
struct Dot8 {
    __device__ static float dot(const uint8_t* row, int64_t g, const float* xv) {
        float w[8];
        Group8<T>::load(row, g, w);
        float s = 0.0f;
#pragma unroll
        for (int i = 0; i < 8; ++i) s += w[i] * xv[i];
        return s;
    }
};
// X(name) for every format the device runs.
#define PYLLONG_CUDA_TYPES(X) X(F32) X(F16) X(BF16) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) \
    X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K)

}  // namespace pyllong::cuda
