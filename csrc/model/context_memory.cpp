// The kNN memory's side of the Context: LongLLaMA's input handling (modeling_longllama.py,
// _handle_long_input and the local-cache rule of LongLlamaAttention; spec: knn-memory.md).
// Kept apart from the forward pass: the memory reaches attention through AttentionParams.
#include <algorithm>

#include "attention/memory_attention.h"
#include "core/error.h"
#include "model/context.h"

namespace pyllong {

// The memory's part of a device layer's attention: the CPU loop's memory policy and scan
// (memory_attention.h) on the queries the device sends down, rotated here as attention_step
// rotates them for memory scores (at the memory distance, else at their positions).
namespace {

class DeviceMemory final : public cuda::MemorySide {
public:
    DeviceMemory(const KVMemory& memory, const HParams& hp, const RopeParams& rope, const AttentionParams& attn,
                 ThreadPool& pool, int n_threads)
        : memory_(memory), hp_(hp), rope_(rope), attn_(attn), pool_(pool), n_threads_(n_threads) {
        attn_.first_layer = 0;  // fold's `layer` is the model's
    }
    bool active(int64_t layer) const override {
        const int64_t slot = memory_.slot(layer);
        return slot >= 0 && memory_.size(slot) > 0;
    }
    void fold(int64_t layer, const float* q, const int32_t* pos, int64_t n, float* partial) override {
        q_mem_.assign(q, q + n * hp_.n_head * hp_.head_dim);  // (n, n_head * head_dim)
        const int64_t distance = memory_.params().distance;
        std::vector<int32_t> at(pos, pos + n);  // (n,)
        if (distance > 0) std::fill(at.begin(), at.end(), static_cast<int32_t>(distance));
        rope(q_mem_.data(), at.data(), n, hp_.n_head, hp_.head_dim, rope_);
        const attn::MemoryPolicy mp = attn::memory_policy(attn_, layer, q_mem_.data(), nullptr);
        attn::memory_states(n, attn_, mp, partial, pool_, n_threads_);
    }

private:
    const KVMemory& memory_;
    const HParams& hp_;
    const RopeParams& rope_;
    AttentionParams attn_;
    ThreadPool& pool_;
    int n_threads_;
    std::vector<float> q_mem_;
};

}  // namespace

std::unique_ptr<cuda::MemorySide> Context::make_device_memory() {
    return std::make_unique<DeviceMemory>(memory_, hp_, rope_, attn_, pool_, params_.n_threads);
}

// An input longer than last_context_length: all but its last last_context_length tokens go
// through in chunks of W. From an empty window ("no local cache" in the reference) each chunk
// attends to itself and memory, then moves into memory; otherwise chunks follow the window
// rule below like any other tokens. The tail always follows the window rule: when window +
// new tokens would exceed W, the whole window moves to memory first (a hard reset, not a
// sliding window) and the new tokens start again at position 0.
std::vector<float> Context::eval_windows(const int32_t* tokens, int64_t n, bool logits_all) {
    const MemoryParams& mp = memory_.params();
    const int64_t V = hp_.n_vocab, W = mp.window;
    std::vector<float> logits(static_cast<size_t>((logits_all ? n : 1) * V));  // as eval
    auto piece = [&](int64_t start, int64_t len) {
        const bool last = start + len == n;
        if (!logits_all && !last) {
            run_batches(tokens + start, len, false, nullptr);
            return;
        }
        run_batches(tokens + start, len, logits_all, logits_all ? logits.data() + start * V : logits.data());
    };
    auto windowed = [&](int64_t start, int64_t len) {
        if (cache_.n_used() + len > W) flush_to_memory();
        piece(start, len);
    };
    const int64_t n_chunked = std::max<int64_t>(n - mp.last_context_length, 0);
    const bool fresh = cache_.n_used() == 0;
    for (int64_t s = 0; s < n_chunked; s += W) {
        const int64_t len = std::min(W, n_chunked - s);
        if (fresh) {
            piece(s, len);
            flush_to_memory();
        } else {
            windowed(s, len);
        }
    }
    windowed(n_chunked, n - n_chunked);  // n - n_chunked <= last_context_length <= W
    return logits;
}

// Memory keys are stored unrotated: the window's keys were rotated at their local positions,
// so each is turned back by its position.
void Context::flush_to_memory() {
    const int64_t n = cache_.n_used(), kv_dim = cache_.kv_dim();
    if (n == 0) return;
    std::vector<float> k(static_cast<size_t>(n * kv_dim)), v(k.size());  // (n, kv_dim) each
    const int32_t* pos = cache_.positions();
    for (int64_t l = 0; l < hp_.n_layer; ++l) {
        const int64_t slot = memory_.slot(l);
        if (slot < 0) continue;  // other layers drop their window
        if (l < n_gpu_) gpu_->read_kv(l, n, k.data(), v.data());
        for (int64_t c = 0; c < n; ++c) {
            if (l >= n_gpu_) {
                cache_.load_key(l - n_gpu_, c, k.data() + c * kv_dim);
                cache_.load_value(l - n_gpu_, c, v.data() + c * kv_dim);
            }
            rope_delta(k.data() + c * kv_dim, -pos[c], hp_.n_head_kv, hp_.head_dim, rope_);
        }
        memory_.append(slot, k.data(), v.data(), n);
    }
    cache_.set_used(0);
}

void Context::add_to_memory(const int32_t* tokens, int64_t n) {
    if (!memory_.enabled()) throw InvalidArgument("this context has no kNN memory; create it with memory options");
    check_tokens(tokens, n);
    flush_to_memory();
    for (int64_t s = 0; s < n; s += memory_.params().window) {
        run_batches(tokens + s, std::min(memory_.params().window, n - s), false, nullptr);
        flush_to_memory();
    }
}

}  // namespace pyllong
