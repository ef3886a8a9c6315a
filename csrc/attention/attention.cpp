#include "attention/attention.h"
#include "attention/attention_decode.h"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "attention/kernels.h"
#include "attention/memory_attention.h"
#include "core/fp16.h"

namespace pyllong {

namespace {

using namespace attn;

// Work items are (token, kv head): the `group` query heads that share a kv head are
// scored together, so each cached key and value row is read once per token, not once
// per query head (GQA decode at depth is bound by reading the cache).
// Full rows: this path holds each row's whole probability vector, so it is also where the
// Attention Transition edits banded rows and a capture records rows. `only` (n_tok,), when
// given, lists the tokens to compute (the banded rows of a tiled prefill); else 0 .. n_tok-1.
template <class Rows>
void attend(const float* q, const float* q_group, const float* q_mem, const int32_t* q_pos, int64_t n_tok,
            const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool,
            int n_threads, const int64_t* only = nullptr) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const TransitionLayer& tl = p.transition;
    const int64_t n_items = n_tok * p.n_head_kv;
    const MemoryPolicy mp = memory_policy(p, layer, q, q_mem);
    const int64_t n_split = memory_split(mp, n_items, n_threads);  // > 1: memory folded after this loop
    std::vector<float> rows_m(n_split > 1 ? n_tok * p.n_head : 0), rows_l(rows_m.size());  // (n_tok * n_head,)
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> scores(static_cast<size_t>(group * n_kv));  // (group, n_kv)
        std::vector<float> mx(static_cast<size_t>(group)), sum(static_cast<size_t>(group));  // (group,) softmax state
        std::vector<float> mem_scores;                      // (group, n_mem)
        std::vector<std::pair<float, int32_t>> mem_cand;    // (n_mem,)
        for (int64_t item = ith; item < n_items; item += nth) {
            const int64_t t = only ? only[item / p.n_head_kv] : item / p.n_head_kv, g = item % p.n_head_kv;
            const int64_t h0 = g * group;  // first query head of this kv head
            const float* qh = q + (t * p.n_head + h0) * hd;                                // (group, hd)
            const float* qgh = se.enabled() ? q_group + (t * p.n_head + h0) * hd : nullptr;  // (group, hd)
            float* o = out + (t * p.n_head + h0) * hd;                                     // (group, hd)
            const int32_t pq = q_pos[t];
            std::fill(mx.begin(), mx.end(), -INFINITY);
            for (int64_t j = 0; j < n_kv; ++j) {
                const int32_t pk = k_pos[j];
                const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                if (!visible) {
                    for (int64_t r = 0; r < group; ++r) scores[r * n_kv + j] = -INFINITY;
                    continue;
                }
                // SelfExtend: distant pairs use both sides at grouped positions.
                const bool grouped = se.grouped(pq, pk);
                const uint8_t* krow = Rows::at(grouped ? cache.kg_row(layer, j) : cache.k_row(layer, j), g * hd);
                const float* qs = grouped ? qgh : qh;
                for (int64_t r = 0; r < group; ++r) {
                    const float sc = Rows::dot(qs + r * hd, krow, hd) * p.scale;
                    scores[r * n_kv + j] = sc;
                    mx[r] = std::max(mx[r], sc);
                }
            }
            std::fill(o, o + group * hd, 0.0f);
            for (int64_t r = 0; r < group; ++r)  // nothing visible gives 0 (not for causal self-attention)
                sum[r] = mx[r] == -INFINITY ? 0.0f : exp_shifted_sum(scores.data() + r * n_kv, n_kv, mx[r]);
            if (tl.active() && tl.in_band(pq)) {  // normalize, edit, then P.V with the edited weights
                for (int64_t r = 0; r < group; ++r) {
                    if (sum[r] == 0.0f) continue;
                    float* pr = scores.data() + r * n_kv;  // (n_kv,) row r's probabilities
                    const float inv = 1.0f / sum[r];
                    for (int64_t j = 0; j < n_kv; ++j) pr[j] *= inv;
                    transition_edit_row(pr, n_kv, tl.band_start(pq), tl);
                    sum[r] = 1.0f;
                }
            }
            if (p.capture) {  // on request: each chosen head's row, indexed by key position
                for (int64_t r = 0; r < group; ++r) {
                    float* dst = p.capture->row(h0 + r, pq);  // (n_pos,)
                    if (!dst) continue;
                    const float* pr = scores.data() + r * n_kv;
                    const float inv = sum[r] > 0 ? 1.0f / sum[r] : 0.0f;
                    for (int64_t j = 0; j < n_kv; ++j)
                        if (k_pos[j] < p.capture->n_pos) dst[k_pos[j]] = pr[j] * inv;
                }
            }
            for (int64_t j = 0; j < n_kv; ++j) {
                const uint8_t* vrow = Rows::at(cache.v_row(layer, j), g * hd);
                for (int64_t r = 0; r < group; ++r) {
                    const float w = scores[r * n_kv + j];
                    if (w != 0.0f) Rows::axpy(o + r * hd, w, vrow, hd);
                }
            }
            if (n_split > 1) {  // the split memory pass below merges and normalizes
                std::copy(mx.begin(), mx.end(), rows_m.begin() + t * p.n_head + h0);
                std::copy(sum.begin(), sum.end(), rows_l.begin() + t * p.n_head + h0);
                continue;
            }
            if (mp.n() > 0)
                fold_memory_rows(mp.q + (t * p.n_head + h0) * hd, group, mp.head(g), mp, hd, p.scale, mx.data(), sum.data(),
                                 o, mem_scores, mem_cand);
            for (int64_t r = 0; r < group; ++r) {
                const float inv = sum[r] > 0 ? 1.0f / sum[r] : 0.0f;
                for (int64_t d = 0; d < hd; ++d) o[r * hd + d] *= inv;
            }
        }
    });
    if (n_split > 1) {
        fold_memory_split(n_tok, p, mp, n_split, rows_m, rows_l, out, pool, n_threads);
        for (int64_t row = 0; row < n_tok * p.n_head; ++row) {
            const float inv = rows_l[row] > 0 ? 1.0f / rows_l[row] : 0.0f;
            for (int64_t d = 0; d < hd; ++d) out[row * hd + d] *= inv;
        }
    }
}


