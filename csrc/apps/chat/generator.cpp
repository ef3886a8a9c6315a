#include "apps/chat/generator.h"

#include <algorithm>

#include "apps/chat/interrupt.h"
#include "apps/chat/text_assembler.h"
#include "core/error.h"

namespace pyllong::chat {

namespace {

// Token texts llama.cpp treats as end-of-generation when the vocabulary marks them control
// (the same list as model.py's _EOG_TEXTS).
const char* const kEogTexts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                 "<|eom_id|>", "<EOT>", "_<EOT>", "<｜end▁of▁sentence｜>"};

}  // namespace

Generator::Generator(std::shared_ptr<const ModelFile> model, const ContextParams& ctx_params,
                     const SamplingParams& sampling, uint64_t seed)
    : model_(std::move(model)),
      tokenizer_(model_->vocab()),
      ctx_(model_, ctx_params),
      n_batch_(ctx_params.n_batch),
      sampler_(sampling, model_->vocab().n_vocab(), seed) {
    stop_ids_ = find_eog_ids();
    if (has_memory()) set_memory_base();
}

std::string Generator::token_text(int32_t id) const {
    return id >= 0 && id < tokenizer_.n_vocab() ? std::string(model_->vocab().tokens[id]) : std::string();
}

bool Generator::is_special(int32_t id) const {
    const TokenType t = model_->vocab().types[id];
    return t == TokenType::Control || t == TokenType::UserDefined;
}

std::set<int32_t> Generator::find_eog_ids() const {
    std::set<int32_t> ids;
    for (int32_t id : {model_->vocab().eos, model_->vocab().eot})
        if (id >= 0) ids.insert(id);
    for (const char* text : kEogTexts) {
        const auto toks = tokenizer_.encode(text, false, true);
        if (toks.size() == 1 && is_special(toks[0])) ids.insert(toks[0]);
    }
    return ids;
}

void Generator::set_end_of_turn(const std::string& end_of_turn) {
    stop_strings_.clear();
    // As model.py: the marker (stripped) is a stop token when its first token is special.
    const char* ws = " \t\n\r\v\f";
    const size_t b = end_of_turn.find_first_not_of(ws);
    if (b == std::string::npos) return;
    const std::string marker = end_of_turn.substr(b, end_of_turn.find_last_not_of(ws) - b + 1);
    const auto toks = tokenizer_.encode(marker, false, true);
    if (!toks.empty() && is_special(toks[0])) stop_ids_.insert(toks[0]);
    else stop_strings_.push_back(marker.substr(0, marker.find_first_of(ws)));
}

std::vector<int32_t> Generator::tokenize_chat(const std::string& text) const {
    auto toks = tokenizer_.encode(text, true, true);
    if (toks.size() >= 2 && toks[0] == bos() && toks[1] == bos()) toks.erase(toks.begin());  // template wrote BOS itself
    return toks;
}

void Generator::reset() {
    if (has_memory()) return restore_memory_base();
    ctx_.reset();
    cached_.clear();
}

void Generator::set_memory_base() {
    const KVMemory& m = ctx_.memory();
    mem_base_size_ = m.size();
    mem_base_evicted_ = m.evicted();
    mem_base_copy_ = m.params().cap > 0 ? std::make_unique<KVMemory>(m) : nullptr;
    cached_.clear();
}

void Generator::restore_memory_base() {
    ctx_.reset();
    KVMemory& m = ctx_.memory();
    if (mem_base_copy_) {  // as Context.set_memory in the bindings: the rows again, re-indexed
        m.clear();
        for (int64_t s = 0; s < mem_base_copy_->n_slots(); ++s) {
            std::vector<uint16_t> k, v;
            mem_base_copy_->export_f16(s, k, v);
            m.append_f16(s, k.data(), v.data(), mem_base_copy_->size(s));
        }
    } else if (m.evicted() == mem_base_evicted_) {
        m.truncate(mem_base_size_);
    }
    cached_.clear();
}

void Generator::load_memory(const std::vector<std::vector<uint16_t>>& keys,
                            const std::vector<std::vector<uint16_t>>& values, int64_t n) {
    KVMemory& m = ctx_.memory();
    if (static_cast<int64_t>(keys.size()) != m.n_slots() || values.size() != keys.size())
        throw InvalidArgument("the memory rows do not match this memory's layers");
    ctx_.reset();
    m.clear();
    for (int64_t s = 0; s < m.n_slots(); ++s) m.append_f16(s, keys[s].data(), values[s].data(), n);
    set_memory_base();
}

void Generator::add_document(const std::vector<int32_t>& tokens) {
    if (tokens.empty()) throw InvalidArgument("the memory document is empty");
    restore_memory_base();
    ctx_.add_to_memory(tokens.data(), static_cast<int64_t>(tokens.size()));
    n_evaluated_ += static_cast<int64_t>(tokens.size());
    set_memory_base();
}

