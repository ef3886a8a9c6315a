// Quantized matrix products on the device, and the weights' upload. Decode (few tokens):
// the weights are read once per call straight from their quantized bytes, so decode is bound
// by those bytes — packed formats (Q4_0, Q4_1, Q8_0) dot their 4- and 8-bit integers with
// 8-bit activations by dp4a, a warp per row and a 16-byte load per lane and block; the
// others dequantize to f32. Prefill (many tokens): 64x64 output tiles, weights dequantized
// into shared memory once per tile and reused by all 64 tokens.
#include <string>

#include "core/error.h"
#include "cuda/common.cuh"
#include "cuda/dequant.cuh"
#include "cuda/kernels.cuh"
#include "quant/formats.h"

namespace pyllong::cuda {

namespace {

constexpr int kGemvWarps = 4;  // warps per block

// The packed formats: a block is kSBytes of scale(s) then kQBytes of quants in the file;
// packed, all quants come first, then all scales. Elements l and l + 16 of a 4-bit block
// are the low and high nibbles of quant byte l.
template <GGMLType T>
struct Packed;
// sum over a 4-bit block of q * x (q unsigned, 0..15), the nibbles against 8-bit activations
// x0 (elements 0..15) and x1 (16..31), four at a time by dp4a.
__device__ __forceinline__ int dot_nibbles(uint4 w, int4 x0, int4 x1) {
    const uint32_t q[4] = {w.x, w.y, w.z, w.w};
    const int xa[4] = {x0.x, x0.y, x0.z, x0.w}, xb[4] = {x1.x, x1.y, x1.z, x1.w};
    int sum = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
        sum = __dp4a(static_cast<int>(q[i] & 0x0F0F0F0Fu), xa[i], sum);
        sum = __dp4a(static_cast<int>((q[i] >> 4) & 0x0F0F0F0Fu), xb[i], sum);
    }
    return sum;
}
template <>
struct Packed<GGMLType::Q4_0> {  // d * (q - 8)
    static constexpr int kQBytes = 16, kSBytes = 2;
    __device__ static float2 scale(const uint8_t* s, int64_t blk) { return make_float2(f16(s + 2 * blk), 0.0f); }
    // w: the block's quants; x0, x1: its activations 0..15 and 16..31; ds: (d, d * sum q) of x.
    __device__ static float dot(const uint4* w, int4 x0, int4 x1, float2 ds, float2 sc) {
        const int sum = dot_nibbles(w[0], x0, x1);
        return sc.x * (ds.x * static_cast<float>(sum) - 8.0f * ds.y);
    }
    __device__ static void dequant(const uint4* w, float2 sc, float* y) {
        const uint32_t q[4] = {w[0].x, w[0].y, w[0].z, w[0].w};
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const uint32_t b = (q[l / 4] >> (8 * (l % 4))) & 0xFF;
            y[l] = sc.x * static_cast<float>(static_cast<int>(b & 0xF) - 8);
            y[l + 16] = sc.x * static_cast<float>(static_cast<int>(b >> 4) - 8);
        }
    }
};
template <>
struct Packed<GGMLType::Q4_1> {  // d * q + m; scales half2 (d, m)
    static constexpr int kQBytes = 16, kSBytes = 4;
    __device__ static float2 scale(const uint8_t* s, int64_t blk) {
        return __half22float2(reinterpret_cast<const __half2*>(s)[blk]);
    }
    __device__ static float dot(const uint4* w, int4 x0, int4 x1, float2 ds, float2 sc) {
        const int sum = dot_nibbles(w[0], x0, x1);
        return sc.x * ds.x * static_cast<float>(sum) + sc.y * ds.y;  // sum (d q + m) d_x q_x
    }
    __device__ static void dequant(const uint4* w, float2 sc, float* y) {
        const uint32_t q[4] = {w[0].x, w[0].y, w[0].z, w[0].w};
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const uint32_t b = (q[l / 4] >> (8 * (l % 4))) & 0xFF;
            y[l] = sc.x * static_cast<float>(b & 0xF) + sc.y;
            y[l + 16] = sc.x * static_cast<float>(b >> 4) + sc.y;
        }
    }
};
template <>
struct Packed<GGMLType::Q8_0> {  // d * q
    static constexpr int kQBytes = 32, kSBytes = 2;
    __device__ static float2 scale(const uint8_t* s, int64_t blk) { return make_float2(f16(s + 2 * blk), 0.0f); }
    __device__ static float dot(const uint4* w, int4 x0, int4 x1, float2 ds, float2 sc) {
        const uint32_t q[8] = {w[0].x, w[0].y, w[0].z, w[0].w, w[1].x, w[1].y, w[1].z, w[1].w};
        const int xs[8] = {x0.x, x0.y, x0.z, x0.w, x1.x, x1.y, x1.z, x1.w};
        int sum = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) sum = __dp4a(static_cast<int>(q[i]), xs[i], sum);
        return sc.x * ds.x * static_cast<float>(sum);
    }
    __device__ static void dequant(const uint4* w, float2 sc, float* y) {
        const uint32_t q[8] = {w[0].x, w[0].y, w[0].z, w[0].w, w[1].x, w[1].y, w[1].z, w[1].w};
#pragma unroll
        for (int l = 0; l < 32; ++l)
            y[l] = sc.x * static_cast<float>(static_cast<int8_t>((q[l / 4] >> (8 * (l % 4))) & 0xFF));
    }
};
constexpr bool packed_type(GGMLType t) { return t == GGMLType::Q4_0 || t == GGMLType::Q4_1 || t == GGMLType::Q8_0; }

