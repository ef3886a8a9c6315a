// Launchers of the device kernels (csrc/cuda/*.cu). All pointers are device pointers;
// all work goes on `stream`. Shapes follow the CPU ops they mirror.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "attention/self_extend.h"
#include "gguf/types.h"
#include "ops/rope.h"

namespace pyllong::cuda {

// y (n_tok, n_out) = x (n_tok, n_in) · Wᵀ, W: n_out rows of `row_bytes` bytes in format t;
// accumulate: y += x · Wᵀ instead (the residual add, fused).
void mat_mul(GGMLType t, const uint8_t* W, size_t row_bytes, int64_t n_in, int64_t n_out, const float* x, float* y,
             int64_t n_tok, cudaStream_t stream, bool accumulate = false);
bool mat_mul_supports(GGMLType t);

// out (n, dim) = RMSNorm / LayerNorm of x (n, dim) with weight w (dim,) and bias b (dim,) or null.
void rms_norm(const float* x, const float* w, float* out, int64_t n, int64_t dim, float eps, cudaStream_t stream);
void layer_norm(const float* x, const float* w, const float* b, float* out, int64_t n, int64_t dim, float eps,
                cudaStream_t stream);
// x (n, dim) += b (dim,) broadcast over rows.
void add_bias(float* x, const float* b, int64_t n, int64_t dim, cudaStream_t stream);
// up (n, F) = silu(gate) * up; fused: gu (n, 2F) = [gate | up] rows -> up (n, F).
void swiglu(const float* gate, float* up, int64_t n, cudaStream_t stream);
void swiglu_fused(const float* gu, float* up, int64_t n_tok, int64_t F, cudaStream_t stream);
void gelu(float* x, int64_t n, cudaStream_t stream);
// Split fused rows qkv (n, q_dim + 2 kv_dim) into q (n, q_dim), k, v (n, kv_dim).
void split_qkv(const float* qkv, float* q, float* k, float* v, int64_t n, int64_t q_dim, int64_t kv_dim,
               cudaStream_t stream);

// Rotates x (n_tok, n_head * head_dim) in place, token t by pos[t] (device array (n_tok,)).
// inv_freq: (n_rot/2,) device array of scale * base^(-2i/n_rot) / factor_i, as double.
void rope(float* x, const int32_t* pos, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
          bool neox, const double* inv_freq, cudaStream_t stream);

// The f16 KV cache of one layer: rows of kv_dim halfs, (n_ctx, kv_dim) each.
struct DeviceKV {
    __half* k = nullptr;
    __half* v = nullptr;
    __half* kg = nullptr;  // keys at SelfExtend group positions, or null
    int64_t kv_dim = 0;
};
// Writes k, v, kg (n, kv_dim) f32 into cells [cell, cell + n) of the layer's cache, cell =
// step[0] read on the device (so a captured graph replays for any cell), and records the
// cells' positions pos (n,) into cell_pos (null: leave them).
void kv_store(const DeviceKV& kv, const int32_t* step, const float* k, const float* v, const float* kg, int64_t n,
              const int32_t* pos, int32_t* cell_pos, cudaStream_t stream);

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
// n_kv); partial: scratch of attention_scratch_floats(n_tok, ..., n_split) floats.
void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const DeviceKV& kv,
               const int32_t* k_pos, const int32_t* step, int n_split, const AttentionShape& s, float* out,
               float* partial, int64_t partial_floats, cudaStream_t stream);
int attention_splits(int64_t n_tok, int64_t n_head, int64_t n_kv_bound);
int64_t attention_scratch_floats(int64_t n_tok, int64_t n_head, int64_t head_dim, int n_split);

// Device arrays one attention step reads besides q, k, v.
struct StepBuffers {
    const int32_t* step = nullptr;      // (2,) cell, n_kv = cell + n: where this chunk goes
    int n_split = 1;                    // attention_splits(n, n_head, an upper bound of n_kv)
    const int32_t* pos = nullptr;       // (n,) the chunk's positions
    int32_t* cell_pos = nullptr;        // (n_ctx,) positions of the cells; the chunk's are written
    const int32_t* qpos_g = nullptr;    // (n,) SelfExtend query positions, or null when off
    const int32_t* kpos_g = nullptr;    // (n,) SelfExtend key positions
    float* qg = nullptr;                // (n, n_head * hd) scratch for grouped queries
    float* kg = nullptr;                // (n, n_head_kv * hd) scratch for grouped keys
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
void attention_step(float* q, float* k, const float* v, int64_t n, const DeviceKV& kv, const AttentionShape& s,
                    const StepBuffers& b, float* out, cudaStream_t stream);

}  // namespace pyllong::cuda
