// A multi-turn conversation over one Generator, the C++ twin of pyllong/session.py's
// ChatSession (mirror changes in both): each turn tokenizes only what the format adds since
// the previous turn, so the cached prefix is never evaluated again; when the conversation no
// longer fits, whole old turns are dropped (the system prompt is pinned) and the chat goes on.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "apps/chat/chat_format.h"
#include "apps/chat/generator.h"

namespace pyllong::chat {

class ChatSession {
public:
    // evict_shift: cut dropped turns out of the KV cache (session.py evict="shift") instead of
    // re-evaluating what follows the system prompt; refused (InvalidArgument) with memory.
    ChatSession(Generator& gen, const ChatRenderer& renderer, std::optional<std::string> system, int64_t max_tokens,
                bool evict_shift = false);

    // Add a user message and generate the reply, streaming its text to on_text. Throws
    // ContextOverflowError (and forgets the message) when even the last message alone
    // does not fit.
    Reply send(const std::string& content, const std::function<void(const std::string&)>& on_text);

    void reset();                                      // forget the turns; the system prompt stays
    void set_system(std::optional<std::string> system);
    const std::optional<std::string>& system() const { return system_; }
    std::vector<Message> messages() const;             // system + turns, as rendered
    int dropped_turns() const { return dropped_turns_; }
    int64_t shifted_tokens() const { return shifted_tokens_; }
    const Generator& generator() const { return gen_; }

private:
    struct Prompt {
        std::string text;
        std::vector<int32_t> tokens;
    };
    Prompt prompt() const;
    bool drop_oldest_turn();
    int64_t fit(Prompt& p);  // returns the max_tokens that fits
    void forget_cache();
    void shift_cache(const std::vector<int32_t>& tokens);

    Generator& gen_;
    const ChatRenderer& renderer_;
    std::optional<std::string> system_;
    int64_t max_tokens_;
    std::vector<Message> turns_;
    int dropped_turns_ = 0;
    bool evict_shift_ = false;
    int64_t shifted_tokens_ = 0;
    std::string cached_text_;            // rendered conversation whose tokens are cached_tokens_
    std::vector<int32_t> cached_tokens_;
};

}  // namespace pyllong::chat
