// The generation side of pyllong-chat, the C++ twin of pyllong.Model's loop (model.py):
// a Context with a mirror of the token ids in its KV cache, prefill that evaluates only
// what is not cached yet, and the sampling loop with end-of-generation tokens and stop
// strings. Rules here mirror model.py (_find_eog_ids, _prefill, _generate, tokenize_chat)
// so that greedy output matches the Python API token for token.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/context.h"
#include "model/model_file.h"
#include "sampling/sampler.h"
#include "tokenizer/tokenizer.h"

namespace pyllong::chat {

struct Reply {
    std::string text;
    std::vector<int32_t> tokens;     // generated ids, the end-of-generation token excluded
    bool stopped_by_token = false;   // ended on an end-of-generation / end-of-turn token
    std::string finish_reason;       // "stop" | "length" | "interrupted"
    int64_t prompt_tokens = 0;
};

class Generator {
public:
    Generator(std::shared_ptr<const ModelFile> model, const ContextParams& ctx_params,
              const SamplingParams& sampling, uint64_t seed);

    const Tokenizer& tokenizer() const { return tokenizer_; }
    const ModelFile& model() const { return *model_; }
    int64_t n_ctx() const { return ctx_.n_ctx(); }
    int64_t n_past() const { return ctx_.n_past(); }  // tokens in the KV cache (with memory: the window)
    int64_t n_evaluated() const { return n_evaluated_; }  // tokens sent to the forward pass (Model.n_evaluated)
    int32_t bos() const { return model_->vocab().bos; }
    int32_t eos() const { return model_->vocab().eos; }
    std::string token_text(int32_t id) const;  // "" for -1

    // Tokens of a rendered chat prompt: special tokens parsed, BOS added once.
    std::vector<int32_t> tokenize_chat(const std::string& text) const;

    // `end_of_turn` (the chat format's marker) also ends a reply: as a token id when it is one
    // control token, else as a stop string (Model._chat_end_markers).
    void set_end_of_turn(const std::string& end_of_turn);

    // Bring the cache to `prompt` and generate up to max_tokens; on_text gets each piece of
    // text as soon as it is final. Ctrl-C (interrupt flag) ends the reply early.
    Reply generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                   const std::function<void(const std::string&)>& on_text);

    // Empty the KV cache. With memory: drop the conversation, keep the documents (Model.reset).
    void reset();

    // kNN memory (model.py's _memory_* and _prefill_memory). With memory the cache is a window
    // of at most W tokens whose overflow moves into memory; cached() then holds the whole
    // conversation since the documents, and a prompt that does not continue it starts a new
    // conversation from them.
    bool has_memory() const { return ctx_.memory().enabled(); }
    const KVMemory& memory() const { return ctx_.memory(); }
    // Read tokens into memory without generating (Memory.add_document): the conversation is
    // dropped and the memory, documents included, is what every later conversation starts from.
    void add_document(const std::vector<int32_t>& tokens);
    // Replace the memory with saved rows (per memory layer, (n, n_head_kv * head_dim) f16) and
    // make them what every conversation starts from (Memory._attach of a loaded file).
    void load_memory(const std::vector<std::vector<uint16_t>>& keys, const std::vector<std::vector<uint16_t>>& values,
                     int64_t n);

    // The token ids in the KV cache, and llama.cpp's context shift on them: drop cached
    // [n_keep, n_keep + n_discard) and move the rest back without evaluating anything.
    const std::vector<int32_t>& cached() const { return cached_; }
    void evict(int64_t n_keep, int64_t n_discard);

private:
    bool is_special(int32_t id) const;
    std::set<int32_t> find_eog_ids() const;
    // Returns the logits of the last prompt token, or empty when interrupted.
    std::vector<float> prefill(const std::vector<int32_t>& prompt);
    // prompt_len: N of the prompt this chunk belongs to (Attention Transition bands), 0 when decoding.
    std::vector<float> eval_tracked(const int32_t* tokens, int64_t n, int64_t prompt_len);
    std::vector<float> prefill_memory(const std::vector<int32_t>& prompt);
    void set_memory_base();      // what a new conversation starts from: the memory as it is now
    void restore_memory_base();  // empty window, memory back to its base

    std::shared_ptr<const ModelFile> model_;
    Tokenizer tokenizer_;
    Context ctx_;
    int64_t n_batch_;
    Sampler sampler_;
    std::vector<int32_t> cached_;        // ids in the KV cache, in order
    std::set<int32_t> stop_ids_;         // end-of-generation + end-of-turn tokens
    std::vector<std::string> stop_strings_;
    // The memory a new conversation starts from: its size, its evictions and (with a cap,
    // where eviction cannot be undone by truncation) a copy.
    int64_t mem_base_size_ = 0, mem_base_evicted_ = 0;
    std::unique_ptr<KVMemory> mem_base_copy_;
    int64_t n_evaluated_ = 0;
};

}  // namespace pyllong::chat
