#include "memory/kv_memory.h"

#include <algorithm>

#include "core/error.h"
#include "core/fp16.h"

namespace pyllong {

MemoryMode memory_mode_from_name(const std::string& name) {
    if (name == "fot") return MemoryMode::Fot;
    if (name == "knn") return MemoryMode::Knn;
    throw InvalidArgument("memory mode must be \"fot\" (all memory keys) or \"knn\" (top-k keys), got \"" + name + "\"");
}

const char* memory_mode_name(MemoryMode m) { return m == MemoryMode::Fot ? "fot" : "knn"; }

KVMemory::KVMemory(const MemoryParams& params, int64_t n_layer, int64_t n_head_kv, int64_t head_dim)
    : params_(params), n_head_kv_(n_head_kv), head_dim_(head_dim), slot_of_(static_cast<size_t>(n_layer), -1) {
    const MemoryParams& p = params_;
    if (p.layers.empty()) throw InvalidArgument("memory: give at least one memory layer");
    for (size_t i = 0; i < p.layers.size(); ++i) {
        const int64_t l = p.layers[i];
        if (l < 0 || l >= n_layer)
            throw InvalidArgument("memory layer " + std::to_string(l) + " is outside this model's layers [0, " +
                                  std::to_string(n_layer) + ")");
        if (i > 0 && l <= p.layers[i - 1])
            throw InvalidArgument("memory layers must be distinct and ascending, got " + std::to_string(p.layers[i - 1]) +
                                  " before " + std::to_string(l));
        slot_of_[l] = static_cast<int64_t>(i);
    }
    if (p.window < 1) throw InvalidArgument("memory: the window W must be >= 1, got " + std::to_string(p.window));
    if (p.last_context_length < 1 || p.last_context_length > p.window)
        throw InvalidArgument("memory: last_context_length must be in [1, W=" + std::to_string(p.window) + "], got " +
                              std::to_string(p.last_context_length));
    if (p.mode == MemoryMode::Knn && p.k < 1)
        throw InvalidArgument("memory: knn mode needs k >= 1 keys per query, got " + std::to_string(p.k));
    if (p.cap < 0) throw InvalidArgument("memory: cap must be >= 0 tokens (0 = unbounded), got " + std::to_string(p.cap));
    if (p.ivf && (p.mode != MemoryMode::Knn || p.n_probe < 1 || p.ivf_min < 1))
        throw InvalidArgument("memory: the IVF index needs knn mode, n_probe >= 1 and ivf_min >= 1");
    if (p.distance < 0) throw InvalidArgument("memory: distance must be >= 0 (0 = LongLLaMA's), got " + std::to_string(p.distance));
    n_.assign(p.layers.size(), 0);
    base_.assign(p.layers.size(), 0);
    if (p.ivf) index_.assign(p.layers.size() * n_head_kv, IvfIndex(head_dim));
    keys_.resize(p.layers.size() * n_head_kv);
    values_.resize(p.layers.size() * n_head_kv);
}

int64_t KVMemory::bytes() const {
    int64_t b = 0;
    for (int64_t s = 0; s < n_slots(); ++s) b += bytes(s);
    return b;
}

MemoryHead KVMemory::head(int64_t slot, int64_t h) const {
    const size_t i = static_cast<size_t>(slot * n_head_kv_ + h);
    return MemoryHead{keys_[i].data(), values_[i].data(), n_[slot], index_.empty() ? nullptr : &index_[i], base_[slot]};
}

void KVMemory::append(int64_t slot, const float* k, const float* v, int64_t n) {
    const int64_t hd = head_dim_, kv_dim = n_head_kv_ * hd;
    for (int64_t h = 0; h < n_head_kv_; ++h) {
        auto& K = keys_[slot * n_head_kv_ + h];
        auto& V = values_[slot * n_head_kv_ + h];
        for (int64_t t = 0; t < n; ++t)
            for (int64_t d = 0; d < hd; ++d) {
                K.push_back(fp32_to_fp16(k[t * kv_dim + h * hd + d]));
                V.push_back(fp32_to_fp16(v[t * kv_dim + h * hd + d]));
            }
    }
    n_[slot] += n;
    appended(slot, n);
}

void KVMemory::append_f16(int64_t slot, const uint16_t* k, const uint16_t* v, int64_t n) {
    const int64_t hd = head_dim_, kv_dim = n_head_kv_ * hd;
    for (int64_t h = 0; h < n_head_kv_; ++h) {
        auto& K = keys_[slot * n_head_kv_ + h];
        auto& V = values_[slot * n_head_kv_ + h];
        for (int64_t t = 0; t < n; ++t) {
            K.insert(K.end(), k + t * kv_dim + h * hd, k + t * kv_dim + (h + 1) * hd);
            V.insert(V.end(), v + t * kv_dim + h * hd, v + t * kv_dim + (h + 1) * hd);
        }
    }
    n_[slot] += n;
    appended(slot, n);
}

void KVMemory::export_f16(int64_t slot, std::vector<uint16_t>& k, std::vector<uint16_t>& v) const {
    const int64_t hd = head_dim_, kv_dim = n_head_kv_ * hd, n = n_[slot];
    k.resize(static_cast<size_t>(n * kv_dim));
    v.resize(k.size());
    for (int64_t h = 0; h < n_head_kv_; ++h) {
        const auto& K = keys_[slot * n_head_kv_ + h];
        const auto& V = values_[slot * n_head_kv_ + h];
        for (int64_t t = 0; t < n; ++t) {
            std::copy(K.begin() + t * hd, K.begin() + (t + 1) * hd, k.begin() + t * kv_dim + h * hd);
            std::copy(V.begin() + t * hd, V.begin() + (t + 1) * hd, v.begin() + t * kv_dim + h * hd);
        }
    }
}

// The index follows the rows: trained when a head reaches ivf_min rows, retrained when it
// has grown 4x since, else the new rows join their lists. Then the cap, FIFO: the oldest rows
// go first. Erasing from the front moves the rest (O(n) per flush, once per window of W
// tokens, so a small share of the forward passes that filled it).
void KVMemory::appended(int64_t slot, int64_t n_new) {
    for (int64_t h = 0; h < static_cast<int64_t>(index_.empty() ? 0 : n_head_kv_); ++h) {
        IvfIndex& ix = index_[slot * n_head_kv_ + h];
        const uint16_t* keys = keys_[slot * n_head_kv_ + h].data();
        const int64_t n = n_[slot];
        if ((!ix.trained() && n >= params_.ivf_min) || (ix.trained() && n >= 4 * ix.trained_at()))
            ix.train(keys, n, base_[slot]);
        else if (ix.trained())
            ix.add(keys + (n - n_new) * head_dim_, n_new, base_[slot] + n - n_new);
    }
    const int64_t over = params_.cap > 0 ? n_[slot] - params_.cap : 0;
    if (over <= 0) return;
    for (int64_t h = 0; h < n_head_kv_; ++h) {
        auto& K = keys_[slot * n_head_kv_ + h];
        auto& V = values_[slot * n_head_kv_ + h];
        K.erase(K.begin(), K.begin() + over * head_dim_);
        V.erase(V.begin(), V.begin() + over * head_dim_);
    }
    n_[slot] -= over;
    base_[slot] += over;
    for (int64_t h = 0; h < static_cast<int64_t>(index_.empty() ? 0 : n_head_kv_); ++h)
        index_[slot * n_head_kv_ + h].forget_below(base_[slot]);
    if (slot == 0) evicted_ += over;
}

void KVMemory::clear() {
    truncate(0);
    evicted_ = 0;
    for (auto& ix : index_) ix = IvfIndex(head_dim_);
}

void KVMemory::truncate(int64_t n) {
    for (int64_t s = 0; s < n_slots(); ++s) {
        if (n >= n_[s]) continue;
        for (int64_t h = 0; h < n_head_kv_; ++h) {
            keys_[s * n_head_kv_ + h].resize(static_cast<size_t>(n * head_dim_));
            values_[s * n_head_kv_ + h].resize(static_cast<size_t>(n * head_dim_));
            if (!index_.empty()) index_[s * n_head_kv_ + h].forget_from(base_[s] + n);
        }
        n_[s] = n;
    }
}

}  // namespace pyllong
