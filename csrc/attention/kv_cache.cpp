#include "attention/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/fp16.h"
#include "quant/formats.h"

namespace pyllong {

KVType kv_type_from_name(const std::string& name) {
    if (name == "f16") return KVType::F16;
    if (name == "q8_0") return KVType::Q8_0;
    throw InvalidArgument("kv_type '" + name + "' is not supported (supported: f16, q8_0)");
}

const char* kv_type_name(KVType t) { return t == KVType::F16 ? "f16" : "q8_0"; }

int64_t kv_row_bytes(KVType t, int64_t kv_dim) {
    return t == KVType::F16 ? kv_dim * 2 : static_cast<int64_t>(quant::row_bytes(GGMLType::Q8_0, kv_dim));
}

KVCache::KVCache(int64_t n_layer, int64_t n_ctx, int64_t kv_dim, KVType type, bool grouped_keys)
    : n_layer_(n_layer), n_ctx_(n_ctx), kv_dim_(kv_dim), type_(type), row_bytes_(kv_row_bytes(type, kv_dim)),
      k_(static_cast<size_t>(n_layer * n_ctx * row_bytes_)), v_(k_.size()), kg_(grouped_keys ? k_.size() : 0),
      pos_(static_cast<size_t>(n_ctx)) {}

void KVCache::encode(const float* src, uint8_t* dst) const {
    if (type_ == KVType::F16) {
        auto* d = reinterpret_cast<uint16_t*>(dst);
        for (int64_t i = 0; i < kv_dim_; ++i) d[i] = fp32_to_fp16(src[i]);
    } else {
        quant::quantize_row(GGMLType::Q8_0, src, dst, kv_dim_);
    }
}

void KVCache::store(int64_t l, int64_t cell, const float* k, const float* v, int64_t n, const float* kg) {
    for (int64_t r = 0; r < n; ++r) {
        encode(k + r * kv_dim_, k_row(l, cell + r));
        encode(v + r * kv_dim_, v_row(l, cell + r));
        if (!kg_.empty()) encode(kg + r * kv_dim_, kg_row(l, cell + r));
    }
}

void KVCache::load_key(int64_t l, int64_t cell, float* out) const {
    quant::dequantize_row(type_ == KVType::F16 ? GGMLType::F16 : GGMLType::Q8_0, k_row(l, cell), out, kv_dim_);
}

void KVCache::load_value(int64_t l, int64_t cell, float* out) const {
    quant::dequantize_row(type_ == KVType::F16 ? GGMLType::F16 : GGMLType::Q8_0, v_row(l, cell), out, kv_dim_);
}

void KVCache::store_key(int64_t l, int64_t cell, const float* in) { encode(in, k_row(l, cell)); }

void KVCache::put_rows(int64_t l, int64_t n, const uint8_t* k, const uint8_t* v, const uint8_t* kg) {
    std::memcpy(k_row(l, 0), k, n * row_bytes_);
    std::memcpy(v_row(l, 0), v, n * row_bytes_);
    if (!kg_.empty()) std::memcpy(kg_row(l, 0), kg, n * row_bytes_);
}

void KVCache::set_positions(int64_t cell, const int32_t* pos, int64_t n) {
    std::copy(pos, pos + n, pos_.begin() + cell);
}

void KVCache::erase(int64_t first, int64_t n) {
    const int64_t tail = n_used_ - (first + n);
    for (int64_t l = 0; l < n_layer_; ++l) {
        std::memmove(k_row(l, first), k_row(l, first + n), tail * row_bytes_);
        std::memmove(v_row(l, first), v_row(l, first + n), tail * row_bytes_);
        if (!kg_.empty()) std::memmove(kg_row(l, first), kg_row(l, first + n), tail * row_bytes_);
    }
    std::memmove(pos_.data() + first, pos_.data() + first + n, tail * sizeof(int32_t));
    n_used_ -= n;
}

}  // namespace pyllong
