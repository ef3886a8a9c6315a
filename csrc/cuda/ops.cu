// The element-wise and row-wise ops of the forward pass on the device, each the CPU op of
// the same name (ops/norm.cpp, ops/rope.cpp, model/context.cpp) in the same precision:
// norms reduce in double, rotary angles are computed in double, f16 rounding is RNE.
#include <algorithm>

#include "cuda/common.cuh"
#include "cuda/kernels.cuh"
#include "cuda/q8.cuh"

namespace pyllong::cuda {

namespace {

constexpr int kThreads = 256;

// Sum over the block (kThreads threads) of v; every thread gets the result.
__device__ double block_sum(double v) {
    __shared__ double part[kThreads / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();  // part[] may still be read by the previous call
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    double s = 0;
    for (int i = 0; i < kThreads / 32; ++i) s += part[i];
    return s;
}

// Sum over a block of any size (a multiple of 32, up to 1024) of v; every thread gets it.
__device__ double block_sum_any(double v) {
    __shared__ double part[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
    __syncthreads();
    double s = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) s += part[i];
    return s;
}

// RMSNorm of one row per block, the row held in registers: thread t has float4s t, t + T, ...
// (kPer of them; T = blockDim.x threads), so x is read once, in 16-byte loads, and a decode
// step's norm (one row, one block) is a single round trip to memory rather than dim / 256
// dependent ones. With q8 (dim a multiple of 32) each 8 lanes quantize their 32 elements.
template <int kPer>
__global__ void rms_norm_rows_kernel(const float* x, const float* w, float* out, int dim, float eps, Q8Act q8) {
    pdl_trigger();  // the matmul after it may launch and stream its weights in meanwhile
    const int n4 = dim / 4;
    const float4* xr = reinterpret_cast<const float4*>(x + static_cast<size_t>(blockIdx.x) * dim);
    float4 v[kPer];
    double ss = 0;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int i = threadIdx.x + j * blockDim.x;
        v[j] = i < n4 ? xr[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        ss += static_cast<double>(v[j].x) * v[j].x + static_cast<double>(v[j].y) * v[j].y +
              static_cast<double>(v[j].z) * v[j].z + static_cast<double>(v[j].w) * v[j].w;
    }
    ss = block_sum_any(ss);
    const float scale = static_cast<float>(1.0 / sqrt(ss / dim + eps));
    const float4* wr = reinterpret_cast<const float4*>(w);
    float4* o = reinterpret_cast<float4*>(out + static_cast<size_t>(blockIdx.x) * dim);
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        const int i = threadIdx.x + j * blockDim.x;
        float4 r = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (i < n4) {
            const float4 g = wr[i];
            r = make_float4(v[j].x * scale * g.x, v[j].y * scale * g.y, v[j].z * scale * g.z, v[j].w * scale * g.w);
            o[i] = r;
        }
        if (q8.q) q8_store_quad(r, static_cast<int64_t>(blockIdx.x) * n4 + i, i < n4, q8);
    }
}

// With q8 (dim a multiple of 32), a warp's pass covers one 32-block: the loops' bounds are
// warp-uniform, so the whole warp quantizes it.
__global__ void rms_norm_kernel(const float* x, const float* w, float* out, int dim, float eps, Q8Act q8) {
    const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    float* o = out + static_cast<size_t>(blockIdx.x) * dim;
    double ss = 0;
    for (int i = threadIdx.x; i < dim; i += kThreads) ss += static_cast<double>(xr[i]) * xr[i];
    ss = block_sum(ss);
    const float scale = static_cast<float>(1.0 / sqrt(ss / dim + eps));
    for (int i = threadIdx.x; i < dim; i += kThreads) {
        o[i] = xr[i] * scale * w[i];
        if (q8.q) q8_store_block(o[i], (static_cast<int64_t>(blockIdx.x) * dim + i) / 32, q8);
    }
}

__global__ void layer_norm_kernel(const float* x, const float* w, const float* b, float* out, int dim, float eps,
                                  Q8Act q8) {
    const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    float* o = out + static_cast<size_t>(blockIdx.x) * dim;
    double s = 0;
    for (int i = threadIdx.x; i < dim; i += kThreads) s += xr[i];
    const double mean = block_sum(s) / dim;
    double var = 0;
    for (int i = threadIdx.x; i < dim; i += kThreads) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / sqrt(block_sum(var) / dim + eps);
    for (int i = threadIdx.x; i < dim; i += kThreads) {
        o[i] = static_cast<float>((xr[i] - mean) * inv) * w[i] + (b ? b[i] : 0.0f);
        if (q8.q) q8_store_block(o[i], (static_cast<int64_t>(blockIdx.x) * dim + i) / 32, q8);
    }
}
// Flat (n,) buffers whose length is a multiple of 32: a warp is one block.
__global__ void quantize_q8_kernel(const float* x, int64_t n, Q8Act q8) {
    pdl_trigger();
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i < n) q8_store_block(x[i], i / 32, q8);
}

__global__ void add_bias_kernel(float* x, const float* b, int64_t n, int64_t dim) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i < n * dim) x[i] += b[i % dim];
}
__device__ __forceinline__ float silu(float x) { return x / (1.0f + expf(-x)); }
__global__ void swiglu_kernel(const float* gate, float* up, int64_t n) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i < n) up[i] *= silu(gate[i]);
}
__global__ void swiglu_fused_kernel(const float* gu, float* up, int64_t n_tok, int64_t F, Q8Act q8) {
    pdl_trigger();
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n_tok * F) return;  // warp-uniform with q8 (F a multiple of 32)
    const int64_t t = i / F, f = i % F;
    up[i] = silu(gu[t * 2 * F + f]) * gu[t * 2 * F + F + f];
    if (q8.q) q8_store_block(up[i], i / 32, q8);
}
__global__ void gelu_kernel(float* x, int64_t n) {  // tanh approximation, as ggml and the CPU path
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n) return;
    const float v = x[i], k = 0.7978845608028654f;
    x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
}
__global__ void split_qkv_kernel(const float* qkv, float* q, float* k, float* v, int64_t n, int64_t q_dim,
                                 int64_t kv_dim) {
    const int64_t row = q_dim + 2 * kv_dim;
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n * row) return;
    const int64_t t = i / row, c = i % row;
    if (c < q_dim) q[t * q_dim + c] = qkv[i];
    else if (c < q_dim + kv_dim) k[t * kv_dim + c - q_dim] = qkv[i];
    else v[t * kv_dim + c - q_dim - kv_dim] = qkv[i];
}

