// Quantized matrix products on the device. Decode (few tokens): one warp per weight row,
// each lane dequantizes 32-element chunks straight from the quantized row and dots them
// with every token, so the weights are read once per call — decode is bound by those
// bytes. Prefill (many tokens): 64x64 output tiles, weights dequantized into shared memory
// once per tile and reused by all 64 tokens.
#include "core/error.h"
#include "cuda/common.cuh"
#include "cuda/dequant.cuh"
#include "cuda/kernels.cuh"

namespace pyllong::cuda {

namespace {

constexpr int kGemvRows = 4;   // warps (rows) per block
constexpr int kGemvMaxTok = 8; // above this, the tiled kernel

template <GGMLType T, int NT>
__global__ void gemv_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int n_in, int n_out,
                            const float* __restrict__ x, float* __restrict__ y) {
    const int row = blockIdx.x * kGemvRows + threadIdx.y, lane = threadIdx.x;
    if (row >= n_out) return;
    const uint8_t* r = W + static_cast<size_t>(row) * row_bytes;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    const int n_chunks = n_in / 32;
    for (int c = lane; c < n_chunks; c += 32) {
        float w[32];
        Chunk<T>::load(r, c, w);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * n_in + c * 32);
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; ++i) {
                const float4 v = __ldg(xp + i);
                s += w[4 * i] * v.x + w[4 * i + 1] * v.y + w[4 * i + 2] * v.z + w[4 * i + 3] * v.w;
            }
            acc[t] += s;
        }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        float s = acc[t];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) y[static_cast<size_t>(t) * n_out + row] = s;
    }
}

// Tiles: 64 weight rows (m) x 64 tokens (n), k in steps of 64 (two chunks per row).
constexpr int kTM = 64, kTN = 64, kTK = 64, kPad = 1;

template <GGMLType T>
__global__ void __launch_bounds__(256) gemm_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int n_in,
                                                    int n_out, const float* __restrict__ x, float* __restrict__ y,
                                                    int n_tok) {
    __shared__ float ws[kTK][kTM + kPad];  // (k, m) dequantized weights
    __shared__ float xs[kTK][kTN + kPad];  // (k, n) activations
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int m0 = blockIdx.x * kTM, n0 = blockIdx.y * kTN;
    float acc[4][4] = {};
    const int n_chunks = n_in / 32;
    for (int k0 = 0; k0 < n_in; k0 += kTK) {
        // 128 (row, chunk) pairs of weights: threads 0..127 dequantize one chunk each.
        if (tid < 2 * kTM) {
            const int m = tid / 2, c = k0 / 32 + tid % 2;
            float w[32];
            if (m0 + m < n_out && c < n_chunks) Chunk<T>::load(W + static_cast<size_t>(m0 + m) * row_bytes, c, w);
            else
#pragma unroll
                for (int i = 0; i < 32; ++i) w[i] = 0.0f;
#pragma unroll
            for (int i = 0; i < 32; ++i) ws[(tid % 2) * 32 + i][m] = w[i];
        }
        // 64 tokens x 64 k = 1024 float4: four per thread.
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int idx = tid + 256 * r, n = idx / 16, k4 = (idx % 16) * 4;
            float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
            if (n0 + n < n_tok && k0 + k4 < n_in)
                v = __ldg(reinterpret_cast<const float4*>(x + static_cast<size_t>(n0 + n) * n_in + k0 + k4));
            xs[k4][n] = v.x; xs[k4 + 1][n] = v.y; xs[k4 + 2][n] = v.z; xs[k4 + 3][n] = v.w;
        }
        __syncthreads();
#pragma unroll 8
        for (int k = 0; k < kTK; ++k) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) { a[i] = ws[k][ty + 16 * i]; b[i] = xs[k][tx + 16 * i]; }
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < n_out && n < n_tok) y[static_cast<size_t>(n) * n_out + m] = acc[i][j];
        }
}

template <GGMLType T, int NT>
void launch_gemv(const uint8_t* W, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x, float* y,
                 cudaStream_t stream) {
    const dim3 block(32, kGemvRows);
    gemv_kernel<T, NT><<<blocks_for(n_out, kGemvRows), block, 0, stream>>>(W, row_bytes, static_cast<int>(n_in),
                                                                          static_cast<int>(n_out), x, y);
}

template <GGMLType T>
void launch(const uint8_t* W, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x, float* y,
            int64_t n_tok, cudaStream_t stream) {
    // Activations are read in float4s: rows of whole chunks keep them 16-byte aligned.
    if (n_tok <= kGemvMaxTok) {
        switch (n_tok) {
            case 1: launch_gemv<T, 1>(W, row_bytes, n_in, n_out, x, y, stream); break;
            case 2: launch_gemv<T, 2>(W, row_bytes, n_in, n_out, x, y, stream); break;
            case 3: launch_gemv<T, 3>(W, row_bytes, n_in, n_out, x, y, stream); break;
            case 4: launch_gemv<T, 4>(W, row_bytes, n_in, n_out, x, y, stream); break;
            case 5: launch_gemv<T, 5>(W, row_bytes, n_in, n_out, x, y, stream); break;
            case 6: launch_gemv<T, 6>(W, row_bytes, n_in, n_out, x, y, stream); break;
            case 7: launch_gemv<T, 7>(W, row_bytes, n_in, n_out, x, y, stream); break;
            default: launch_gemv<T, 8>(W, row_bytes, n_in, n_out, x, y, stream); break;
        }
        check_launch("gemv");
        return;
    }
    const dim3 grid(blocks_for(n_out, kTM), blocks_for(n_tok, kTN));
    gemm_kernel<T><<<grid, 256, 0, stream>>>(W, row_bytes, static_cast<int>(n_in), static_cast<int>(n_out), x, y,
                                             static_cast<int>(n_tok));
    check_launch("gemm");
}

}  // namespace

bool mat_mul_supports(GGMLType t) {
    switch (t) {
#define PYLLONG_CASE(name) case GGMLType::name: return true;
        PYLLONG_CUDA_TYPES(PYLLONG_CASE)
#undef PYLLONG_CASE
        default: return false;
    }
}

void mat_mul(GGMLType t, const uint8_t* W, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x, float* y,
             int64_t n_tok, cudaStream_t stream) {
    if (n_in % 32 != 0)
        throw InvalidArgument("CUDA matmul needs rows of whole 32-element chunks; got " + std::to_string(n_in));
    switch (t) {
#define PYLLONG_CASE(name) \
    case GGMLType::name: return launch<GGMLType::name>(W, row_bytes, n_in, n_out, x, y, n_tok, stream);
        PYLLONG_CUDA_TYPES(PYLLONG_CASE)
#undef PYLLONG_CASE
        default:
            throw InvalidArgument(std::string("the CUDA backend has no kernel for tensor type ") +
                                  type_name(static_cast<uint32_t>(t)));
    }
}

}  // namespace pyllong::cuda