void Generator::evict(int64_t n_keep, int64_t n_discard) {
    ctx_.shift(n_keep, n_discard);  // checks the counts against the cache
    cached_.erase(cached_.begin() + n_keep, cached_.begin() + n_keep + n_discard);
}

std::vector<float> Generator::eval_tracked(const int32_t* tokens, int64_t n, int64_t prompt_len) {
    auto logits = ctx_.eval(tokens, n, false, prompt_len);
    cached_.insert(cached_.end(), tokens, tokens + n);
    n_evaluated_ += n;
    return logits;
}

// Model._prefill: keep the cached common prefix (but re-evaluate the last prompt token for its
// logits), evaluate the rest in n_batch chunks — the chunks Context::eval would make — so
// Ctrl-C can stop a long prompt between chunks.
std::vector<float> Generator::prefill(const std::vector<int32_t>& prompt) {
    if (prompt.empty()) throw InvalidArgument("the prompt is empty (no tokens)");
    if (has_memory()) return prefill_memory(prompt);
    if (static_cast<int64_t>(prompt.size()) > ctx_.n_ctx())
        throw ContextOverflowError("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
                                   std::to_string(ctx_.n_ctx()) + "; use a larger -c or a shorter message");
    size_t common = 0;
    const size_t limit = std::min(prompt.size(), cached_.size());
    while (common < limit && prompt[common] == cached_[common]) ++common;
    common = std::min(common, prompt.size() - 1);
    if (common < cached_.size()) {
        ctx_.truncate(static_cast<int64_t>(common));
        cached_.resize(common);
    }
    std::vector<float> logits;
    for (size_t at = common; at < prompt.size(); at += static_cast<size_t>(n_batch_)) {
        if (interrupt_requested()) return {};
        const int64_t len = std::min<int64_t>(n_batch_, static_cast<int64_t>(prompt.size() - at));
        logits = eval_tracked(prompt.data() + at, len, static_cast<int64_t>(prompt.size()));
    }
    return logits;
}

// Model._prefill_memory: the window cannot be truncated, so a prompt that continues the
// conversation evaluates its new tokens and any other starts a new conversation from the
// documents. One Context::eval call: the memory's window logic splits a long prompt itself
// (LongLLaMA's last_context_length rule needs the whole input at once), so Ctrl-C is only
// looked at before it.
std::vector<float> Generator::prefill_memory(const std::vector<int32_t>& prompt) {
    size_t n = cached_.size();
    if (!(n < prompt.size() && std::equal(cached_.begin(), cached_.end(), prompt.begin()))) {
        restore_memory_base();
        n = 0;
    }
    if (interrupt_requested()) return {};
    return eval_tracked(prompt.data() + n, static_cast<int64_t>(prompt.size() - n), -1);
}

// Model._generate, for one chat reply.
Reply Generator::generate(const std::vector<int32_t>& prompt, int64_t max_tokens,
                          const std::function<void(const std::string&)>& on_text) {
    Reply r;
    r.prompt_tokens = static_cast<int64_t>(prompt.size());
    r.finish_reason = "length";
    TextAssembler text(stop_strings_);
    std::vector<int32_t> history = prompt;  // prompt + generated, for the penalty window
    std::vector<float> logits;
    if (max_tokens > 0) {
        logits = prefill(prompt);
        if (logits.empty()) {
            r.finish_reason = "interrupted";
            return r;
        }
    }
    for (int64_t i = 0; i < max_tokens; ++i) {
        const int32_t tok = sampler_.sample(logits.data(), history.data(), history.size());
        if (stop_ids_.count(tok)) {
            r.finish_reason = "stop";
            r.stopped_by_token = true;
            break;
        }
        r.tokens.push_back(tok);
        history.push_back(tok);
        const std::string piece = text.feed(tokenizer_.token_to_piece(tok, false));
        if (!piece.empty()) on_text(piece);
        if (text.stopped()) {
            r.finish_reason = "stop";
            break;
        }
        if (interrupt_requested()) {
            r.finish_reason = "interrupted";
            break;
        }
        if (i + 1 == max_tokens) break;  // the last token needs no forward pass
        if (!has_memory() && ctx_.n_past() + 1 > ctx_.n_ctx())
            throw ContextOverflowError("the reply filled the context of " + std::to_string(ctx_.n_ctx()) + " tokens");
        logits = eval_tracked(&tok, 1, 0);
    }
    if (r.finish_reason != "interrupted") {
        const std::string tail = text.finish();
        if (!tail.empty()) on_text(tail);
    }
    r.text = text.text();
    return r;
}

}  // namespace pyllong::chat
