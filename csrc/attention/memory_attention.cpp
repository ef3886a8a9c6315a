#include "attention/memory_attention.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "attention/kernels.h"

namespace pyllong::attn {

namespace {

// Moves the k best of nc candidates (score, memory row) to the front, O(nc); ties go to the
// older row. Returns min(k, nc).
int64_t select_top_k(std::vector<std::pair<float, int32_t>>& cand, int64_t nc, int64_t k) {
    const int64_t kk = std::min(k, nc);
    auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };
    if (kk > 0 && kk < nc) std::nth_element(cand.begin(), cand.begin() + (kk - 1), cand.begin() + nc, better);
    return kk;
}

// The k best of n scores s (n,) as (score, row + row0) in cand, by the same rule as
// select_top_k, without building n pairs: nth_element on a float copy (tmp) finds the k-th
// score, then one pass keeps what beats it and the oldest of its ties.
void top_k_of_scores(const float* s, int64_t n, int64_t k, int32_t row0, std::vector<float>& tmp,
                     std::vector<std::pair<float, int32_t>>& cand) {
    const int64_t kk = std::min(k, n);
    cand.clear();
    if (kk == 0) return;
    tmp.assign(s, s + n);
    std::nth_element(tmp.begin(), tmp.begin() + (kk - 1), tmp.end(), std::greater<float>());
    const float thr = tmp[kk - 1];
    int64_t ties = kk;  // rows scoring exactly thr that fit
    for (int64_t j = 0; j < n; ++j) ties -= s[j] > thr;
    for (int64_t j = 0; j < n; ++j)
        if (s[j] > thr || (s[j] == thr && ties-- > 0)) cand.emplace_back(s[j], static_cast<int32_t>(row0 + j));
}

// knn: folds the k best of nc candidate memory rows into one query row's running softmax.
void fold_top_k(std::vector<std::pair<float, int32_t>>& cand, int64_t nc, int64_t k, const MemoryHead& mh, int64_t hd,
                float& m, float& l, float* acc) {
    const int64_t kk = select_top_k(cand, nc, k);
    float w[256];  // (256,) scores, then weights: several passes merge exactly, as tiles do
    for (int64_t i0 = 0; i0 < kk; i0 += 256) {
        const int64_t nb = std::min<int64_t>(256, kk - i0);
        for (int64_t i = 0; i < nb; ++i) w[i] = cand[i0 + i].first;
        if (!online_softmax_step(w, nb, m, l, acc, hd)) continue;
        for (int64_t i = 0; i < nb; ++i)
            if (w[i] != 0.0f) F16Rows::axpy(acc, w[i], f16_row(mh.values, cand[i0 + i].second, hd), hd);
    }
}

}  // namespace

MemoryPolicy memory_policy(const AttentionParams& p, int64_t layer, const float* q, const float* q_mem) {
    MemoryPolicy mp;
    if (!p.memory) return mp;
    mp.mem = p.memory;
    mp.q = q_mem ? q_mem : q;
    mp.slot = p.memory->slot(layer + p.first_layer);
    mp.knn = p.memory->params().mode == MemoryMode::Knn;
    mp.k = p.memory->params().k;
    mp.n_probe = p.memory->params().n_probe;
    return mp;
}

void fold_memory_rows(const float* q, int64_t group, const MemoryHead& mh, const MemoryPolicy& mp, int64_t hd,
                      float scale, float* m, float* l, float* acc, std::vector<float>& ms,
                      std::vector<std::pair<float, int32_t>>& cand) {
    const int64_t n = mh.n;
    const bool ivf = mp.knn && mh.index && mh.index->trained();
    if (ivf) {
        std::vector<int64_t> probed;  // absolute ids of the probed lists' rows
        for (int64_t r = 0; r < group; ++r) {
            probed.clear();
            mh.index->probe(q + r * hd, mp.n_probe, probed);
            cand.resize(probed.size());
            for (size_t i = 0; i < probed.size(); ++i) {
                const int32_t j = static_cast<int32_t>(probed[i] - mh.base);
                cand[i] = {F16Rows::dot(q + r * hd, f16_row(mh.keys, j, hd), hd) * scale, j};
            }
            fold_top_k(cand, static_cast<int64_t>(cand.size()), mp.k, mh, hd, m[r], l[r], acc + r * hd);
        }
        return;
    }
    ms.resize(static_cast<size_t>(group * n));  // (group, n) scaled scores, then fot's weights
    for (int64_t j = 0; j < n; ++j) {
        const uint8_t* krow = f16_row(mh.keys, j, hd);
        for (int64_t r = 0; r < group; ++r) ms[r * n + j] = F16Rows::dot(q + r * hd, krow, hd) * scale;
    }
    if (mp.knn) {
        std::vector<float> tmp;  // (n,)
        for (int64_t r = 0; r < group; ++r) {
            top_k_of_scores(ms.data() + r * n, n, mp.k, 0, tmp, cand);
            fold_top_k(cand, static_cast<int64_t>(cand.size()), mp.k, mh, hd, m[r], l[r], acc + r * hd);
        }
        return;
    }
    bool any = false;
    for (int64_t r = 0; r < group; ++r) any |= online_softmax_step(ms.data() + r * n, n, m[r], l[r], acc + r * hd, hd);
    if (!any) return;
    for (int64_t j = 0; j < n; ++j) {
        const uint8_t* vrow = f16_row(mh.values, j, hd);
        for (int64_t r = 0; r < group; ++r)
            if (ms[r * n + j] != 0.0f) F16Rows::axpy(acc + r * hd, ms[r * n + j], vrow, hd);
    }
}

