// Quantized matrix products on the device. Decode (few tokens): each warp takes a few
// weight rows, dequantizes them straight from the quantized bytes and dots them with every
// token, so the weights are read once per call — decode is bound by those bytes. Prefill (many tokens): 64x64 output tiles, weights dequantized into shared memory
// once per tile and reused by all 64 tokens.
#include "core/error.h"
#include "cuda/common.cuh"
#include "cuda/dequant.cuh"
#include "cuda/kernels.cuh"

namespace pyllong::cuda {

namespace {

constexpr int kGemvWarps = 4;  // warps per block
constexpr int kGemvMaxTok = 8; // above this, the tiled kernel

// A block of kGemvWarps warps computes R rows for NT tokens. Its 128 lanes take the
// 8-element groups tid, tid + 128, ... of the row, so each step reads 1024 neighbouring
// elements (weights in a few sectors, activations in contiguous kilobytes). U steps are
// loaded before any is used, and there is one block per R rows, so enough bytes are in
// flight to cover device-memory latency: decode is bound by how fast the weights stream in.
template <GGMLType T, int NT, int R, int U>
__global__ void __launch_bounds__(32 * kGemvWarps) gemv_kernel(const uint8_t* __restrict__ W, size_t row_bytes,
                                                               int n_in, int n_out, const float* __restrict__ x,
                                                               float* __restrict__ y, bool accumulate) {
    constexpr int kLanes = 32 * kGemvWarps;
    __shared__ float part[kGemvWarps][R * NT];
    const int row0 = blockIdx.x * R, tid = threadIdx.y * 32 + threadIdx.x;
    float acc[R][NT];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) acc[r][t] = 0.0f;
    const int n_groups = n_in / 8;
    for (int g0 = tid; g0 < n_groups; g0 += kLanes * U) {
        float xv[U][NT][8];  // activations first: the weight loads below are then all in flight
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int g = min(g0 + kLanes * u, n_groups - 1);
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(t) * n_in) + 2 * g;
                const float4 a = __ldg(xp), b = __ldg(xp + 1);
                xv[u][t][0] = a.x; xv[u][t][1] = a.y; xv[u][t][2] = a.z; xv[u][t][3] = a.w;
                xv[u][t][4] = b.x; xv[u][t][5] = b.y; xv[u][t][6] = b.z; xv[u][t][7] = b.w;
            }
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int g = g0 + kLanes * u;
            if (g >= n_groups) break;
#pragma unroll
            for (int r = 0; r < R; ++r) {
                if (row0 + r >= n_out) break;
                const uint8_t* row = W + static_cast<size_t>(row0 + r) * row_bytes;
#pragma unroll
                for (int t = 0; t < NT; ++t) acc[r][t] += Dot8<T>::dot(row, g, xv[u][t]);
            }
        }
    }
    // Reduce over the warp, then over the block's warps.
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            float s = acc[r][t];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
            if (threadIdx.x == 0) part[threadIdx.y][r * NT + t] = s;
        }
    __syncthreads();
    for (int i = tid; i < R * NT; i += kLanes) {
        const int r = i / NT, t = i % NT;
        if (row0 + r >= n_out) continue;
        float s = 0.0f;
#pragma unroll
        for (int w = 0; w < kGemvWarps; ++w) s += part[w][i];
        float& out = y[static_cast<size_t>(t) * n_out + row0 + r];
        out = accumulate ? out + s : s;
    }
}

// Tiles: 64 weight rows (m) x 64 tokens (n), k in steps of 64 (two chunks per row).
constexpr int kTM = 64, kTN = 64, kTK = 64, kPad = 1;

template <GGMLType T>
__global__ void __launch_bounds__(256) gemm_kernel(const uint8_t* __restrict__ W, size_t row_bytes, int n_in,
                                                    int n_out, const float* __restrict__ x, float* __restrict__ y,
                                                    int n_tok, bool accumulate) {
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
            if (m < n_out && n < n_tok) {
                float& out = y[static_cast<size_t>(n) * n_out + m];
                out = accumulate ? out + acc[i][j] : acc[i][j];
            }
        }
}

template <GGMLType T, int NT>
void launch_gemv(const uint8_t* W, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x, float* y,
                 bool accumulate, cudaStream_t stream) {
    constexpr int R = NT <= 2 ? 1 : 2;  // rows per block: activations are reused R times
    constexpr int U = NT <= 2 ? 4 : 2;  // steps in flight per lane
    const dim3 block(32, kGemvWarps);
    gemv_kernel<T, NT, R, U><<<blocks_for(n_out, R), block, 0, stream>>>(
        W, row_bytes, static_cast<int>(n_in), static_cast<int>(n_out), x, y, accumulate);
}

template <GGMLType T>
void launch(const uint8_t* W, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x, float* y,
            int64_t n_tok, bool accumulate, cudaStream_t stream) {
    // Activations are read in float4s: rows of whole chunks keep them 16-byte aligned.
    if (n_tok <= kGemvMaxTok) {
        switch (n_tok) {
            case 1: launch_gemv<T, 1>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            case 2: launch_gemv<T, 2>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            case 3: launch_gemv<T, 3>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            case 4: launch_gemv<T, 4>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            case 5: launch_gemv<T, 5>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            case 6: launch_gemv<T, 6>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            case 7: launch_gemv<T, 7>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
            default: launch_gemv<T, 8>(W, row_bytes, n_in, n_out, x, y, accumulate, stream); break;
        }
        check_launch("gemv");
        return;
    }
    const dim3 grid(blocks_for(n_out, kTM), blocks_for(n_tok, kTN));
    gemm_kernel<T><<<grid, 256, 0, stream>>>(W, row_bytes, static_cast<int>(n_in), static_cast<int>(n_out), x, y,
                                             static_cast<int>(n_tok), accumulate);
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
             int64_t n_tok, cudaStream_t stream, bool accumulate) {
    if (n_in % 32 != 0)
        throw InvalidArgument("CUDA matmul needs rows of whole 32-element chunks; got " + std::to_string(n_in));
    switch (t) {
#define PYLLONG_CASE(name) \
    case GGMLType::name: return launch<GGMLType::name>(W, row_bytes, n_in, n_out, x, y, n_tok, accumulate, stream);
        PYLLONG_CUDA_TYPES(PYLLONG_CASE)
#undef PYLLONG_CASE
        default:
            throw InvalidArgument(std::string("the CUDA backend has no kernel for tensor type ") +
                                  type_name(static_cast<uint32_t>(t)));
    }
}

}  // namespace pyllong::cuda