// Weights are read once: past L1 (it keeps the activations, which every warp rereads).
__device__ __forceinline__ uint4 load_streaming(const uint4* p) {
#ifdef PYLLONG_CUDA_EMULATED
    return *p;
#else
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
#endif
}

// Packed decode: warp per row, lane per 32-block (blocks lane, lane + 32, ...), U blocks'
// loads in flight before any is used; NT tokens share each weight load.
template <GGMLType T, int NT, int U>
__global__ void __launch_bounds__(32 * kGemvWarps)
    gemv_q8_kernel(const uint8_t* __restrict__ Wq, const uint8_t* __restrict__ Ws, int nb, int n_out,
                   const int8_t* __restrict__ xq, const float2* __restrict__ xds, float* __restrict__ y,
                   bool accumulate) {
    using P = Packed<T>;
    constexpr int kV = P::kQBytes / 16;  // 16-byte loads per block
    const int row = blockIdx.x * kGemvWarps + threadIdx.y, lane = threadIdx.x;
    if (row >= n_out) return;  // no block-wide barrier below
    const uint4* wq = reinterpret_cast<const uint4*>(Wq) + static_cast<size_t>(row) * nb * kV;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
    uint4 w[U][kV];
    float2 sc[U];
    auto load = [&](int b0) {
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int b = min(b0 + 32 * u, nb - 1);  // a clamped reload is cheaper than a branch
#pragma unroll
            for (int v = 0; v < kV; ++v) w[u][v] = load_streaming(wq + static_cast<size_t>(b) * kV + v);
            sc[u] = P::scale(Ws, static_cast<int64_t>(row) * nb + b);
        }
    };
    load(lane);  // the weights need nothing from the previous kernel: in flight before the wait
    pdl_wait();
    for (int b0 = lane; b0 < nb; b0 += 32 * U) {
        if (b0 != lane) load(b0);
#pragma unroll
        for (int u = 0; u < U; ++u) {
            const int b = b0 + 32 * u;
            if (b >= nb) break;
#pragma unroll
            for (int t = 0; t < NT; ++t) {
                const size_t blk = static_cast<size_t>(t) * nb + b;
                const int4* xp = reinterpret_cast<const int4*>(xq + blk * 32);
                acc[t] += P::dot(w[u], __ldg(xp), __ldg(xp + 1), __ldg(xds + blk), sc[u]);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        float s = acc[t];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (lane == 0) {
            float& out = y[static_cast<size_t>(t) * n_out + row];
            out = accumulate ? out + s : s;
        }
    }
}

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

// Chunk c (elements [32c, 32c + 32)) of row r, from the file's rows or from packed blocks.
template <GGMLType T>
struct FileRows {
    const uint8_t* W;
    size_t row_bytes;
    __device__ void load(int64_t r, int64_t c, float* y) const { Chunk<T>::load(W + r * row_bytes, c, y); }
};
template <GGMLType T>
struct PackedRows {
    const uint8_t *q, *s;
    int64_t nb;  // blocks per row
    __device__ void load(int64_t r, int64_t c, float* y) const {
        constexpr int kV = Packed<T>::kQBytes / 16;
        const int64_t blk = r * nb + c;
        uint4 w[kV];
#pragma unroll
        for (int v = 0; v < kV; ++v) w[v] = reinterpret_cast<const uint4*>(q)[blk * kV + v];
        Packed<T>::dequant(w, Packed<T>::scale(s, blk), y);
    }
};

template <class Rows>
__global__ void __launch_bounds__(256) gemm_kernel(Rows rows, int n_in, int n_out, const float* __restrict__ x,
                                                    float* __restrict__ y, int n_tok, bool accumulate) {
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
            if (m0 + m < n_out && c < n_chunks) rows.load(m0 + m, c, w);
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
void launch_gemv(const DeviceMatrix& W, const float* x, const Q8Act* xq, float* y, bool accumulate,
                 cudaStream_t stream) {
    const int n_out = static_cast<int>(W.n_out), n_in = static_cast<int>(W.n_in);
    const dim3 block(32, kGemvWarps);
    if constexpr (packed_type(T)) {
        constexpr int U = NT <= 2 ? 4 : 2;  // blocks in flight per lane
        const int nb = n_in / 32;
        const uint8_t* q = W.data.get();
        const uint8_t* s = q + static_cast<size_t>(W.n_out) * nb * Packed<T>::kQBytes;
        launch(gemv_q8_kernel<T, NT, U>, dim3(blocks_for(n_out, kGemvWarps)), block, stream, /*pdl=*/true, q, s, nb,
               n_out, static_cast<const int8_t*>(xq->q), static_cast<const float2*>(xq->ds), y, accumulate);
    } else {
        constexpr int R = NT <= 2 ? 1 : 2;  // rows per block: activations are reused R times
        constexpr int U = NT <= 2 ? 4 : 2;  // steps in flight per lane
        launch(gemv_kernel<T, NT, R, U>, blocks_for(n_out, R), block, stream, false, W.data.get(), W.row_bytes, n_in,
               n_out, x, y, accumulate);
    }
}

template <GGMLType T>
void mat_mul_as(const DeviceMatrix& W, const float* x, const Q8Act* xq, float* y, int64_t n_tok, bool accumulate,
                cudaStream_t stream) {
    // Activations are read in float4s and int4s: rows of whole chunks keep them 16-byte aligned.
    if (n_tok <= kDecodeMaxTokens) {
        switch (n_tok) {
            case 1: launch_gemv<T, 1>(W, x, xq, y, accumulate, stream); break;
            case 2: launch_gemv<T, 2>(W, x, xq, y, accumulate, stream); break;
            case 3: launch_gemv<T, 3>(W, x, xq, y, accumulate, stream); break;
            case 4: launch_gemv<T, 4>(W, x, xq, y, accumulate, stream); break;
            case 5: launch_gemv<T, 5>(W, x, xq, y, accumulate, stream); break;
            case 6: launch_gemv<T, 6>(W, x, xq, y, accumulate, stream); break;
            case 7: launch_gemv<T, 7>(W, x, xq, y, accumulate, stream); break;
            default: launch_gemv<T, 8>(W, x, xq, y, accumulate, stream); break;
        }
        check_launch("gemv");
        return;
    }
    const dim3 grid(blocks_for(W.n_out, kTM), blocks_for(n_tok, kTN));
    const int n_in = static_cast<int>(W.n_in), n_out = static_cast<int>(W.n_out), nt = static_cast<int>(n_tok);
    if constexpr (packed_type(T)) {
        const int64_t nb = W.n_in / 32;
        const uint8_t* q = W.data.get();
        const PackedRows<T> rows{q, q + W.n_out * nb * Packed<T>::kQBytes, nb};
        launch(gemm_kernel<PackedRows<T>>, grid, 256, stream, false, rows, n_in, n_out, x, y, nt, accumulate);
    } else {
        launch(gemm_kernel<FileRows<T>>, grid, 256, stream, false, FileRows<T>{W.data.get(), W.row_bytes}, n_in, n_out,
               x, y, nt, accumulate);
    }
    check_launch("gemm");
}

// Blocks of the file's layout (raw: n contiguous blocks of sb + qb bytes) into the packed
// layout: quants to q, scales to s. One thread per block.
__global__ void repack_kernel(const uint8_t* raw, int64_t n, int qb, int sb, uint8_t* q, uint8_t* s) {
    const int64_t i = blockIdx.x * static_cast<int64_t>(256) + threadIdx.x;
    if (i >= n) return;
    const uint8_t* b = raw + i * (qb + sb);
    for (int j = 0; j < sb; ++j) s[i * sb + j] = b[j];
    for (int j = 0; j < qb; ++j) q[i * qb + j] = b[sb + j];
}

template <GGMLType T>
void packed_bytes(int& qb, int& sb) {
    if constexpr (packed_type(T)) {
        qb = Packed<T>::kQBytes;
        sb = Packed<T>::kSBytes;
    }
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

bool packs(GGMLType t) { return packed_type(t); }

DeviceMatrix upload_matrix(GGMLType t, int64_t n_in, const std::vector<HostRows>& parts) {
    DeviceMatrix m;
    if (!mat_mul_supports(t))
        throw DeviceError(std::string("the CUDA backend has no kernel for tensor type ") +
                          type_name(static_cast<uint32_t>(t)) + "; run this model with n_gpu_layers=0");
    if (n_in % 32 != 0)
        throw DeviceError("the CUDA backend needs rows of whole 32-element chunks; got " + std::to_string(n_in));
    m.type = t;
    m.n_in = n_in;
    m.row_bytes = quant::row_bytes(t, n_in);
    for (const HostRows& p : parts) m.n_out += p.n_rows;
    m.data = DeviceBuffer<uint8_t>(m.row_bytes * m.n_out);
    int qb = 0, sb = 0;
    switch (t) {
        case GGMLType::Q4_0: packed_bytes<GGMLType::Q4_0>(qb, sb); break;
        case GGMLType::Q4_1: packed_bytes<GGMLType::Q4_1>(qb, sb); break;
        case GGMLType::Q8_0: packed_bytes<GGMLType::Q8_0>(qb, sb); break;
        default: break;
    }
    m.packed = qb > 0;
    const int64_t nb = n_in / 32;
    int64_t row0 = 0;
    for (const HostRows& p : parts) {
        const size_t stride = p.stride ? p.stride : m.row_bytes;
        // The file's rows, contiguous: straight into place, or staged for the repack.
        DeviceBuffer<uint8_t> staged(m.packed ? m.row_bytes * p.n_rows : 0);
        uint8_t* dst = m.packed ? staged.get() : m.data.get() + row0 * m.row_bytes;
        const uint8_t* src = static_cast<const uint8_t*>(p.data);
        if (stride == m.row_bytes) {
            check(cudaMemcpy(dst, src, m.row_bytes * p.n_rows, cudaMemcpyHostToDevice), "upload weights");
        } else {
            for (int64_t r = 0; r < p.n_rows; ++r)
                check(cudaMemcpy(dst + r * m.row_bytes, src + r * stride, m.row_bytes, cudaMemcpyHostToDevice),
                      "upload weights");
        }
        if (m.packed && p.n_rows > 0) {
            const int64_t n = p.n_rows * nb;
            uint8_t* q = m.data.get() + row0 * nb * qb;
            uint8_t* s = m.data.get() + m.n_out * nb * qb + row0 * nb * sb;
            launch(repack_kernel, blocks_for(n, 256), 256, nullptr, false, staged.get(), n, qb, sb, q, s);
            check_launch("repack");
            check(cudaDeviceSynchronize(), "repack");  // before the staging buffer is freed
        }
        row0 += p.n_rows;
    }
    return m;
}

void mat_mul(const DeviceMatrix& W, const float* x, const Q8Act* xq, float* y, int64_t n_tok, cudaStream_t stream,
             bool accumulate) {
    if (uses_q8(W, n_tok) && (!xq || !xq->q))
        throw Error("mat_mul: packed weights in decode need 8-bit activations (a pyllong bug)");
    switch (W.type) {
#define PYLLONG_CASE(name) \
    case GGMLType::name: return mat_mul_as<GGMLType::name>(W, x, xq, y, n_tok, accumulate, stream);
        PYLLONG_CUDA_TYPES(PYLLONG_CASE)
#undef PYLLONG_CASE
        default:
            throw InvalidArgument(std::string("the CUDA backend has no kernel for tensor type ") +
                                  type_name(static_cast<uint32_t>(W.type)));
    }
}

}  // namespace pyllong::cuda
