#include "apps/chat/json_writer.h"

#include <cstdio>

#include "apps/chat/text_assembler.h"

namespace pyllong::chat {

std::string json_string(std::string_view text) {
    std::string s(text);
    s = decode_utf8_prefix(s, true);  // user input may be any bytes: JSON needs valid UTF-8
    std::string out = "\"";
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}

void Transcript::add_user(const std::string& content) { entries_.push_back({"user", content, "", "", 0, 0}); }

void Transcript::add_reply(const Reply& r) {
    entries_.push_back({"assistant", r.text, r.finish_reason, "", r.prompt_tokens,
                        static_cast<int64_t>(r.tokens.size())});
}

void Transcript::add_error(const std::string& message) { entries_.back().error = message; }

std::string Transcript::to_json(const std::string& model, const char* format, const std::optional<std::string>& system,
                                int dropped_turns, int64_t evaluated_tokens, const KVMemory* memory,
                                int64_t local_tokens) const {
    std::string s = "{\"model\": " + json_string(model) + ", \"chat_format\": " + json_string(format) +
                    ", \"system\": " + (system ? json_string(*system) : "null") + ", \"messages\": [";
    for (size_t i = 0; i < entries_.size(); ++i) {
        const Entry& e = entries_[i];
        s += (i ? ", " : "") + std::string("{\"role\": ") + json_string(e.role) + ", \"content\": " + json_string(e.content);
        if (e.role == "assistant")
            s += ", \"finish_reason\": " + json_string(e.finish_reason) +
                 ", \"prompt_tokens\": " + std::to_string(e.prompt_tokens) +
                 ", \"completion_tokens\": " + std::to_string(e.completion_tokens);
        if (!e.error.empty()) s += ", \"error\": " + json_string(e.error);
        s += "}";
    }
    s += "], \"dropped_turns\": " + std::to_string(dropped_turns) +
         ", \"evaluated_tokens\": " + std::to_string(evaluated_tokens);
    if (memory) {  // the names of Memory.stats()
        const MemoryParams& p = memory->params();
        s += ", \"memory\": {\"layers\": [";
        for (size_t i = 0; i < p.layers.size(); ++i) s += (i ? ", " : "") + std::to_string(p.layers[i]);
        s += "], \"mode\": " + json_string(memory_mode_name(p.mode)) + ", \"k\": " + std::to_string(p.k) +
             ", \"cap\": " + (p.cap > 0 ? std::to_string(p.cap) : "null") + ", \"window\": " + std::to_string(p.window) +
             ", \"last_context_length\": " + std::to_string(p.last_context_length) +
             ", \"index\": " + json_string(p.ivf ? "ivf" : "exact") +
             ", \"distance\": " + (p.distance > 0 ? std::to_string(p.distance) : "null") +
             ", \"tokens\": " + std::to_string(memory->size()) + ", \"evicted\": " + std::to_string(memory->evicted()) +
             ", \"local_tokens\": " + std::to_string(local_tokens) + "}";
    }
    return s + "}\n";
}

}  // namespace pyllong::chat
