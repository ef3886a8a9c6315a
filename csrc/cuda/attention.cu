// Attention over the device KV cache: the CPU's one loop (attention/attention.cpp) with
// the same policies — causal and sliding-window masks, SelfExtend's per-pair choice of
// neighbour or grouped rotations. One block per (query token, head) and key split; keys
// go in tiles of kTile, one thread per key for the scores and one thread per dimension
// for the values, with an online softmax. Splits (flash-decoding) give a single decode
// token enough blocks to fill the GPU; a second kernel merges them by log-sum-exp.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "cuda/attention_rows.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"
#include "cuda/q8.cuh"

namespace pyllong::cuda {

namespace {

using namespace attention_rows;
constexpr int kDimsPerThread = kMaxHeadDim / kTile;
constexpr int kMaxSplits = 64;
constexpr int kKeysPerSplit = 128;  // fewest keys worth a split of their own: one tile

// The partial result of one (row, split) in the scratch: acc (hd,), then m and l.
template <class F>
__device__ F* split_at(F* partial, int64_t row, int s, int n_split, int hd) {
    return partial + (row * n_split + s) * static_cast<int64_t>(hd + 2);
}

template <bool kVec8>
__global__ void __launch_bounds__(kTile) attention_kernel(
    const float* __restrict__ q, const float* __restrict__ q_group, const int32_t* __restrict__ q_pos,
    const __half* __restrict__ kc, const __half* __restrict__ vc, const __half* __restrict__ kgc,
    const int32_t* __restrict__ k_pos, const int32_t* __restrict__ step, int n_head, int n_head_kv, int hd, int kv_dim, float scale,
    int sliding_window, int se_window, int n_split, int split_stride, float* __restrict__ partial) {
    __shared__ float qs[kMaxHeadDim], qgs[kMaxHeadDim], p[kTile], red[kTile / 32];
    const int64_t row = blockIdx.x;  // t * n_head + h
    const int t = static_cast<int>(row / n_head), h = static_cast<int>(row % n_head);
    const int g = h / (n_head / n_head_kv), split = blockIdx.y, tid = threadIdx.x;
    const int32_t pq = q_pos[t];
    const int n_kv = step[1];
    for (int d = tid; d < hd; d += kTile) {
        qs[d] = q[row * hd + d];
        if (q_group) qgs[d] = q_group[row * hd + d];
    }
    const int per = (n_kv + n_split - 1) / n_split;
    const int j_begin = split * per, j_end = min(n_kv, j_begin + per);
    float m = -INFINITY, l = 0.0f, acc[kDimsPerThread] = {};
    // kTile threads cover hd dims `parts` times over (2 for hd 64, 1 for hd 128 or 80).
    const int parts = max(1, kTile / hd);
    __syncthreads();
    for (int j0 = j_begin; j0 < j_end; j0 += kTile) {
        // Scores: thread tid takes key j0 + tid.
        const int j = j0 + tid;
        float s = -INFINITY;
        if (j < j_end) {
            const int32_t pk = k_pos[j];
            if (visible(pq, pk, sliding_window)) {
                const size_t off = static_cast<size_t>(j) * kv_dim + static_cast<size_t>(g) * hd;
                s = scale * (grouped(pq, pk, se_window) ? dot_row<kVec8>(qgs, kgc + off, hd)
                                                         : dot_row<kVec8>(qs, kc + off, hd));
            }
        }
        const float tmax = block_max(s, red);
        if (tmax == -INFINITY) continue;  // uniform across the block: every thread skips
        const float m_new = fmaxf(m, tmax), corr = expf(m - m_new);
        const float e = s == -INFINITY ? 0.0f : expf(s - m_new);
        p[tid] = e;
        l = l * corr + block_sum(e, red);  // block_sum's barrier also publishes p[]
        m = m_new;
        const int nk = min(kTile, j_end - j0);
        // Values: thread (d, part) sums keys part, part + parts, ... of the tile for dims d.
#pragma unroll
        for (int i = 0; i < kDimsPerThread; ++i) {
            const int slot = tid + i * kTile, d = slot % hd, part = slot / hd;
            if (part >= parts) break;
            const __half* vp = vc + static_cast<size_t>(j0) * kv_dim + static_cast<size_t>(g) * hd + d;
            // Eight loads in flight before their sums: the chain is latency-bound otherwise.
            constexpr int kUnroll = 8;
            float a0 = 0.0f, a1 = 0.0f;
            int jj = part;
            for (; jj + (kUnroll - 1) * parts < nk; jj += kUnroll * parts) {
                float vv[kUnroll];
#pragma unroll
                for (int u = 0; u < kUnroll; ++u) vv[u] = __half2float(vp[static_cast<size_t>(jj + u * parts) * kv_dim]);
#pragma unroll
                for (int u = 0; u < kUnroll; u += 2) {
                    a0 += p[jj + u * parts] * vv[u];
                    a1 += p[jj + (u + 1) * parts] * vv[u + 1];
                }
            }
            for (; jj < nk; jj += parts) a0 += p[jj] * __half2float(vp[static_cast<size_t>(jj) * kv_dim]);
            acc[i] = acc[i] * corr + a0 + a1;
        }
        __syncthreads();  // p[] is rewritten by the next tile
    }
    // Sum the parts of each dim through shared memory (p[] is free now: the loop ended on a barrier).
    __shared__ float sum[kTile * kDimsPerThread];
#pragma unroll
    for (int i = 0; i < kDimsPerThread; ++i) sum[tid + i * kTile] = acc[i];
    __syncthreads();
    float* out = split_at(partial, row, split, split_stride, hd);
    for (int d = tid; d < hd; d += kTile) {
        float a = 0.0f;
        for (int part = 0; part < parts; ++part) {
            const int slot = part * hd + d;
            if (slot < kTile * kDimsPerThread) a += sum[slot];
        }
        out[d] = a;
    }
    if (tid == 0) { out[hd] = m; out[hd + 1] = l; }
}

// out[row] = sum_s w_s acc_s / sum_s w_s l_s with w_s = exp(m_s - max m): exact merge. Thread
// s < n_split (blockDim = kMaxSplits) reads split s's m and l, so the weights take one round
// trip; then thread d sums its dimension over the splits. With q8 (hd a multiple of 32), out
// is also quantized for the output matmul: each warp's pass over d covers one 32-block.
__global__ void __launch_bounds__(kMaxSplits) merge_kernel(const float* __restrict__ partial, int n_split, int hd,
                                                           float* __restrict__ out, Q8Act q8) {
    __shared__ float w[kMaxSplits], red[kMaxSplits / 32];
    pdl_trigger();
    const int64_t row = blockIdx.x;
    const int tid = threadIdx.x;
    float m = -INFINITY, l = 0.0f;
    if (tid < n_split) {
        const float* ps = split_at(partial, row, tid, n_split, hd);
        m = ps[hd];
        l = ps[hd + 1];
    }
    float M = m;
    for (int o = 16; o > 0; o >>= 1) M = fmaxf(M, __shfl_xor_sync(0xffffffffu, M, o));
    if (tid % 32 == 0) red[tid / 32] = M;
    __syncthreads();
    M = red[0];
    for (int i = 1; i < kMaxSplits / 32; ++i) M = fmaxf(M, red[i]);
    const float ws = m == -INFINITY ? 0.0f : expf(m - M);  // a split that saw no key weighs 0
    w[tid] = ws;
    float L = ws * l;
    for (int o = 16; o > 0; o >>= 1) L += __shfl_xor_sync(0xffffffffu, L, o);
    __syncthreads();  // everyone has read red[] for M
    if (tid % 32 == 0) red[tid / 32] = L;
    __syncthreads();
    L = 0.0f;
    for (int i = 0; i < kMaxSplits / 32; ++i) L += red[i];
    for (int d = tid; d < hd; d += kMaxSplits) {
        float a = 0.0f;
        for (int s = 0; s < n_split; ++s)
            if (w[s] != 0.0f) a += w[s] * split_at(partial, row, s, n_split, hd)[d];
        out[row * hd + d] = L > 0.0f ? a / L : 0.0f;  // a query that sees no key gives 0, as on the CPU
        if (q8.q) q8_store_block(out[row * hd + d], (row * hd + d) / 32, q8);
    }
}

int splits_for(int64_t n_rows, int64_t n_kv) {
    // Enough blocks for ~4 waves over 132 SMs; never a split of fewer than kKeysPerSplit keys.
    const int64_t want = (4 * 132 + n_rows - 1) / n_rows;
    const int64_t most = std::max<int64_t>(1, n_kv / kKeysPerSplit);
    return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({want, most, kMaxSplits})));
}

}  // namespace

