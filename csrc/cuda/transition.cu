// Attention Transition on the device (attention/transition.h; spec: attention-transition.md):
// the rows of a prompt chunk that lie in this layer's bands are computed again with their
// full probability vector, which the online-softmax kernel never holds, edited as step 4 of
// the spec says, and multiplied with the values into the attention output — what
// attend_banded_rows does on the CPU. One block of kTile threads per (row, head); the row's
// probabilities live in a scratch row of n_kv floats.
#include <algorithm>

#include "core/error.h"
#include "cuda/attention_rows.cuh"
#include "cuda/kernels.cuh"

namespace pyllong::cuda {

namespace {

using namespace attention_rows;

struct Band {
    int I;
    float alpha, beta;
};

template <bool kVec8>
__global__ void __launch_bounds__(kTile) transition_kernel(
    const float* __restrict__ q, const float* __restrict__ q_group, const int32_t* __restrict__ q_pos, int t0,
    const __half* __restrict__ kc, const __half* __restrict__ vc, const __half* __restrict__ kgc,
    const int32_t* __restrict__ k_pos, const int32_t* __restrict__ step, int n_head, int n_head_kv, int hd, int kv_dim,
    float scale, int sliding_window, int se_window, Band band, float* __restrict__ scratch, int64_t scratch_stride,
    float* __restrict__ out) {
    __shared__ float qs[kMaxHeadDim], qgs[kMaxHeadDim], red[kTile / 32];
    const int t = t0 + static_cast<int>(blockIdx.x), h = static_cast<int>(blockIdx.y), tid = threadIdx.x;
    const int g = h / (n_head / n_head_kv);
    const int64_t row = static_cast<int64_t>(t) * n_head + h;
    const int32_t pq = q_pos[t];
    const int n_kv = step[1];
    float* p = scratch + (static_cast<int64_t>(blockIdx.x) * n_head + h) * scratch_stride;  // (n_kv,)
    for (int d = tid; d < hd; d += kTile) {
        qs[d] = q[row * hd + d];
        if (q_group) qgs[d] = q_group[row * hd + d];
    }
    __syncthreads();
    // Softmax over the visible keys, as the attention kernel scores them.
    float mx = -INFINITY;
    for (int j = tid; j < n_kv; j += kTile) {
        const int32_t pk = k_pos[j];
        float s = -INFINITY;
        if (visible(pq, pk, sliding_window)) {
            const size_t off = static_cast<size_t>(j) * kv_dim + static_cast<size_t>(g) * hd;
            s = scale * (grouped(pq, pk, se_window) ? dot_row<kVec8>(qgs, kgc + off, hd) : dot_row<kVec8>(qs, kc + off, hd));
        }
        p[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = tid; j < n_kv; j += kTile) {
        const float e = p[j] == -INFINITY ? 0.0f : expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    if (sum == 0.0f) {  // no visible key (the same for the whole block): 0, as on the CPU
        for (int d = tid; d < hd; d += kTile) out[row * hd + d] = 0.0f;
        return;
    }
    const float inv = 1.0f / sum;
    // Step 4 on keys [0, ne), keys indexed by cell = position (a prompt pass from cell 0).
    const int I = band.I, s0 = pq - pq % I, e = s0 + I, ne = min(e, n_kv);
    const float tau = band.alpha / static_cast<float>(e);
    float kept = 0.0f;
    for (int j = tid; j < n_kv; j += kTile) {
        float v = p[j] * inv;
        if (j < ne && v < tau) v = 0.0f;
        if (j == 0) v *= 0.5f;
        p[j] = v;
        if (j < ne) kept += v;
    }
    const float removed = 1.0f - block_sum(kept, red);  // E; block_sum's barriers publish p[]
    // Mass handed to the text before the band: keys [m0, m1) weigh M = 1 where p >= tau, else
    // a floor; each key gets one addition (10 a M on the first band; else 7 a M on the last I
    // keys, 3 a M on the I before), M read before any addition.
    const bool first_band = s0 == I;
    const int m0 = first_band ? 0 : s0 - 2 * I, m1 = e - I;
    const float floor_w = first_band ? 0.001f : 0.01f;
    float sum_m = 0.0f;
    for (int j = m0 + tid; j < m1; j += kTile) sum_m += p[j] >= tau ? 1.0f : floor_w;
    const float a = band.beta * removed / block_sum(sum_m, red);
    for (int j = m0 + tid; j < m1; j += kTile) {
        const float w = first_band ? 10.0f : j >= s0 - I ? 7.0f : 3.0f;
        p[j] += w * a * (p[j] >= tau ? 1.0f : floor_w);
    }
    __syncthreads();
    // out = P . V with the edited (not renormalized) weights.
    for (int d = tid; d < hd; d += kTile) {
        const __half* vp = vc + static_cast<size_t>(g) * hd + d;
        float acc = 0.0f;
        for (int j = 0; j < n_kv; ++j)
            if (p[j] != 0.0f) acc += p[j] * __half2float(vp[static_cast<size_t>(j) * kv_dim]);
        out[row * hd + d] = acc;
    }
}

}  // namespace

int64_t transition_scratch_rows(int64_t n_head, int64_t n_ctx, int64_t n_batch) {
    constexpr int64_t kBytes = int64_t{256} << 20;  // at most this much scratch
    return std::max<int64_t>(1, std::min<int64_t>(n_batch, kBytes / (n_head * n_ctx * 4)));
}

void transition_rows(const float* q, const float* q_group, const int32_t* q_pos, int64_t t0, int64_t n_rows,
                     const DeviceKV& kv, const int32_t* k_pos, const int32_t* step, const AttentionShape& s,
                     const TransitionLayer& tl, float* scratch, int64_t scratch_rows, int64_t n_ctx, float* out,
                     cudaStream_t stream) {
    const bool vec8 = s.head_dim % 8 == 0 && kv.kv_dim % 8 == 0;
    const int se_window = s.self_extend.enabled() ? static_cast<int>(s.self_extend.window) : 0;
    const Band band{static_cast<int>(tl.I), tl.alpha, tl.beta};
    for (int64_t r = 0; r < n_rows; r += scratch_rows) {
        const dim3 grid(static_cast<unsigned>(std::min(scratch_rows, n_rows - r)), static_cast<unsigned>(s.n_head));
        auto run = [&](auto kernel) {
            launch(kernel, grid, kTile, stream, false, q, q_group, q_pos, static_cast<int>(t0 + r), kv.k, kv.v, kv.kg,
                   k_pos, step, static_cast<int>(s.n_head), static_cast<int>(s.n_head_kv),
                   static_cast<int>(s.head_dim), static_cast<int>(kv.kv_dim), s.scale,
                   static_cast<int>(s.sliding_window), se_window, band, scratch, n_ctx, out);
        };
        if (vec8) run(transition_kernel<true>);
        else run(transition_kernel<false>);
        check_launch("transition");
    }
}

}  // namespace pyllong::cuda
