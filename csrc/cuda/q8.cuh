// Quantizing activations to 8 bits on the device, inside the kernels that produce them (norms,
// SwiGLU, the attention merge), for the packed decode matmuls (Q8Act in kernels.cuh).
#pragma once
#include "cuda/kernels.cuh"

namespace pyllong::cuda {

// The calling warp's 32 lanes hold the 32 elements of block `blk` of a q8 buffer, v each:
// stores them quantized (round to nearest even) with d = amax / 127 and d * sum(q).
__device__ __forceinline__ void q8_store_block(float v, int64_t blk, const Q8Act& q8) {
    float amax = fabsf(v);
    for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int qi = __float2int_rn(v * id);
    int sum = qi;
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const int lane = threadIdx.x % 32;
    q8.q[blk * 32 + lane] = static_cast<int8_t>(qi);
    if (lane == 0) q8.ds[blk] = make_float2(d, d * static_cast<float>(sum));
}

// The same for 8 lanes holding 4 consecutive elements each (an aligned group of 8 lanes, all
// calling): r is the quad at index quad (of 4 floats) of the q8 buffer; valid is the same for
// the 8 lanes (only valid groups store).
__device__ __forceinline__ void q8_store_quad(float4 r, int64_t quad, bool valid, const Q8Act& q8) {
    float amax = fmaxf(fmaxf(fabsf(r.x), fabsf(r.y)), fmaxf(fabsf(r.z), fabsf(r.w)));
    for (int o = 4; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
    const float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
    const int q0 = __float2int_rn(r.x * id), q1 = __float2int_rn(r.y * id), q2 = __float2int_rn(r.z * id),
              q3 = __float2int_rn(r.w * id);
    int sum = q0 + q1 + q2 + q3;
    for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (!valid) return;
    reinterpret_cast<uint32_t*>(q8.q)[quad] = (static_cast<uint32_t>(q0) & 0xFF) |
                                              ((static_cast<uint32_t>(q1) & 0xFF) << 8) |
                                              ((static_cast<uint32_t>(q2) & 0xFF) << 16) |
                                              (static_cast<uint32_t>(q3) << 24);
    if (threadIdx.x % 8 == 0) q8.ds[quad / 8] = make_float2(d, d * static_cast<float>(sum));
}

}  // namespace pyllong::cuda