// Blocks below this many keys are not worth a thread.
constexpr int64_t kMemoryBlockMin = 1024;

void fold_memory_tiles(const float* const* rows, int64_t nr, const MemoryHead& mh, int64_t hd, float scale, float* m,
                       float* l, float* acc, std::vector<float>& kt, std::vector<float>& vt, std::vector<float>& row) {
    float sc[kTileKeys];  // (kTileKeys,) one row's scores, then weights
    for (int64_t j0 = 0; j0 < mh.n; j0 += kTileKeys) {
        const int64_t nk = std::min(kTileKeys, mh.n - j0);
        for (int64_t jj = 0; jj < nk; ++jj) {
            F16Rows::load(f16_row(mh.keys, j0 + jj, hd), row.data(), hd);
            for (int64_t d = 0; d < hd; ++d) kt[d * kTileKeys + jj] = row[d];
            F16Rows::load(f16_row(mh.values, j0 + jj, hd), vt.data() + jj * hd, hd);
        }
        for (int64_t r = 0; r < nr; ++r) {
            tile_scores(rows[r], kt.data(), hd, kTileKeys, sc);
            for (int64_t jj = 0; jj < nk; ++jj) sc[jj] *= scale;
            float* a = acc + r * hd;
            if (online_softmax_step(sc, nk, m[r], l[r], a, hd)) tile_accumulate(a, sc, vt.data(), hd, nk);
        }
    }
}

int64_t memory_split(const MemoryPolicy& mp, int64_t n_items, int n_threads) {
    const int64_t n = mp.n();
    if (n == 0 || n_items >= n_threads || (mp.knn && mp.mem->params().ivf)) return 1;
    return std::max<int64_t>(1, std::min<int64_t>((2 * n_threads + n_items - 1) / n_items, n / kMemoryBlockMin));
}