// Prefill: many query rows per kv head. Keys and values are converted to f32 once per
// tile of kTileKeys cells and shared by a block of kRowBlock query rows; scores use the
// transposed key tile (one broadcast-FMA per dimension for all keys of the tile, no
// horizontal sums) and a running (online) softmax per row, as flash attention does.
// Same mask and SelfExtend policy as the per-row loop above.
constexpr int64_t kRowBlock = 32;

template <class Rows>
void attend_tiled(const float* q, const float* q_group, const float* q_mem, const int32_t* q_pos, int64_t n_tok,
                  const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p, float* out,
                  ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv;
    const int64_t n_rows = n_tok * group, n_blocks = (n_rows + kRowBlock - 1) / kRowBlock;
    const int32_t* k_pos = cache.positions();
    const SelfExtend& se = p.self_extend;
    const MemoryPolicy mp = memory_policy(p, layer, q, q_mem);
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> mem_scores;                    // (n_mem,) knn: one row's memory scores
        std::vector<std::pair<float, int32_t>> mem_cand;  // (n_mem,)
        std::vector<float> kt(static_cast<size_t>(hd * kTileKeys));   // (hd, kTileKeys) keys, transposed
        std::vector<float> kgt(se.enabled() ? kt.size() : 0);          // (hd, kTileKeys) grouped keys
        std::vector<float> vt(static_cast<size_t>(kTileKeys * hd));   // (kTileKeys, hd) values
        std::vector<float> row(static_cast<size_t>(hd));              // (hd,) one converted row
        std::vector<float> acc(static_cast<size_t>(kRowBlock * hd));  // (kRowBlock, hd) running sums
        float m[kRowBlock], l[kRowBlock], sc[kTileKeys], sg[kTileKeys];
        for (int64_t item = ith; item < p.n_head_kv * n_blocks; item += nth) {
            const int64_t g = item / n_blocks, r0 = (item % n_blocks) * kRowBlock;
            const int64_t nr = std::min(kRowBlock, n_rows - r0);
            int32_t pmax = INT32_MIN;
            for (int64_t r = 0; r < nr; ++r) pmax = std::max(pmax, q_pos[(r0 + r) / group]);
            std::fill(m, m + kRowBlock, -INFINITY);
            std::fill(l, l + kRowBlock, 0.0f);
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t j0 = 0; j0 < n_kv; j0 += kTileKeys) {
                const int64_t nk = std::min(kTileKeys, n_kv - j0);
                int32_t pk_min = INT32_MAX;
                for (int64_t jj = 0; jj < nk; ++jj) pk_min = std::min(pk_min, k_pos[j0 + jj]);
                if (pk_min > pmax) continue;  // the whole tile is in every row's future
                const bool any_grouped = se.enabled() && se.grouped(pmax, pk_min);
                for (int64_t jj = 0; jj < nk; ++jj) {
                    Rows::load(Rows::at(cache.k_row(layer, j0 + jj), g * hd), row.data(), hd);
                    for (int64_t d = 0; d < hd; ++d) kt[d * kTileKeys + jj] = row[d];
                    if (any_grouped) {
                        Rows::load(Rows::at(cache.kg_row(layer, j0 + jj), g * hd), row.data(), hd);
                        for (int64_t d = 0; d < hd; ++d) kgt[d * kTileKeys + jj] = row[d];
                    }
                    Rows::load(Rows::at(cache.v_row(layer, j0 + jj), g * hd), vt.data() + jj * hd, hd);
                }
                for (int64_t r = 0; r < nr; ++r) {
                    const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                    const int32_t pq = q_pos[t];
                    const float* qv = q + (t * p.n_head + h) * hd;
                    tile_scores(qv, kt.data(), hd, kTileKeys, sc);
                    const bool row_grouped = se.enabled() && se.grouped(pq, pk_min);
                    if (row_grouped) {
                        tile_scores(q_group + (t * p.n_head + h) * hd, kgt.data(), hd, kTileKeys, sg);
                    }
                    for (int64_t jj = 0; jj < nk; ++jj) {
                        const int32_t pk = k_pos[j0 + jj];
                        const bool visible = pk <= pq && (p.sliding_window == 0 || pq - pk < p.sliding_window);
                        const float s = row_grouped && se.grouped(pq, pk) ? sg[jj] : sc[jj];
                        sc[jj] = visible ? s * p.scale : -INFINITY;
                    }
                    float* a = acc.data() + r * hd;
                    if (online_softmax_step(sc, nk, m[r], l[r], a, hd)) tile_accumulate(a, sc, vt.data(), hd, nk);
                }
            }
            // Memory (no mask, no rotation): fot folds it as more tiles; knn scans per row.
            const MemoryHead mh = mp.n() > 0 ? mp.head(g) : MemoryHead{};
            if (!mp.knn && mh.n > 0) {
                const float* rows[kRowBlock];  // the block's query rows for memory scores
                for (int64_t r = 0; r < nr; ++r)
                    rows[r] = mp.q + ((r0 + r) / group * p.n_head + g * group + (r0 + r) % group) * hd;
                fold_memory_tiles(rows, nr, mh, hd, p.scale, m, l, acc.data(), kt, vt, row);
            }
            for (int64_t r = 0; mp.knn && mh.n > 0 && r < nr; ++r) {
                const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                fold_memory_rows(mp.q + (t * p.n_head + h) * hd, 1, mh, mp, hd, p.scale, m + r, l + r,
                                 acc.data() + r * hd, mem_scores, mem_cand);
            }
            for (int64_t r = 0; r < nr; ++r) {
                const int64_t t = (r0 + r) / group, h = g * group + (r0 + r) % group;
                float* o = out + (t * p.n_head + h) * hd;
                const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
                for (int64_t d = 0; d < hd; ++d) o[d] = acc[r * hd + d] * inv;
            }
        }
    });
}

