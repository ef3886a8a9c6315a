// The KV cache of one context: per layer, keys (already rotated) and values for n_ctx
// cells, stored as f16. Cells [0, n_used) are filled, in order of position.
#pragma once
#include <cstdint>
#include <vector>

namespace pyllong {

class KVCache {
public:
    KVCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim);

    int64_t n_ctx() const { return n_ctx_; }
    int64_t kv_dim() const { return kv_dim_; }
    int64_t n_used() const { return n_used_; }
    int64_t bytes() const { return static_cast<int64_t>((k_.size() + v_.size()) * sizeof(uint16_t)); }

    // Rows of layer l: (n_ctx, kv_dim) f16.
    uint16_t* k(int64_t l) { return k_.data() + l * n_ctx_ * kv_dim_; }
    uint16_t* v(int64_t l) { return v_.data() + l * n_ctx_ * kv_dim_; }
    const uint16_t* k(int64_t l) const { return k_.data() + l * n_ctx_ * kv_dim_; }
    const uint16_t* v(int64_t l) const { return v_.data() + l * n_ctx_ * kv_dim_; }
    const int32_t* positions() const { return pos_.data(); }

    // Store n rows of K and V (f32, (n, kv_dim)) for layer l at cells [cell, cell + n).
    void store(int64_t l, int64_t cell, const float* k, const float* v, int64_t n);
    void set_positions(int64_t cell, const int32_t* pos, int64_t n);
    void set_used(int64_t n) { n_used_ = n; }

    // Drop cells [first, first + n): later cells move down. Positions are not changed.
    void erase(int64_t first, int64_t n);

private:
    int64_t n_layer_, n_ctx_, kv_dim_;
    int64_t n_used_ = 0;
    std::vector<uint16_t> k_, v_;  // (n_layer, n_ctx, kv_dim) each
    std::vector<int32_t> pos_;     // (n_ctx,) position of each cell
};

}  // namespace pyllong
