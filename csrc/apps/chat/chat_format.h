// Chat formats rendered natively (no Jinja): the format is detected from the GGUF's chat
// template text (or chosen with --chat-format) and each one reproduces what the canonical
// template of its family renders, so a prompt here equals the Python API's Jinja rendering
// of that template (tests/test_pyllong_chat.py checks it against pyllong.chat_template).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pyllong::chat {

enum class ChatFormat { ChatML, Llama2, Llama3, Mistral, Phi3, Zephyr, Gemma };

struct Message {
    std::string role;     // "system" | "user" | "assistant"
    std::string content;
};

const char* format_name(ChatFormat f);
std::optional<ChatFormat> format_from_name(std::string_view name);
std::string format_names();  // "chatml, llama2, ..." for help and errors

// The family of a template, by the marker strings only that family uses (the approach of
// llama.cpp's llm_chat_detect_template). An empty template is ChatML, the Python API's
// fallback too. nullopt: not recognized.
std::optional<ChatFormat> detect_format(std::string_view template_text);

// Special token texts a template refers to.
struct SpecialTexts {
    std::string bos, eos;
};

class ChatRenderer {
public:
    // `template_text` is consulted only for a ChatML default system prompt (SmolLM2's
    // template writes one when the conversation has none).
    ChatRenderer(ChatFormat format, SpecialTexts special, std::string_view template_text);

    // The conversation as the model sees it; add_generation_prompt opens the assistant's turn.
    std::string render(const std::vector<Message>& messages, bool add_generation_prompt) const;

    // What the format writes after an assistant message: the reply ends when it is generated.
    std::string end_of_turn() const;

    ChatFormat format() const { return format_; }
    const std::string& default_system() const { return default_system_; }

private:
    ChatFormat format_;
    SpecialTexts special_;
    std::string default_system_;
};

}  // namespace pyllong::chat
