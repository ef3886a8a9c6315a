// The one attention loop. Each query attends to the cached keys its mask allows
// (causal, and Mistral's sliding window when set); long-context techniques plug in
// here as policies, not as copies of the loop.
#pragma once
#include <cstdint>

#include "attention/capture.h"
#include "attention/kv_cache.h"
#include "attention/self_extend.h"
#include "attention/transition.h"
#include "core/thread_pool.h"
#include "memory/kv_memory.h"
#include "ops/rope.h"

namespace pyllong {

struct AttentionParams {
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    int64_t sliding_window = 0;  // 0 = full causal attention
    float scale = 1.0f;          // 1/sqrt(head_dim)
    SelfExtend self_extend;      // off unless window > 0 (the cache then holds grouped keys)
    TransitionLayer transition;  // this layer's Attention Transition bands; inactive unless set per prompt pass
    const CaptureLayer* capture = nullptr;  // record this layer's probabilities (full-row path); null = off
    // kNN memory: the memory layers' queries also attend to these keys, in the same softmax
    // (see memory/kv_memory.h). Null = no memory.
    const KVMemory* memory = nullptr;
    int64_t first_layer = 0;  // the model layer of cache layer 0 (the layers before it run on the GPU)
};

// q: (n_tok, n_head * head_dim) rotated queries at positions q_pos (n_tok,); q_group: the
// same queries rotated at their SelfExtend positions (null when it is off);
// keys/values: cells [0, n_kv) of `layer` in `cache`; out: (n_tok, n_head * head_dim).
// The Attention Transition reads key cell j as prompt position j (cells hold positions
// 0, 1, ... in order: prefill appends, a context shift renumbers).
// q_mem: the queries for memory scores, (n_tok, n_head * head_dim) (null = q).
void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const KVCache& cache,
               int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads,
               const float* q_mem = nullptr);

// One layer's attention for a chunk of n tokens at positions pos (n,): rotates q (n, q_dim)
// and k (n, kv_dim) in place, writes k and v (n, kv_dim) to `cache` cells [cell, cell + n),
// and attends over cells [0, cell + n) into out (n, q_dim). scratch_q (n, q_dim) and
// scratch_k (n, kv_dim) hold the grouped rotations when SelfExtend is on; scratch_q holds the
// queries at the memory distance when MemoryParams::distance is set (never both).
void attention_step(float* q, float* k, const float* v, const int32_t* pos, int64_t n, KVCache& cache,
                    int64_t layer, int64_t cell, const RopeParams& rp, const AttentionParams& p, float* scratch_q,
                    float* scratch_k, float* out, ThreadPool& pool, int n_threads);

}  // namespace pyllong