// Attention Transition under a tiled prefill (or a few-row chunk on the split decode kernel):
// the online softmax never holds a full row, so the rows in this layer's bands are computed
// again on the full-row path, which edits them, and overwrite the first result (a few percent
// of the prompt's rows in edited layers).
void attend_banded_rows(const float* q, const float* q_group, const float* q_mem, const int32_t* q_pos,
                        int64_t n_tok, const KVCache& cache, int64_t layer, int64_t n_kv, const AttentionParams& p,
                        float* out, ThreadPool& pool, int n_threads) {
    std::vector<int64_t> rows;  // (n_banded,) token indices within this chunk
    for (int64_t t = 0; t < n_tok; ++t)
        if (p.transition.in_band(q_pos[t])) rows.push_back(t);
    if (rows.empty()) return;
    const auto n = static_cast<int64_t>(rows.size());
    if (cache.type() == KVType::F16)
        attend<F16Rows>(q, q_group, q_mem, q_pos, n, cache, layer, n_kv, p, out, pool, n_threads, rows.data());
    else
        attend<Q8Rows>(q, q_group, q_mem, q_pos, n, cache, layer, n_kv, p, out, pool, n_threads, rows.data());
}

}  // namespace

void attention(const float* q, const float* q_group, const int32_t* q_pos, int64_t n_tok, const KVCache& cache,
               int64_t layer, int64_t n_kv, const AttentionParams& p, float* out, ThreadPool& pool, int n_threads,
               const float* q_mem) {
    // Few query rows per kv head (decode): read each cached row once, per row. Many rows
    // (prefill): convert tiles once and share them across a block of rows.
    // A capture needs every row whole, so it takes the per-row path.
    const bool tiled = n_tok * (p.n_head / p.n_head_kv) >= 16 && !p.capture;
    const bool f16 = cache.type() == KVType::F16;
    const bool split_decode = !tiled && n_kv >= 2 * kMinKeysPerSplit && !p.memory && !p.capture;
    if (tiled && f16) attend_tiled<F16Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else if (tiled) attend_tiled<Q8Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    // Decode over a long cache: split the keys too, so every thread has an equal share (no
    // memory or capture: those policies live in the per-row path).
    else if (split_decode)
        attention_decode(q, q_group, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else if (f16) attend<F16Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    else attend<Q8Rows>(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
    // Neither the tiled nor the split decode kernel holds a full row (a prompt chunk of a few
    // rows past 2 * kMinKeysPerSplit keys takes the latter): the banded rows are redone.
    if ((tiled || split_decode) && p.transition.active())
        attend_banded_rows(q, q_group, q_mem, q_pos, n_tok, cache, layer, n_kv, p, out, pool, n_threads);
}

void attention_step(float* q, float* k, const float* v, const int32_t* pos, int64_t n, KVCache& cache,
                    int64_t layer, int64_t cell, const RopeParams& rp, const AttentionParams& p, float* scratch_q,
                    float* scratch_k, float* out, ThreadPool& pool, int n_threads) {
    const int64_t q_dim = p.n_head * p.head_dim, kv_dim = p.n_head_kv * p.head_dim;
    const SelfExtend& se = p.self_extend;
    // Memory seen at a fixed distance D: memory keys are unrotated, so a query rotated at D
    // sees each at relative distance D (RoPE depends on the difference). From the unrotated q.
    const int64_t mem_distance = p.memory && p.memory->slot(layer + p.first_layer) >= 0 ? p.memory->params().distance : 0;
    if (mem_distance > 0) {
        std::vector<int32_t> dpos(static_cast<size_t>(n), static_cast<int32_t>(mem_distance));  // (n,)
        std::memcpy(scratch_q, q, n * q_dim * sizeof(float));
        rope(scratch_q, dpos.data(), n, p.n_head, p.head_dim, rp);
    }
    if (se.enabled()) {
        // Grouped rotations first, from the unrotated q and k.
        std::vector<int32_t> qpos(static_cast<size_t>(n)), kpos(static_cast<size_t>(n));  // (n,)
        for (int64_t t = 0; t < n; ++t) {
            qpos[t] = se.query_pos(pos[t]);
            kpos[t] = se.key_pos(pos[t]);
        }
        std::memcpy(scratch_q, q, n * q_dim * sizeof(float));
        std::memcpy(scratch_k, k, n * kv_dim * sizeof(float));
        rope(scratch_q, qpos.data(), n, p.n_head, p.head_dim, rp);
        rope(scratch_k, kpos.data(), n, p.n_head_kv, p.head_dim, rp);
    }
    rope(q, pos, n, p.n_head, p.head_dim, rp);
    rope(k, pos, n, p.n_head_kv, p.head_dim, rp);
    cache.store(layer, cell, k, v, n, se.enabled() ? scratch_k : nullptr);
    attention(q, se.enabled() ? scratch_q : nullptr, pos, n, cache, layer, cell + n, p, out, pool, n_threads,
              mem_distance > 0 ? scratch_q : nullptr);
}

}  // namespace pyllong