// Attention's first half in one kernel: one thread per (token, head — the n_head query heads
// then the n_head_kv key heads —, pair of dims). Pairs p < n_rot/2 rotate (dims p, p + n_rot/2
// for NeoX, else 2p, 2p + 1); the rest, dims 2p and 2p + 1 >= n_rot, pass through. Queries
// and keys rotate in place at pos; with SelfExtend the unrotated pair also goes to qg (queries)
// or the cache's grouped keys, rotated at the group positions. Keys and values are stored as
// f16 into cells [step[0], step[0] + n_tok); the cells' positions into cell_pos (if not null).
// Angles in double, as the CPU rope.
__global__ void rope_store_kernel(float* q, float* k, const float* v, float* qg, __half* kc, __half* vc, __half* kgc,
                                  const int32_t* pos, const int32_t* qpos_g, const int32_t* kpos_g,
                                  const int32_t* step, int32_t* cell_pos, int64_t n_tok, int n_head, int n_head_kv,
                                  int hd, int n_rot, bool neox, const double* inv_freq) {
    const int half = hd / 2, rot_half = n_rot / 2, heads = n_head + n_head_kv;
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n_tok * heads * half) return;
    const int p = static_cast<int>(i % half), h = static_cast<int>((i / half) % heads);
    const int64_t t = i / (static_cast<int64_t>(half) * heads);
    const bool is_q = h < n_head, rotated = p < rot_half;
    const int hh = is_q ? h : h - n_head;
    const int a = rotated && neox ? p : 2 * p, b = rotated && neox ? p + rot_half : 2 * p + 1;
    const int64_t row = is_q ? (t * n_head + hh) * hd : (t * n_head_kv + hh) * hd;
    float* x = (is_q ? q : k) + row;
    const float x0 = x[a], x1 = x[b];
    auto rotate = [&](int32_t at, float& r0, float& r1) {
        r0 = x0; r1 = x1;
        if (!rotated) return;
        double s, c;
        sincos(static_cast<double>(at) * inv_freq[p], &s, &c);
        const float cf = static_cast<float>(c), sf = static_cast<float>(s);
        r0 = x0 * cf - x1 * sf;
        r1 = x0 * sf + x1 * cf;
    };
    float r0, r1, g0 = 0.0f, g1 = 0.0f;
    rotate(pos[t], r0, r1);
    const bool se = qpos_g != nullptr;
    if (se) rotate(is_q ? qpos_g[t] : kpos_g[t], g0, g1);
    x[a] = r0;
    x[b] = r1;
    if (is_q) {
        if (se) { qg[row + a] = g0; qg[row + b] = g1; }
        return;
    }
    const int64_t kv_dim = static_cast<int64_t>(n_head_kv) * hd, cell = step[0];
    const int64_t o = (cell + t) * kv_dim + static_cast<int64_t>(hh) * hd;
    kc[o + a] = __float2half_rn(r0);
    kc[o + b] = __float2half_rn(r1);
    vc[o + a] = __float2half_rn(v[row + a]);
    vc[o + b] = __float2half_rn(v[row + b]);
    if (se) { kgc[o + a] = __float2half_rn(g0); kgc[o + b] = __float2half_rn(g1); }
    if (cell_pos && hh == 0 && p == 0) cell_pos[cell + t] = pos[t];
}

