// Decode attention over a long cache: few query rows (one token, all its query heads), many
// keys. Work items are (token, key range) over ALL kv heads: a cache row holds every kv
// head's slice contiguously, so an item streams its rows once, in tiles converted to f32
// once and shared by every query head (an item per (kv head, key range) fetched each cache
// line once per kv head: 3x the traffic on SmolLM2). Every thread reads an equal share of
// the cache; the partial softmaxes (max, sum, unnormalized output) of the ranges are merged
// afterwards by log-sum-exp, as flash-decoding does. Same mask and SelfExtend rule as
// attention().
#pragma once
#include <cstdint>

#include "attention/attention.h"

namespace pyllong {

// Same contract as attention() (attention.h). Meant for n_tok * group small; any n_tok works.
void attention_decode(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok,
                      const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out,
                      ThreadPool& pool, int n_threads);

// Key ranges per token that attention_decode uses: enough items for the threads to
// balance (about 4 per thread), none shorter than kMinKeysPerSplit keys.
int64_t attention_decode_splits(int64_t n_tok, int64_t n_kv, int n_threads);
constexpr int64_t kMinKeysPerSplit = 256;

}  // namespace pyllong
