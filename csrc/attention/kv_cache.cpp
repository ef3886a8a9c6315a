#include "attention/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/fp16.h"

namespace pyllong {

KVCache::KVCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim),
      k_(static_cast<size_t>(n_layer * n_ctx * kv_dim)), v_(k_.size()), pos_(static_cast<size_t>(n_ctx)) {}

void KVCache::store(int64_t l, int64_t cell, const float* kf, const float* vf, int64_t n) {
    uint16_t* kd = k(l) + cell * kv_dim_;
    uint16_t* vd = v(l) + cell * kv_dim_;
    for (int64_t i = 0; i < n * kv_dim_; ++i) {
        kd[i] = fp32_to_fp16(kf[i]);
        vd[i] = fp32_to_fp16(vf[i]);
    }
}

void KVCache::set_positions(int64_t cell, const int32_t* pos, int64_t n) {
    std::copy(pos, pos + n, pos_.begin() + cell);
}

void KVCache::erase(int64_t first, int64_t n) {
    const int64_t tail = n_used_ - (first + n);
    for (int64_t l = 0; l < n_layer_; ++l) {
        std::memmove(k(l) + first * kv_dim_, k(l) + (first + n) * kv_dim_, tail * kv_dim_ * sizeof(uint16_t));
        std::memmove(v(l) + first * kv_dim_, v(l) + (first + n) * kv_dim_, tail * kv_dim_ * sizeof(uint16_t));
    }
    std::memmove(pos_.data() + first, pos_.data() + first + n, tail * sizeof(int32_t));
    n_used_ -= n;
}

}  // namespace pyllong
