// The --json transcript: one JSON object written when the conversation ends.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "apps/chat/chat_format.h"
#include "apps/chat/generator.h"

namespace pyllong::chat {

// A JSON string literal (quotes included); invalid UTF-8 in `s` becomes U+FFFD.
std::string json_string(std::string_view s);


class Transcript {
public:
    void add_user(const std::string& content);
    void add_reply(const Reply& reply);
    void add_error(const std::string& message);
    // evaluated_tokens: tokens the forward pass read (what the prefix cache saved shows here).
    // memory: the kNN memory at the end (options, tokens held), or null without --memory.
    std::string to_json(const std::string& model, const char* format, const std::optional<std::string>& system,
                        int dropped_turns, int64_t evaluated_tokens, const KVMemory* memory = nullptr,
                        int64_t local_tokens = 0) const;

private:
    struct Entry {
        std::string role, content, finish_reason, error;
        int64_t prompt_tokens = 0, completion_tokens = 0;
    };
    std::vector<Entry> entries_;
};

}  // namespace pyllong::chat
