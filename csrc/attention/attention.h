// The one attention loop. Each query attends to the cached keys its mask allows
// (causal, and Mistral's sliding window when set); long-context techniques plug in
// here as policies, not as copies of the loop.
#pragma once
#include <cstdint>

#include "attention/kv_cache.h"
#include "core/thread_pool.h"

namespace pyllong {

struct AttentionParams {
    int64_t n_head = 0, n_head_kv = 0, head_dim = 0;
    int64_t sliding_window = 0;  // 0 = full causal attention
    float scale = 1.0f;          // 1/sqrt(head_dim)
};

// q: (n_tok, n_head * head_dim) rotated queries at positions q_pos (n_tok,);
// keys/values: cells [0, n_kv) of `layer` in `cache`; out: (n_tok, n_head * head_dim).
void attention(const float* q, const int32_t* q_pos, int64_t n_tok, const KVCache& cache, int64_t layer,
               int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads);

}  // namespace pyllong
