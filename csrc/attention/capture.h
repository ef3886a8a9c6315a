// Attention capture, on request only: the attention loop writes the probabilities of chosen
// (layer, head) pairs into a dense (n_pos, n_pos) matrix each, indexed by the query's and the
// key's positions (the rows an Attention Transition edited are recorded as edited). When no
// capture is asked for the loop sees a null pointer and nothing else changes.
#pragma once
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace pyllong {

// One layer's slice of a capture, as the attention loop sees it.
struct CaptureLayer {
    float* base = nullptr;          // (n_head_sel, n_pos, n_pos) for this layer
    const int32_t* slot = nullptr;  // (n_head,): head -> index among the chosen heads, -1 = not chosen
    int64_t n_pos = 0;

    // Row of head h for the query at position pq, or null when h is not captured.
    float* row(int64_t h, int32_t pq) const {
        const int32_t s = slot[h];
        return s < 0 || pq < 0 || pq >= n_pos ? nullptr : base + (s * n_pos + pq) * n_pos;
    }
};

class AttentionCapture {
public:
    // layers, heads: the chosen indices (checked against n_layer, n_head); n_pos: positions
    // covered (the context size).
    AttentionCapture(std::vector<int32_t> layers, std::vector<int32_t> heads, int64_t n_layer, int64_t n_head,
                     int64_t n_pos);

    // The loop's view of layer l; null when l is not captured.
    const CaptureLayer* layer(int64_t l) const { return layer_slot_[l] < 0 ? nullptr : &views_[layer_slot_[l]]; }
    const std::vector<int32_t>& layers() const { return layers_; }
    const std::vector<int32_t>& heads() const { return heads_; }
    int64_t n_pos() const { return n_pos_; }
    const float* data() const { return data_.data(); }  // (n_layer_sel, n_head_sel, n_pos, n_pos)
    // Positions >= n_keep are forgotten (cache truncated or shifted: they will be recomputed).
    void forget_from(int64_t n_keep);

private:
    std::vector<int32_t> layers_, heads_, layer_slot_, head_slot_;
    int64_t n_pos_;
    std::vector<float> data_;
    std::vector<CaptureLayer> views_;
};

}  // namespace pyllong
