#include "apps/chat/chat_session.h"

#include <algorithm>

#include "apps/chat/eviction.h"
#include "core/error.h"

namespace pyllong::chat {

ChatSession::ChatSession(Generator& gen, const ChatRenderer& renderer, std::optional<std::string> system,
                         int64_t max_tokens, bool evict_shift)
    : gen_(gen), renderer_(renderer), max_tokens_(max_tokens), evict_shift_(evict_shift) {
    if (evict_shift && gen.has_memory())
        throw InvalidArgument("--evict shift cannot be combined with --memory: old turns move into the memory "
                              "instead of being cut out; use --evict rebuild");
    set_system(std::move(system));
}

void ChatSession::forget_cache() {
    cached_text_.clear();
    cached_tokens_.clear();
}

std::vector<Message> ChatSession::messages() const {
    std::vector<Message> m;
    if (system_) m.push_back({"system", *system_});
    m.insert(m.end(), turns_.begin(), turns_.end());
    return m;
}

void ChatSession::reset() {
    turns_.clear();
    forget_cache();
}

void ChatSession::set_system(std::optional<std::string> system) {
    system_ = system && !system->empty() ? std::move(system) : std::nullopt;
    forget_cache();
}

// The rendered prompt and its tokens, re-using the cached part when the text extends it.
ChatSession::Prompt ChatSession::prompt() const {
    Prompt p;
    p.text = renderer_.render(messages(), true);
    if (!cached_text_.empty() && p.text.compare(0, cached_text_.size(), cached_text_) == 0) {
        p.tokens = cached_tokens_;
        const auto delta = gen_.tokenizer().encode(std::string_view(p.text).substr(cached_text_.size()), false, true);
        p.tokens.insert(p.tokens.end(), delta.begin(), delta.end());
    } else {
        p.tokens = gen_.tokenize_chat(p.text);
    }
    return p;
}

// Drop the oldest user message and the replies after it; false if only the newest is left.
bool ChatSession::drop_oldest_turn() {
    std::vector<size_t> users;
    for (size_t i = 0; i < turns_.size(); ++i)
        if (turns_[i].role == "user") users.push_back(i);
    if (users.size() < 2) return false;
    turns_.erase(turns_.begin(), turns_.begin() + static_cast<std::ptrdiff_t>(users[1]));
    ++dropped_turns_;
    forget_cache();
    return true;
}

// session.py _fit: keep min(max_tokens, n_ctx / 2) free for the reply, dropping old turns.
// With memory nothing is dropped: tokens leaving the window move into the kNN memory, so the
// whole conversation is the prompt and the reply may run to max_tokens.
int64_t ChatSession::fit(Prompt& p) {
    if (gen_.has_memory()) {
        p = prompt();
        return max_tokens_;
    }
    const int64_t n_ctx = gen_.n_ctx();
    const int64_t want = std::min(max_tokens_, std::max<int64_t>(1, n_ctx / 2));
    bool dropped_any = false;
    while (true) {
        p = prompt();
        if (static_cast<int64_t>(p.tokens.size()) + want <= n_ctx || !drop_oldest_turn()) break;
        dropped_any = true;
    }
    if (dropped_any && evict_shift_) shift_cache(p.tokens);
    const int64_t room = n_ctx - static_cast<int64_t>(p.tokens.size());
    if (room < 1)
        throw ContextOverflowError("the system prompt and the last message take " + std::to_string(p.tokens.size()) +
                                   " tokens; the context holds " + std::to_string(n_ctx) +
                                   ". Use a larger -c or a shorter message/system prompt");
    return std::min(max_tokens_, room);
}

// session.py _shift_cache: the pinned part is where `tokens` still agrees with the system
// prompt's own tokenization.
void ChatSession::shift_cache(const std::vector<int32_t>& tokens) {
    int64_t pinned = 0;
    if (system_) {
        const auto sys = gen_.tokenize_chat(renderer_.render({{"system", *system_}}, false));
        while (pinned < static_cast<int64_t>(std::min(sys.size(), tokens.size())) && sys[pinned] == tokens[pinned])
            ++pinned;
    }
    if (const auto plan = plan_eviction(gen_.cached(), tokens, pinned)) {
        gen_.evict(plan->first, plan->second);
        shifted_tokens_ += plan->second;
    }
}

Reply ChatSession::send(const std::string& content, const std::function<void(const std::string&)>& on_text) {
    turns_.push_back({"user", content});
    Prompt p;
    int64_t max_tokens;
    try {
        max_tokens = fit(p);
    } catch (...) {
        turns_.pop_back();
        throw;
    }
    Reply r;
    try {
        r = gen_.generate(p.tokens, max_tokens, on_text);
    } catch (...) {
        turns_.pop_back();
        forget_cache();
        throw;
    }
    turns_.push_back({"assistant", r.text});
    if (r.stopped_by_token) {
        // Ended on an end-of-turn token: the cache holds the prompt and the reply's tokens
        // exactly, and the next render continues from this text.
        cached_text_ = p.text + r.text;
        cached_tokens_ = p.tokens;
        cached_tokens_.insert(cached_tokens_.end(), r.tokens.begin(), r.tokens.end());
    } else {
        // Cut by a stop string, the token limit or Ctrl-C: the reply's tokens need not spell
        // its text; re-tokenize the reply next turn.
        cached_text_ = p.text;
        cached_tokens_ = p.tokens;
    }
    return r;
}

}  // namespace pyllong::chat
