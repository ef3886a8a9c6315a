// The kNN memory as a policy of the one attention loop (see memory/kv_memory.h and
// ../shared/spec/knn-memory.md). A memory layer's queries attend to their local window
// (causal, RoPE at local positions) and to the memory's unrotated keys (no mask) in ONE
// softmax: the loops of attention.cpp keep a running (max m, sum l, unnormalized acc) per
// query row, and the functions here fold the memory part into it, which merges the two parts
// exactly by log-sum-exp. fot: every memory key; knn: each row's top-k keys by q.k.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "attention/attention.h"
#include "core/thread_pool.h"
#include "memory/kv_memory.h"

namespace pyllong::attn {

struct MemoryPolicy {
    const KVMemory* mem = nullptr;
    const float* q = nullptr;  // (n_tok, n_head * hd) queries for memory scores (see MemoryParams::distance)
    int64_t slot = -1;         // this layer's memory slot, -1 = not a memory layer
    bool knn = false;
    int64_t k = 0, n_probe = 0;

    int64_t n() const { return slot >= 0 ? mem->size(slot) : 0; }
    MemoryHead head(int64_t g) const { return mem->head(slot, g); }
};

// The policy of `layer`: q the attention's queries, q_mem those for memory scores (null = q).
MemoryPolicy memory_policy(const AttentionParams& p, int64_t layer, const float* q, const float* q_mem);

inline const uint8_t* f16_row(const uint16_t* base, int64_t j, int64_t hd) {
    return reinterpret_cast<const uint8_t*>(base + j * hd);
}

// Memory attention for `group` query rows q (group, hd) that share KV head memory `mh`, folded
// into the rows' running m (group,), l (group,), acc (group, hd). One key scan for all rows,
// scores (group, n) by an exact SIMD dot product over f16 keys (for a few rows this beats
// converting tiles, measured: 28 vs 42 ms per SmolLM2 token at 64k memory tokens); fot folds
// them all, knn each row's top-k. With a trained IVF index, knn scores only the rows of each
// query's n_probe nearest lists. ms and cand are the caller's scratch.
void fold_memory_rows(const float* q, int64_t group, const MemoryHead& mh, const MemoryPolicy& mp, int64_t hd,
                      float scale, float* m, float* l, float* acc, std::vector<float>& ms,
                      std::vector<std::pair<float, int32_t>>& cand);

// fot for many rows (prefill): folds every memory key into nr query rows (rows[r] -> (hd,)),
// tile by tile: kTileKeys keys and values converted to f32 once for all rows (kt (hd,
// kTileKeys) transposed, vt (kTileKeys, hd), row (hd,) scratch), scores by broadcast FMAs
// without horizontal sums. m, l (nr,) and acc (nr, hd) are the rows' running softmax states.
void fold_memory_tiles(const float* const* rows, int64_t nr, const MemoryHead& mh, int64_t hd, float scale, float* m,
                       float* l, float* acc, std::vector<float>& kt, std::vector<float>& vt, std::vector<float>& row);

// Decode over a large memory has few (token, kv head) items, fewer than threads: the memory
// is then split into blocks scanned in parallel (as flash-decoding splits the keys), and each
// row merges its blocks afterwards: fot by their partial softmax states (log-sum-exp), knn by
// a top-k of the blocks' top-k candidates (which contain the global top-k). IVF is not split.
// Returns the number of blocks, 1 = fold inside the item loop.
int64_t memory_split(const MemoryPolicy& mp, int64_t n_items, int n_threads);

// rows_m, rows_l (n_tok * n_head,): the rows' running max and sum; out: their unnormalized
// outputs (n_tok, n_head * hd); the memory's blocks are merged into all three.
void fold_memory_split(int64_t n_tok, const AttentionParams& p, const MemoryPolicy& mp, int64_t n_split,
                       std::vector<float>& rows_m, std::vector<float>& rows_l, float* out, ThreadPool& pool,
                       int n_threads);

// The memory part alone, for attention computed elsewhere (the GPU) and merged by
// log-sum-exp there: each (token, head) row of mp.q folds its memory keys into an empty
// state, written to partial (n_tok * n_head, hd + 2) as acc (hd,), m, l.
void memory_states(int64_t n_tok, const AttentionParams& p, const MemoryPolicy& mp, float* partial, ThreadPool& pool,
                   int n_threads);

}  // namespace pyllong::attn
