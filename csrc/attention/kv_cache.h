// The KV cache of one context: per layer, keys (already rotated) and values for n_ctx
// cells. Rows are stored as f16 (default) or q8_0 (blocks of 32 int8 with an f16 scale,
// ~half the bytes). Cells [0, n_used) are filled, in order of position.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pyllong {

enum class KVType { F16, Q8_0 };
KVType kv_type_from_name(const std::string& name);  // "f16" | "q8_0"; InvalidArgument otherwise
const char* kv_type_name(KVType t);
// Bytes of one cache row of kv_dim elements (q8_0 needs kv_dim % 32 == 0).
int64_t kv_row_bytes(KVType t, int64_t kv_dim);

class KVCache {
public:
    // grouped_keys: also keep every key rotated at its SelfExtend group position.
    KVCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim, KVType type, bool grouped_keys = false);

    KVType type() const { return type_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t n_ctx() const { return n_ctx_; }
    int64_t kv_dim() const { return kv_dim_; }
    int64_t row_bytes() const { return row_bytes_; }
    int64_t n_used() const { return n_used_; }
    int64_t bytes() const { return static_cast<int64_t>(k_.size() + kg_.size() + v_.size()); }
    bool has_grouped_keys() const { return !kg_.empty(); }

    // Row `cell` of layer l: row_bytes() bytes.
    const uint8_t* k_row(int64_t l, int64_t cell) const { return k_.data() + (l * n_ctx_ + cell) * row_bytes_; }
    const uint8_t* v_row(int64_t l, int64_t cell) const { return v_.data() + (l * n_ctx_ + cell) * row_bytes_; }
    const uint8_t* kg_row(int64_t l, int64_t cell) const { return kg_.data() + (l * n_ctx_ + cell) * row_bytes_; }
    const int32_t* positions() const { return pos_.data(); }

    // Store n rows of K and V (f32, (n, kv_dim)) for layer l at cells [cell, cell + n).
    // kg: the same keys rotated at their group positions, (n, kv_dim); required iff grouped_keys.
    void store(int64_t l, int64_t cell, const float* k, const float* v, int64_t n, const float* kg = nullptr);
    // One key row as f32 (kv_dim,), and back: for re-rotating keys after a context shift.
    void load_key(int64_t l, int64_t cell, float* out) const;
    void store_key(int64_t l, int64_t cell, const float* in);
    // One value row as f32 (kv_dim,): for moving a window into the kNN memory.
    void load_value(int64_t l, int64_t cell, float* out) const;
    void set_positions(int64_t cell, const int32_t* pos, int64_t n);
    void set_used(int64_t n) { n_used_ = n; }
    // Restore the raw rows of cells [0, n) of layer l (each row_bytes() long, as k_row gives
    // them); kg is required iff grouped keys are kept. For state files (model/state.cpp).
    void put_rows(int64_t l, int64_t n, const uint8_t* k, const uint8_t* v, const uint8_t* kg);

    // Drop cells [first, first + n): later cells move down. Positions are not changed.
    void erase(int64_t first, int64_t n);

private:
    uint8_t* k_row(int64_t l, int64_t cell) { return k_.data() + (l * n_ctx_ + cell) * row_bytes_; }
    uint8_t* v_row(int64_t l, int64_t cell) { return v_.data() + (l * n_ctx_ + cell) * row_bytes_; }
    uint8_t* kg_row(int64_t l, int64_t cell) { return kg_.data() + (l * n_ctx_ + cell) * row_bytes_; }
    void encode(const float* src, uint8_t* dst) const;

    int64_t n_layer_, n_ctx_, kv_dim_;
    KVType type_;
    int64_t row_bytes_;
    int64_t n_used_ = 0;
    std::vector<uint8_t> k_, v_;  // (n_layer, n_ctx, row_bytes) each
    std::vector<uint8_t> kg_;     // (n_layer, n_ctx, row_bytes) grouped-position keys, or empty
    std::vector<int32_t> pos_;    // (n_ctx,) position of each cell
};

}  // namespace pyllong
