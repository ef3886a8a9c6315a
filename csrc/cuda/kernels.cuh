// Launchers of the device kernels (csrc/cuda/*.cu). All pointers are device pointers;
// all work goes on `stream`. Shapes follow the CPU ops they mirror.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "attention/self_extend.h"
#include "attention/transition.h"
#include "cuda/common.cuh"
#include "gguf/types.h"
#include "ops/rope.h"

namespace pyllong::cuda {

// One weight matrix on the device, or several stacked (rows of each in turn) when they share
// format and n_in, so that one launch computes them all. Q4_0, Q4_1 and Q8_0 are repacked
// on upload ("packed"): a lane's 32-block is then one or two aligned 16-byte loads, which
// decode needs to stream the weights at full bandwidth —
//   quants (n_out, n_in/32, 16 or 32 bytes), then scales (n_out, n_in/32) f16 d (Q4_1: half2 d, m).
// Other formats keep the file's rows: (n_out, row_bytes). Either way the bytes equal the file's.
struct DeviceMatrix {
    GGMLType type{};
    DeviceBuffer<uint8_t> data;
    size_t row_bytes = 0;  // bytes per row in the file's format
    int64_t n_in = 0, n_out = 0;
    bool packed = false;
    bool empty() const { return data.empty(); }
};
// Rows of one matrix in host memory, in the file's format.
struct HostRows {
    const void* data = nullptr;
    size_t stride = 0;  // bytes from one row to the next (0: row_bytes)
    int64_t n_rows = 0;
};
bool mat_mul_supports(GGMLType t);
bool packs(GGMLType t);
DeviceMatrix upload_matrix(GGMLType t, int64_t n_in, const std::vector<HostRows>& parts);

// Activations quantized to 8 bits in 32-blocks, what the packed decode kernels multiply with
// (dp4a): q (n_tok, n_in) int8, ds (n_tok, n_in/32) float2 (d, d * sum of the block's q).
struct Q8Act {
    int8_t* q = nullptr;
    float2* ds = nullptr;
};
constexpr int64_t kDecodeMaxTokens = 8;  // up to this many tokens, the decode (GEMV) kernels
// Whether mat_mul(W, ..., n_tok) reads x quantized (Q8Act) rather than as floats.
inline bool uses_q8(const DeviceMatrix& W, int64_t n_tok) { return W.packed && n_tok <= kDecodeMaxTokens; }
// xq = x (n_tok, n_in) quantized; n_in a multiple of 32.
void quantize_q8(const float* x, int64_t n_tok, int64_t n_in, const Q8Act& xq, cudaStream_t stream);

// y (n_tok, n_out) = x (n_tok, n_in) · Wᵀ; accumulate: y += x · Wᵀ instead (the residual add,
// fused). xq: x quantized by quantize_q8, read instead of x when uses_q8(W, n_tok).
void mat_mul(const DeviceMatrix& W, const float* x, const Q8Act* xq, float* y, int64_t n_tok, cudaStream_t stream,
             bool accumulate = false);

// out (n, dim) = RMSNorm / LayerNorm of x (n, dim) with weight w (dim,) and bias b (dim,) or null;
// q8: also out quantized, for the next matmul (dim a multiple of 32), or null.
void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t dim, float eps, cudaStream_t stream,
              const Q8Act* q8 = nullptr);
void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, float eps,
                cudaStream_t stream, const Q8Act* q8 = nullptr);
// x (n, dim) += b (dim,) broadcast over rows.
void add_bias(float* x, const float* b, int64_t n, int64_t dim, cudaStream_t stream);
// up (n, F) = silu(gate) * up; fused: gu (n, 2F) = [gate | up] rows -> up (n, F) (and
// quantized into q8 when not null, F a multiple of 32).
void swiglu(const float* gate, float* up, int64_t n, cudaStream_t stream);
void swiglu_fused(const float* gu, float* up, int64_t n_tok, int64_t F, cudaStream_t stream, const Q8Act* q8 = nullptr);
void gelu(float* x, int64_t n, cudaStream_t stream);
// Split fused rows qkv (n, q_dim + 2 kv_dim) into q (n, q_dim), k, v (n, kv_dim).
void split_qkv(const float* qkv, float* q, float* k, float* v, int64_t n, int64_t q_dim, int64_t kv_dim,
               cudaStream_t stream);

