// Decode attention over a long cache: few query rows (one token, the query heads of each
// kv head), many keys. The plain per-row loop gives each thread whole (token, kv head)
// pairs: SmolLM2 has 3 kv heads, so with 2 threads one thread scored two thirds of the
// cache while the other waited. Here work items are (pair, key range): every thread reads
// an equal share of the cache, and the partial softmaxes (max, sum, unnormalized output)
// are merged afterwards, as flash-decoding does. Key rows are converted to f32 once per
// key for all query heads of the group. Same mask and SelfExtend rule as attention().
#pragma once
#include <cstdint>

#include "attention/attention.h"

namespace pyllong {

// Same contract as attention() (attention.h). Meant for n_tok * group small; any n_tok works.
void attention_decode(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok,
                      const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out,
                      ThreadPool& pool, int n_threads);

// Key ranges per (token, kv head) pair that attention_decode uses: enough items for the
// threads to balance, none shorter than kMinKeysPerSplit keys.
int64_t attention_decode_splits(int64_t n_pairs, int64_t n_kv, int n_threads);
constexpr int64_t kMinKeysPerSplit = 256;

}  // namespace pyllong
