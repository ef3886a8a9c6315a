// kNN key-value memory (Focused Transformer / LongLLaMA, ../shared/spec/knn-memory.md):
// for each memory layer and KV head, the keys and values of earlier text, which the layer's
// queries attend to in the same softmax as their local window. Keys are stored without
// rotary encoding (rotated at position 0), so they are valid for a query at any local
// position. Rows are f16; the memory grows by appends and, with a cap, forgets its oldest
// tokens first (FIFO).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "memory/ivf_index.h"

namespace pyllong {

enum class MemoryMode { Fot, Knn };  // fot: every memory key; knn: each query's top-k keys
MemoryMode memory_mode_from_name(const std::string& name);  // "fot" | "knn"; InvalidArgument otherwise
const char* memory_mode_name(MemoryMode m);

struct MemoryParams {
    std::vector<int64_t> layers;      // memory layer indices, ascending; empty = memory off
    int64_t window = 0;               // W: local window; a full window is flushed to memory
    int64_t last_context_length = 0;  // tokens of a long input kept local (the rest goes to memory)
    MemoryMode mode = MemoryMode::Fot;
    int64_t k = 0;                    // knn: memory keys per query and KV head
    int64_t cap = 0;                  // most tokens kept per layer; 0 = unbounded
    // 0: LongLLaMA, a query at local position p sees memory keys (rotated at 0) at distance p.
    // D > 0: every memory key is seen at the fixed distance D (for models not trained with
    // memory: keeps memory inside the trained range, older than the window when D >= W).
    int64_t distance = 0;
    // knn: approximate search by an IVF index (ivf_index.h) once a head holds ivf_min rows;
    // each query scans n_probe lists. Off = the exact scan.
    bool ivf = false;
    int64_t n_probe = 8;
    int64_t ivf_min = 4096;

    bool enabled() const { return !layers.empty(); }
};

// One KV head of one memory layer: n rows of head_dim f16 values each.
struct MemoryHead {
    const uint16_t* keys = nullptr;    // (n, head_dim) unrotated keys
    const uint16_t* values = nullptr;  // (n, head_dim)
    int64_t n = 0;
    const IvfIndex* index = nullptr;   // null or untrained = scan all rows
    int64_t base = 0;                  // the index's id of row 0
};

class KVMemory {
public:
    KVMemory() = default;
    // Checks params against the model's shape (InvalidArgument with what to change).
    KVMemory(const MemoryParams& params, int64_t n_layer, int64_t n_head_kv, int64_t head_dim);

    const MemoryParams& params() const { return params_; }
    bool enabled() const { return params_.enabled(); }
    int64_t n_head_kv() const { return n_head_kv_; }
    int64_t head_dim() const { return head_dim_; }
    int64_t n_slots() const { return static_cast<int64_t>(params_.layers.size()); }
    // The slot of model layer `layer`, or -1 when it has no memory.
    int64_t slot(int64_t layer) const { return layer < 0 || layer >= static_cast<int64_t>(slot_of_.size()) ? -1 : slot_of_[layer]; }

    int64_t size(int64_t slot) const { return n_[slot]; }  // tokens held by a slot
    int64_t size() const { return n_.empty() ? 0 : n_[0]; }  // every slot holds the same count between forwards
    int64_t evicted() const { return evicted_; }              // tokens dropped by the cap so far
    int64_t bytes() const;
    int64_t bytes(int64_t slot) const { return 2 * n_[slot] * n_head_kv_ * head_dim_ * 2; }
    MemoryHead head(int64_t slot, int64_t h) const;

    // Append n tokens to a slot: k unrotated keys and v values, f32 (n, n_head_kv * head_dim).
    // With a cap, the oldest tokens beyond it are dropped.
    void append(int64_t slot, const float* k, const float* v, int64_t n);
    // The same from raw f16 rows (n, n_head_kv * head_dim): for loading a saved memory.
    void append_f16(int64_t slot, const uint16_t* k, const uint16_t* v, int64_t n);
    // Rows as f16 (n, n_head_kv * head_dim) of a slot, for saving.
    void export_f16(int64_t slot, std::vector<uint16_t>& k, std::vector<uint16_t>& v) const;
    void clear();
    void truncate(int64_t n);  // keep each slot's first n tokens

private:
    void appended(int64_t slot, int64_t n);  // index the new rows, then apply the cap

    MemoryParams params_;
    int64_t n_head_kv_ = 0, head_dim_ = 0;
    std::vector<int64_t> slot_of_;  // (n_layer,) slot or -1
    std::vector<int64_t> n_;        // (n_slots,) tokens per slot
    // keys_[slot * n_head_kv + h]: (n, head_dim) f16; values_ likewise. Per head, so that a
    // head's scan reads one contiguous array.
    std::vector<std::vector<uint16_t>> keys_, values_;
    std::vector<IvfIndex> index_;   // (n_slots * n_head_kv,) with params_.ivf, else empty
    std::vector<int64_t> base_;     // (n_slots,) absolute id of each slot's row 0
    int64_t evicted_ = 0;
};

}  // namespace pyllong
