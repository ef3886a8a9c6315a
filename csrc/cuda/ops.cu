// The element-wise and row-wise ops of the forward pass on the device, each the CPU op of
// the same name (ops/norm.cpp, ops/rope.cpp, model/context.cpp) in the same precision:
// norms reduce in double, rotary angles are computed in double, f16 rounding is RNE.
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"

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

__global__ void rms_norm_kernel(const float* x, const float* w, float* out, int dim, float eps) {
    const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    float* o = out + static_cast<size_t>(blockIdx.x) * dim;
    double ss = 0;
    for (int i = threadIdx.x; i < dim; i += kThreads) ss += static_cast<double>(xr[i]) * xr[i];
    ss = block_sum(ss);
    const float scale = static_cast<float>(1.0 / sqrt(ss / dim + eps));
    for (int i = threadIdx.x; i < dim; i += kThreads) o[i] = xr[i] * scale * w[i];
}

__global__ void layer_norm_kernel(const float* x, const float* w, const float* b, float* out, int dim, float eps) {
    const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
    float* o = out + static_cast<size_t>(blockIdx.x) * dim;
    double s = 0;
    for (int i = threadIdx.x; i < dim; i += kThreads) s += xr[i];
    const double mean = block_sum(s) / dim;
    double var = 0;
    for (int i = threadIdx.x; i < dim; i += kThreads) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / sqrt(block_sum(var) / dim + eps);
    for (int i = threadIdx.x; i < dim; i += kThreads)
        o[i] = static_cast<float>((xr[i] - mean) * inv) * w[i] + (b ? b[i] : 0.0f);
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
__global__ void swiglu_fused_kernel(const float* gu, float* up, int64_t n_tok, int64_t F) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n_tok * F) return;
    const int64_t t = i / F, f = i % F;
    up[i] = silu(gu[t * 2 * F + f]) * gu[t * 2 * F + F + f];
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

// One thread per (token, head, rotated pair).
__global__ void rope_kernel(float* x, const int32_t* pos, int64_t n_tok, int64_t n_head, int64_t head_dim,
                            int64_t n_rot, bool neox, const double* inv_freq) {
    const int64_t half = n_rot / 2;
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n_tok * n_head * half) return;
    const int64_t p = i % half, h = (i / half) % n_head, t = i / (half * n_head);
    double s, c;
    sincos(static_cast<double>(pos[t]) * inv_freq[p], &s, &c);
    const float cf = static_cast<float>(c), sf = static_cast<float>(s);
    float* v = x + (t * n_head + h) * head_dim;
    const int64_t a = neox ? p : 2 * p, b = neox ? p + half : 2 * p + 1;
    const float x0 = v[a], x1 = v[b];
    v[a] = x0 * cf - x1 * sf;
    v[b] = x0 * sf + x1 * cf;
}

__global__ void kv_store_kernel(__half* kc, __half* vc, __half* kgc, const float* k, const float* v, const float* kg,
                                int64_t n_tok, int64_t kv_dim, const int32_t* step, const int32_t* pos,
                                int32_t* cell_pos) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(kThreads) + threadIdx.x;
    if (i >= n_tok * kv_dim) return;
    const int64_t cell = step[0], o = cell * kv_dim + i;
    kc[o] = __float2half_rn(k[i]);
    vc[o] = __float2half_rn(v[i]);
    if (kgc) kgc[o] = __float2half_rn(kg[i]);
    if (i % kv_dim == 0 && cell_pos) cell_pos[cell + i / kv_dim] = pos[i / kv_dim];
}

int grid(int64_t n) { return blocks_for(n, kThreads); }

}  // namespace

void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t dim, float eps, cudaStream_t stream) {
    if (n == 0) return;
    rms_norm_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, w, out, static_cast<int>(dim), eps);
    check_launch("rms_norm");
}
void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, float eps,
                cudaStream_t stream) {
    if (n == 0) return;
    layer_norm_kernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, w, b, out, static_cast<int>(dim), eps);
    check_launch("layer_norm");
}
void add_bias(float* x, const float* b, int64_t n, int64_t dim, cudaStream_t stream) {
    if (!b || n == 0) return;
    add_bias_kernel<<<grid(n * dim), kThreads, 0, stream>>>(x, b, n, dim);
    check_launch("add_bias");
}
void swiglu(const float* gate, float* up, int64_t n, cudaStream_t stream) {
    swiglu_kernel<<<grid(n), kThreads, 0, stream>>>(gate, up, n);
    check_launch("swiglu");
}
void swiglu_fused(const float* gu, float* up, int64_t n_tok, int64_t F, cudaStream_t stream) {
    swiglu_fused_kernel<<<grid(n_tok * F), kThreads, 0, stream>>>(gu, up, n_tok, F);
    check_launch("swiglu_fused");
}
void gelu(float* x, int64_t n, cudaStream_t stream) {
    gelu_kernel<<<grid(n), kThreads, 0, stream>>>(x, n);
    check_launch("gelu");
}
void split_qkv(const float* qkv, float* q, float* k, float* v, int64_t n, int64_t q_dim, int64_t kv_dim,
               cudaStream_t stream) {
    split_qkv_kernel<<<grid(n * (q_dim + 2 * kv_dim)), kThreads, 0, stream>>>(qkv, q, k, v, n, q_dim, kv_dim);
    check_launch("split_qkv");
}
void rope(float* x, const int32_t* pos, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot, bool neox,
          const double* inv_freq, cudaStream_t stream) {
    if (n_rot < 2 || n_tok == 0) return;
    rope_kernel<<<grid(n_tok * n_head * (n_rot / 2)), kThreads, 0, stream>>>(x, pos, n_tok, n_head, head_dim, n_rot,
                                                                           neox, inv_freq);
    check_launch("rope");
}
void kv_store(const DeviceKV& kv, const int32_t* step, const float* k, const float* v, const float* kg, int64_t n,
              const int32_t* pos, int32_t* cell_pos, cudaStream_t stream) {
    kv_store_kernel<<<grid(n * kv.kv_dim), kThreads, 0, stream>>>(kv.k, kv.v, kv.kg, k, v, kg, n, kv.kv_dim, step, pos,
                                                                  cell_pos);
    check_launch("kv_store");
}

}  // namespace pyllong::cuda
