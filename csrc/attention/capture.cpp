#include "attention/capture.h"

#include <algorithm>
#include <string>

namespace pyllong {

static std::vector<int32_t> slots_of(const std::vector<int32_t>& chosen, int64_t n, const char* what) {
    std::vector<int32_t> slot(static_cast<size_t>(n), -1);
    for (size_t i = 0; i < chosen.size(); ++i) {
        const int32_t c = chosen[i];
        if (c < 0 || c >= n)
            throw InvalidArgument(std::string("attention capture: ") + what + " " + std::to_string(c) +
                                  " is outside [0, " + std::to_string(n) + ")");
        if (slot[c] >= 0)
            throw InvalidArgument(std::string("attention capture: ") + what + " " + std::to_string(c) + " is listed twice");
        slot[c] = static_cast<int32_t>(i);
    }
    return slot;
}

AttentionCapture::AttentionCapture(std::vector<int32_t> layers, std::vector<int32_t> heads, int64_t n_layer,
                                   int64_t n_head, int64_t n_pos)
    : layers_(std::move(layers)), heads_(std::move(heads)), n_pos_(n_pos) {
    if (layers_.empty() || heads_.empty())
        throw InvalidArgument("attention capture: choose at least one layer and one head");
    layer_slot_ = slots_of(layers_, n_layer, "layer");
    head_slot_ = slots_of(heads_, n_head, "head");
    const double bytes = 4.0 * layers_.size() * heads_.size() * n_pos * n_pos;
    if (bytes > 4e9)
        throw InvalidArgument("attention capture would need " + std::to_string(static_cast<int64_t>(bytes / 1e6)) +
                              " MB (layers x heads x n_ctx^2 floats); choose fewer layers or heads, or a smaller n_ctx");
    data_.assign(static_cast<size_t>(layers_.size() * heads_.size() * n_pos * n_pos), 0.0f);
    for (size_t i = 0; i < layers_.size(); ++i)
        views_.push_back({data_.data() + i * heads_.size() * n_pos * n_pos, head_slot_.data(), n_pos});
}

void AttentionCapture::forget_from(int64_t n_keep) {
    n_keep = std::clamp<int64_t>(n_keep, 0, n_pos_);
    for (int64_t m = 0; m < static_cast<int64_t>(layers_.size() * heads_.size()); ++m) {
        float* mat = data_.data() + m * n_pos_ * n_pos_;  // (n_pos, n_pos)
        std::fill(mat + n_keep * n_pos_, mat + n_pos_ * n_pos_, 0.0f);  // rows >= n_keep
        for (int64_t r = 0; r < n_keep; ++r) std::fill(mat + r * n_pos_ + n_keep, mat + (r + 1) * n_pos_, 0.0f);
    }
}

}  // namespace pyllong