int attention_splits(int64_t n_tok, int64_t n_head, int64_t n_kv_bound, int reserved) {
    return std::max(1, std::min(splits_for(n_tok * n_head, n_kv_bound), kMaxSplits - reserved));
}

int64_t attention_scratch_floats(int64_t n_tok, int64_t n_head, int64_t head_dim, int n_split) {
    return n_tok * n_head * n_split * (head_dim + 2);
}

void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const DeviceKV& kv,
               const int32_t* k_pos, const int32_t* step, int n_split, int n_extra, const AttentionShape& s, float* out,
               float* partial, int64_t partial_floats, cudaStream_t stream, const Q8Act* q8) {
    if (s.head_dim > kMaxHeadDim)
        throw InvalidArgument("the CUDA attention kernel supports head dimensions up to " +
                              std::to_string(kMaxHeadDim) + "; this model's is " + std::to_string(s.head_dim));
    const int64_t rows = n_tok * s.n_head;
    const int n_total = n_split + n_extra;
    if (rows * n_total * (s.head_dim + 2) > partial_floats || n_total > kMaxSplits)
        throw Error("attention scratch too small (a pyllong bug)");
    const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>(n_split));
    const bool vec8 = s.head_dim % 8 == 0 && kv.kv_dim % 8 == 0;
    const int se_window = s.self_extend.enabled() ? static_cast<int>(s.self_extend.window) : 0;
    auto args = [&](auto kernel) {
        launch(kernel, grid, kTile, stream, false, q, q_group, q_pos, kv.k, kv.v, kv.kg, k_pos, step,
               static_cast<int>(s.n_head), static_cast<int>(s.n_head_kv), static_cast<int>(s.head_dim),
               static_cast<int>(kv.kv_dim), s.scale, static_cast<int>(s.sliding_window), se_window, n_split, n_total,
               partial);
    };
    if (vec8) args(attention_kernel<true>);
    else args(attention_kernel<false>);
    check_launch("attention");
    if (q8 && s.head_dim % 32 != 0) throw Error("attention: 8-bit output needs head_dim % 32 == 0 (a pyllong bug)");
    launch(merge_kernel, static_cast<unsigned>(rows), kMaxSplits, stream, false, partial, n_total,
           static_cast<int>(s.head_dim), out, q8 ? *q8 : Q8Act{});
    check_launch("attention merge");
}

void attention_step(float* q, float* k, const float* v, int64_t n, const DeviceKV& kv, const AttentionShape& s,
                    const StepBuffers& b, float* out, cudaStream_t stream, const Q8Act* q8) {
    rope_store(q, k, v, n, kv, s, b, stream);
    attention(q, s.self_extend.enabled() ? b.qg : nullptr, b.pos, n, kv, b.cell_pos, b.step, b.n_split, b.n_extra, s, out,
              b.partial, b.partial_floats, stream, q8);
}

}  // namespace pyllong::cuda