int grid(int64_t n) { return blocks_for(n, kThreads); }

Q8Act q8_or_none(const Q8Act* q8, int64_t dim) {
    if (q8 && dim % 32 != 0) throw InvalidArgument("8-bit activations need rows of whole 32-blocks");
    return q8 ? *q8 : Q8Act{};
}

}  // namespace

void quantize_q8(const float* x, int64_t n_tok, int64_t n_in, const Q8Act& xq, cudaStream_t stream) {
    if (n_in % 32 != 0) throw InvalidArgument("8-bit activations need rows of whole 32-blocks");
    if (n_tok == 0) return;
    launch(quantize_q8_kernel, grid(n_tok * n_in), kThreads, stream, false, x, n_tok * n_in, xq);
    check_launch("quantize_q8");
}
void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t dim, float eps, cudaStream_t stream,
              const Q8Act* q8) {
    if (n == 0) return;
    const Q8Act xq = q8_or_none(q8, dim);
    const int64_t n4 = dim / 4, threads = std::min<int64_t>(1024, (n4 + 31) / 32 * 32);
    const int64_t per = (n4 + threads - 1) / threads;
    const unsigned rows = static_cast<unsigned>(n), t = static_cast<unsigned>(threads);
    const int d = static_cast<int>(dim);
    if (dim % 4 != 0 || per > 4) launch(rms_norm_kernel, rows, kThreads, stream, false, x, w, out, d, eps, xq);
    else if (per == 1) launch(rms_norm_rows_kernel<1>, rows, t, stream, false, x, w, out, d, eps, xq);
    else if (per == 2) launch(rms_norm_rows_kernel<2>, rows, t, stream, false, x, w, out, d, eps, xq);
    else launch(rms_norm_rows_kernel<4>, rows, t, stream, false, x, w, out, d, eps, xq);
    check_launch("rms_norm");
}
void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, float eps,
                cudaStream_t stream, const Q8Act* q8) {
    if (n == 0) return;
    launch(layer_norm_kernel, static_cast<unsigned>(n), kThreads, stream, false, x, w, b, out, static_cast<int>(dim),
           eps, q8_or_none(q8, dim));
    check_launch("layer_norm");
}
void add_bias(float* x, const float* b, int64_t n, int64_t dim, cudaStream_t stream) {
    if (!b || n == 0) return;
    launch(add_bias_kernel, grid(n * dim), kThreads, stream, false, x, b, n, dim);
    check_launch("add_bias");
}
void swiglu(const float* gate, float* up, int64_t n, cudaStream_t stream) {
    launch(swiglu_kernel, grid(n), kThreads, stream, false, gate, up, n);
    check_launch("swiglu");
}
void swiglu_fused(const float* gu, float* up, int64_t n_tok, int64_t F, cudaStream_t stream, const Q8Act* q8) {
    launch(swiglu_fused_kernel, grid(n_tok * F), kThreads, stream, false, gu, up, n_tok, F, q8_or_none(q8, F));
    check_launch("swiglu_fused");
}
void gelu(float* x, int64_t n, cudaStream_t stream) {
    launch(gelu_kernel, grid(n), kThreads, stream, false, x, n);
    check_launch("gelu");
}
void split_qkv(const float* qkv, float* q, float* k, float* v, int64_t n, int64_t q_dim, int64_t kv_dim,
               cudaStream_t stream) {
    launch(split_qkv_kernel, grid(n * (q_dim + 2 * kv_dim)), kThreads, stream, false, qkv, q, k, v, n, q_dim, kv_dim);
    check_launch("split_qkv");
}
void rope_store(float* q, float* k, const float* v, int64_t n, const DeviceKV& kv, const AttentionShape& s,
                const StepBuffers& b, cudaStream_t stream) {
    if (n == 0) return;
    const bool se = s.self_extend.enabled();
    const int64_t threads = n * (s.n_head + s.n_head_kv) * (s.head_dim / 2);
    launch(rope_store_kernel, grid(threads), kThreads, stream, false, q, k, v, se ? b.qg : nullptr, kv.k, kv.v, se ? kv.kg : nullptr, b.pos, se ? b.qpos_g : nullptr,
        se ? b.kpos_g : nullptr, b.step, b.cell_pos, n, static_cast<int>(s.n_head), static_cast<int>(s.n_head_kv),
        static_cast<int>(s.head_dim), static_cast<int>(b.n_rot), b.neox, b.inv_freq);
    check_launch("rope_store");
}

}  // namespace pyllong::cuda