// The f16 KV cache of one layer: rows of kv_dim halfs, (n_ctx, kv_dim) each.
struct DeviceKV {
    __half* k = nullptr;
    __half* v = nullptr;
    __half* kg = nullptr;  // keys at SelfExtend group positions, or null
    int64_t kv_dim = 0;
};
struct AttentionShape {
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    float scale = 1.0f;
    int64_t sliding_window = 0;
    SelfExtend self_extend;
};
// out (n_tok, n_head*hd): each query (rotated at q_pos; q_group at its group position when
// SelfExtend is on, else null) attends to cells [0, n_kv) of kv, n_kv = step[1] read on the
// device, whose positions are k_pos, under the causal / sliding-window mask and the
// SelfExtend pair rule. Keys are split n_split ways (attention_splits of an upper bound of
// n_kv); partial: scratch of attention_scratch_floats(n_tok, ..., n_split + n_extra) floats,
// (row, split, hd + 2) = acc, m, l; the n_extra splits after the key splits hold partial
// states filled beforehand (the kNN memory's part), merged with the rest. q8: out also
// quantized for the output matmul (head_dim a multiple of 32), or null.
void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const DeviceKV& kv,
               const int32_t* k_pos, const int32_t* step, int n_split, int n_extra, const AttentionShape& s, float* out,
               float* partial, int64_t partial_floats, cudaStream_t stream, const Q8Act* q8 = nullptr);
// Key splits for a chunk, leaving room for `reserved` extra splits in the merge.
int attention_splits(int64_t n_tok, int64_t n_head, int64_t n_kv_bound, int reserved = 0);
int64_t attention_scratch_floats(int64_t n_tok, int64_t n_head, int64_t head_dim, int n_split);

// Device arrays one attention step reads besides q, k, v.
struct StepBuffers {
    const int32_t* step = nullptr;      // (2,) cell, n_kv = cell + n: where this chunk goes
    int n_split = 1;                    // attention_splits(n, n_head, an upper bound of n_kv)
    int n_extra = 0;                    // partial states after the key splits, filled by the host
    const int32_t* pos = nullptr;       // (n,) the chunk's positions
    int32_t* cell_pos = nullptr;        // (n_ctx,) positions of the cells; the chunk's are written
    const int32_t* qpos_g = nullptr;    // (n,) SelfExtend query positions, or null when off
    const int32_t* kpos_g = nullptr;    // (n,) SelfExtend key positions
    float* qg = nullptr;                // (n, n_head * hd) scratch for grouped queries
    float* partial = nullptr;           // attention_scratch_floats(...) floats
    int64_t partial_floats = 0;
    const double* inv_freq = nullptr;   // (n_rot/2,) rotary inverse frequencies
    int64_t n_rot = 0;
    bool neox = false;
};
// One layer's attention for a chunk of n tokens, as attention_step on the CPU: rotates q
// (n, q_dim) and k (n, kv_dim) in place (and the grouped copies when SelfExtend is on),
// writes k, v into cells [cell, cell + n) of kv, attends over cells [0, cell + n) into out
// (cell from b.step, on the device).
//   rope_store: the first half, rotation and cache write, in one kernel.
void attention_step(float* q, float* k, const float* v, int64_t n, const DeviceKV& kv, const AttentionShape& s,
                    const StepBuffers& b, float* out, cudaStream_t stream, const Q8Act* q8 = nullptr);
void rope_store(float* q, float* k, const float* v, int64_t n, const DeviceKV& kv, const AttentionShape& s,
                const StepBuffers& b, cudaStream_t stream);

// Attention Transition: rows [t0, t0 + n_rows) of a prompt chunk, all in the bands of tl,
// attended again with their probabilities edited (attention/transition.h), overwriting their
// rows of out (n_tok, n_head * hd). q, q_group, q_pos, kv, k_pos, step as for attention.
// scratch: (scratch_rows, n_head, n_ctx) floats, scratch_rows from transition_scratch_rows.
int64_t transition_scratch_rows(int64_t n_head, int64_t n_ctx, int64_t n_batch);
void transition_rows(const float* q, const float* q_group, const int32_t* q_pos, int64_t t0, int64_t n_rows,
                     const DeviceKV& kv, const int32_t* k_pos, const int32_t* step, const AttentionShape& s,
                     const TransitionLayer& tl, float* scratch, int64_t scratch_rows, int64_t n_ctx, float* out,
                     cudaStream_t stream);

}  // namespace pyllong::cuda
