// What the attention kernels share (attention.cu, transition.cu): the block shape, block-wide
// reductions, and the dot product of a query with a cached f16 key row.
#pragma once
#include "cuda/common.cuh"

namespace pyllong::cuda::attention_rows {

constexpr int kTile = 128;  // keys per tile = threads per block
constexpr int kMaxHeadDim = 256;

// The maximum and the sum over the block (kTile threads) of v; red: (kTile / 32,) shared scratch.
__device__ inline float block_max(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float m = red[0];
    for (int i = 1; i < kTile / 32; ++i) m = fmaxf(m, red[i]);
    return m;
}
__device__ inline float block_sum(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    if (threadIdx.x % 32 == 0) red[threadIdx.x / 32] = v;
    __syncthreads();
    float s = 0;
    for (int i = 0; i < kTile / 32; ++i) s += red[i];
    return s;
}

// Dot product of the query in shared memory with one cached f16 key row (hd elements).
template <bool kVec8>
__device__ __forceinline__ float dot_row(const float* q, const __half* k, int hd) {
    float s = 0.0f;
    if (kVec8) {  // 16-byte loads: the row starts 16-byte aligned (hd, kv_dim multiples of 8)
        const uint4* p = reinterpret_cast<const uint4*>(k);
#pragma unroll 4
        for (int i = 0; i < hd / 8; ++i) {
            const uint4 u = p[i];
            const __half2* h = reinterpret_cast<const __half2*>(&u);
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const float2 f = __half22float2(h[j]);
                s += q[8 * i + 2 * j] * f.x + q[8 * i + 2 * j + 1] * f.y;
            }
        }
    } else {
        for (int d = 0; d < hd; ++d) s += q[d] * __half2float(k[d]);
    }
    return s;
}

// Whether key position pk is visible from query position pq (causal, sliding window), and
// whether SelfExtend scores the pair at grouped positions (se_window 0: off).
__device__ __forceinline__ bool visible(int32_t pq, int32_t pk, int sliding_window) {
    return pk <= pq && (sliding_window == 0 || pq - pk < sliding_window);
}
__device__ __forceinline__ bool grouped(int32_t pq, int32_t pk, int se_window) {
    return se_window > 0 && pq - pk >= se_window;
}

}  // namespace pyllong::cuda::attention_rows
