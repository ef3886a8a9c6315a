// A Context runs the forward pass of one model over its own KV cache. The Model
// (ModelFile + weights) is immutable and shared; each Context owns its cache, scratch
// buffers and thread pool, so two contexts over one model work from two threads.
#pragma once
#include <memory>
#include <vector>

#include "attention/attention.h"
#include "attention/kv_cache.h"
#include "core/thread_pool.h"
#include "cuda/backend.h"
#include "memory/kv_memory.h"
#include "model/weights.h"
#include "ops/rope.h"

namespace pyllong {

struct ContextParams {
    int64_t n_ctx = 4096;
    int n_threads = 0;    // 0 = hardware concurrency
    int64_t n_batch = 512;
    KVType kv_type = KVType::F16;
    SelfExtend self_extend;  // off by default
    MemoryParams memory;     // kNN memory, off by default (see context_memory.cpp)
    int64_t n_gpu_layers = 0;  // layers [0, n) on the GPU; -1 (or >= n_layer) = all, with the output head
    Transition transition;     // Attention Transition on prompt passes; off by default
};

class Context {
public:
    Context(std::shared_ptr<const ModelFile> model, const ContextParams& params);

    // Appends tokens at positions n_past.. and returns logits: (n, n_vocab) when
    // logits_all, else (1, n_vocab) for the last token. Prefill runs in chunks of n_batch.
    // prompt_len: the whole prompt's length N when this call is (part of) a prompt pass, for
    // the Attention Transition's bands; -1 = n_past + n when n > 1, else a decoding step (0).
    std::vector<float> eval(const int32_t* tokens, int64_t n, bool logits_all, int64_t prompt_len = -1);

    int64_t n_past() const { return cache_.n_used(); }
    int64_t n_ctx() const { return cache_.n_ctx(); }
    int64_t n_vocab() const { return hp_.n_vocab; }
    int64_t kv_bytes() const { return cache_.bytes() + (gpu_ ? gpu_->kv_bytes() : 0); }
    int64_t n_gpu_layers() const { return n_gpu_; }
    KVType kv_type() const { return cache_.type(); }
    const SelfExtend& self_extend() const { return params_.self_extend; }
    const Transition& transition() const { return params_.transition; }
    const ModelFile& model() const { return *model_; }
    // For saving and restoring state (model/state.cpp).
    const KVCache& kv_cache() const { return cache_; }
    KVCache& kv_cache() { return cache_; }

    void reset() { truncate(0); }
    void truncate(int64_t n_keep);                 // drop cells >= n_keep
    void shift(int64_t n_keep, int64_t n_discard);  // drop [n_keep, n_keep+n_discard), re-rotate the rest

    // Attention capture (CPU layers only): from now on the chosen layers' and heads'
    // probabilities are recorded by position; rows at positions the cache drops are cleared.
    void start_capture(std::vector<int32_t> layers, std::vector<int32_t> heads);
    void stop_capture() { capture_.reset(); }
    const AttentionCapture* capture() const { return capture_.get(); }
    // kNN memory (context_memory.cpp). With memory on, eval follows LongLLaMA: the local cache
    // is a window of at most W tokens at positions 0.. from its start, flushed into memory.
    KVMemory& memory() { return memory_; }
    const KVMemory& memory() const { return memory_; }
    void flush_to_memory();  // move the local window into memory (memory layers) or drop it
    // Read tokens into memory only: chunks of W tokens, each attending to itself and memory,
    // then flushed. The local window is flushed first.
    void add_to_memory(const int32_t* tokens, int64_t n);

private:
    void check_tokens(const int32_t* tokens, int64_t n) const;  // InvalidArgument on ids outside the vocabulary
    std::vector<float> eval_windows(const int32_t* tokens, int64_t n, bool logits_all);
    // Run tokens at positions n_past.. in chunks of n_batch; logits as eval.
    void run_batches(const int32_t* tokens, int64_t n, bool logits_all, float* logits);

    // One chunk: x (n, n_embd) in, logits of rows [first_logit, n) out (n_vocab each).
    void forward(const int32_t* tokens, const int32_t* pos, int64_t n, int64_t first_logit, float* logits);
    void norm(const float* x, const std::vector<float>& w, const std::vector<float>& b, float* out, int64_t n);
    void matmul_bias(const QTensorView& W, const std::vector<float>& b, const float* x, float* y, int64_t n);

    std::shared_ptr<const ModelFile> model_;
    const HParams& hp_;
    ModelWeights w_;
    ContextParams params_;
    int64_t n_gpu_;  // layers [0, n_gpu_) run on the device; the cache holds the rest
    KVCache cache_;
    KVMemory memory_;  // empty unless params_.memory is enabled
    ThreadPool pool_;
    RopeParams rope_;
    AttentionParams attn_;
    int64_t prompt_len_ = 0;  // N of the current prompt pass; 0 while decoding
    // Scratch for one chunk of up to n_batch tokens.
    std::vector<float> x_, xn_, q_, k_, v_, qkv_, att_, tmp_, gate_, up_;
    std::vector<float> qg_, kg_;  // SelfExtend's grouped rotations, empty when it is off
    // The kNN memory's part of device layers (context_memory.cpp); null unless memory and a GPU.
    std::unique_ptr<cuda::MemorySide> make_device_memory();
    std::unique_ptr<cuda::MemorySide> device_memory_;
    std::unique_ptr<cuda::DeviceLayers> gpu_;  // null unless n_gpu_layers > 0
    std::unique_ptr<AttentionCapture> capture_;  // null unless a capture was asked for
};

}  // namespace pyllong