void fold_memory_split(int64_t n_tok, const AttentionParams& p, const MemoryPolicy& mp,
                       int64_t n_split, std::vector<float>& rows_m, std::vector<float>& rows_l, float* out,
                       ThreadPool& pool, int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, n = mp.n(), blk = (n + n_split - 1) / n_split;
    const int64_t n_rows = n_tok * p.n_head, kk = std::min(mp.k, blk);
    // Per (row, block): fot a partial state (m, l, acc); knn its top-k candidates.
    std::vector<float> part_m(static_cast<size_t>(n_rows * n_split), -INFINITY), part_l(part_m.size(), 0.0f);
    std::vector<float> part_acc(mp.knn ? 0 : static_cast<size_t>(n_rows * n_split * hd), 0.0f);  // (rows, split, hd)
    std::vector<std::pair<float, int32_t>> part_cand(mp.knn ? static_cast<size_t>(n_rows * n_split * kk) : 0,
                                                     {-INFINITY, 0});  // (rows, split, kk)
    const int64_t n_items = n_tok * p.n_head_kv * n_split;
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<float> ms, tmp, m(static_cast<size_t>(group)), l(static_cast<size_t>(group));
        std::vector<float> acc(static_cast<size_t>(group * hd));
        std::vector<std::pair<float, int32_t>> cand;
        for (int64_t item = ith; item < n_items; item += nth) {
            const int64_t b = item % n_split, g = (item / n_split) % p.n_head_kv, t = item / n_split / p.n_head_kv;
            const int64_t j0 = b * blk, len = std::min(blk, n - j0);
            if (len <= 0) continue;
            MemoryHead sub = mp.head(g);
            sub.keys += j0 * hd, sub.values += j0 * hd, sub.n = len;
            const float* qh = mp.q + (t * p.n_head + g * group) * hd;  // (group, hd)
            const int64_t row0 = t * p.n_head + g * group;
            if (!mp.knn) {
                std::fill(m.begin(), m.end(), -INFINITY);
                std::fill(l.begin(), l.end(), 0.0f);
                std::fill(acc.begin(), acc.end(), 0.0f);
                fold_memory_rows(qh, group, sub, mp, hd, p.scale, m.data(), l.data(), acc.data(), ms, cand);
                for (int64_t r = 0; r < group; ++r) {
                    part_m[(row0 + r) * n_split + b] = m[r];
                    part_l[(row0 + r) * n_split + b] = l[r];
                    std::copy_n(acc.data() + r * hd, hd, part_acc.data() + ((row0 + r) * n_split + b) * hd);
                }
                continue;
            }
            ms.resize(static_cast<size_t>(len));  // (len,) one row's scores over the block
            for (int64_t r = 0; r < group; ++r) {
                for (int64_t j = 0; j < len; ++j) ms[j] = F16Rows::dot(qh + r * hd, f16_row(sub.keys, j, hd), hd) * p.scale;
                top_k_of_scores(ms.data(), len, kk, static_cast<int32_t>(j0), tmp, cand);
                std::copy(cand.begin(), cand.end(), part_cand.begin() + ((row0 + r) * n_split + b) * kk);
            }
        }
    });
    pool.run(n_threads, [&](int ith, int nth) {
        std::vector<std::pair<float, int32_t>> cand;
        for (int64_t row = ith; row < n_rows; row += nth) {
            float* o = out + row * hd;  // (hd,)
            float &m = rows_m[row], &l = rows_l[row];
            if (mp.knn) {
                cand.clear();
                for (int64_t i = 0; i < n_split * kk; ++i)
                    if (part_cand[row * n_split * kk + i].first != -INFINITY) cand.push_back(part_cand[row * n_split * kk + i]);
                fold_top_k(cand, static_cast<int64_t>(cand.size()), mp.k, mp.head(row % p.n_head / group), hd, m, l, o);
            } else {
                for (int64_t b = 0; b < n_split; ++b) {  // merge block b's state into the row's
                    const float mb = part_m[row * n_split + b];
                    if (mb == -INFINITY) continue;
                    const float m_new = std::max(m, mb), c = std::exp(m - m_new), cb = std::exp(mb - m_new);
                    const float* ab = part_acc.data() + (row * n_split + b) * hd;
                    for (int64_t d = 0; d < hd; ++d) o[d] = o[d] * c + ab[d] * cb;
                    l = l * c + part_l[row * n_split + b] * cb;
                    m = m_new;
                }
            }
        }
    });
}

void memory_states(int64_t n_tok, const AttentionParams& p, const MemoryPolicy& mp, float* partial, ThreadPool& pool,
                   int n_threads) {
    const int64_t hd = p.head_dim, group = p.n_head / p.n_head_kv, n_rows = n_tok * p.n_head;
    std::vector<float> m(static_cast<size_t>(n_rows), -INFINITY), l(m.size(), 0.0f);
    std::vector<float> acc(static_cast<size_t>(n_rows * hd), 0.0f);  // (n_rows, hd)
    const int64_t n_items = n_tok * p.n_head_kv;
    const int64_t n_split = memory_split(mp, n_items, n_threads);
    if (n_split > 1) {
        fold_memory_split(n_tok, p, mp, n_split, m, l, acc.data(), pool, n_threads);
    } else if (mp.n() > 0) {
        pool.run(n_threads, [&](int ith, int nth) {
            std::vector<float> ms;
            std::vector<std::pair<float, int32_t>> cand;
            for (int64_t item = ith; item < n_items; item += nth) {
                const int64_t row0 = item / p.n_head_kv * p.n_head + item % p.n_head_kv * group;
                fold_memory_rows(mp.q + row0 * hd, group, mp.head(item % p.n_head_kv), mp, hd, p.scale, m.data() + row0,
                                 l.data() + row0, acc.data() + row0 * hd, ms, cand);
            }
        });
    }
    for (int64_t row = 0; row < n_rows; ++row) {
        std::copy_n(acc.data() + row * hd, hd, partial + row * (hd + 2));
        partial[row * (hd + 2) + hd] = m[row];
        partial[row * (hd + 2) + hd + 1] = l[row];
    }
}

}  // namespace pyllong::attn
