#include "apps/chat/chat_format.h"

#include <utility>

namespace pyllong::chat {

namespace {

struct FormatName {
    ChatFormat format;
    const char* name;
};
constexpr FormatName kNames[] = {
    {ChatFormat::ChatML, "chatml"}, {ChatFormat::Llama2, "llama2"}, {ChatFormat::Llama3, "llama3"},
    {ChatFormat::Mistral, "mistral"}, {ChatFormat::Phi3, "phi3"}, {ChatFormat::Zephyr, "zephyr"},
    {ChatFormat::Gemma, "gemma"},
};

bool contains(std::string_view s, std::string_view what) { return s.find(what) != std::string_view::npos; }

// Jinja's `| trim` (Python str.strip) for the ASCII whitespace chat text carries.
std::string trim(std::string_view s) {
    const char* ws = " \t\n\r\v\f";
    const size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return "";
    const size_t e = s.find_last_not_of(ws);
    return std::string(s.substr(b, e - b + 1));
}

// Undo the escapes of a Jinja string literal (\n, \t, \', \", \\).
std::string unescape_jinja(std::string_view s) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size()) {
            const char c = s[++i];
            out += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        } else {
            out += s[i];
        }
    }
    return out;
}

// A ChatML template that writes its own system message when the conversation has none
// (SmolLM2: `{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n
// You are a helpful AI assistant named SmolLM...<|im_end|>\n' }}`): that message's text.
std::string chatml_default_system(std::string_view tmpl) {
    if (!contains(tmpl, "!= 'system'") && !contains(tmpl, "!= \"system\"")) return "";
    const std::string_view head = "<|im_start|>system";
    const size_t at = tmpl.find(head);
    if (at == std::string_view::npos) return "";
    size_t begin = at + head.size();
    if (tmpl.substr(begin, 1) == "\n") begin += 1;
    else if (tmpl.substr(begin, 2) == "\\n") begin += 2;
    else return "";  // the role is spliced in from a variable: no literal default
    const size_t end = tmpl.find("<|im_end|>", begin);
    if (end == std::string_view::npos) return "";
    const std::string_view literal = tmpl.substr(begin, end - begin);
    if (contains(literal, "'") || contains(literal, "\"") || contains(literal, "{")) return "";  // not one literal
    return unescape_jinja(literal);
}

// Formats without a system role put the system prompt in front of the first user message,
// as llama.cpp does for them.
std::vector<Message> merge_system_into_first_user(const std::vector<Message>& messages) {
    std::vector<Message> out;
    std::string system;
    for (const auto& m : messages) {
        if (m.role == "system") {
            system = m.content;
        } else if (m.role == "user" && !system.empty()) {
            out.push_back({m.role, system + "\n\n" + m.content});
            system.clear();
        } else {
            out.push_back(m);
        }
    }
    return out;
}

}  // namespace

const char* format_name(ChatFormat f) {
    for (const auto& n : kNames)
        if (n.format == f) return n.name;
    return "?";
}

std::optional<ChatFormat> format_from_name(std::string_view name) {
    for (const auto& n : kNames)
        if (name == n.name) return n.format;
    return std::nullopt;
}

std::string format_names() {
    std::string s;
    for (const auto& n : kNames) s += std::string(s.empty() ? "" : ", ") + n.name;
    return s;
}

std::optional<ChatFormat> detect_format(std::string_view t) {
    if (t.empty() || contains(t, "<|im_start|>")) return ChatFormat::ChatML;
    if (contains(t, "<|start_header_id|>") && contains(t, "<|end_header_id|>")) return ChatFormat::Llama3;
    if (contains(t, "<start_of_turn>")) return ChatFormat::Gemma;
    if (contains(t, "[INST]")) return contains(t, "<<SYS>>") ? ChatFormat::Llama2 : ChatFormat::Mistral;
    if (contains(t, "<|assistant|>") && contains(t, "<|end|>")) return ChatFormat::Phi3;
    if (contains(t, "<|user|>") && contains(t, "<|assistant|>")) return ChatFormat::Zephyr;
    return std::nullopt;
}

ChatRenderer::ChatRenderer(ChatFormat format, SpecialTexts special, std::string_view template_text)
    : format_(format), special_(std::move(special)) {
    if (format_ == ChatFormat::ChatML) default_system_ = chatml_default_system(template_text);
}

std::string ChatRenderer::end_of_turn() const {
    switch (format_) {
        case ChatFormat::ChatML: return "<|im_end|>";
        case ChatFormat::Llama3: return "<|eot_id|>";
        case ChatFormat::Phi3: return "<|end|>";
        case ChatFormat::Gemma: return "<end_of_turn>";
        case ChatFormat::Llama2:
        case ChatFormat::Mistral:
        case ChatFormat::Zephyr: return special_.eos;
    }
    return "";
}

std::string ChatRenderer::render(const std::vector<Message>& messages, bool add_generation_prompt) const {
    const std::string& bos = special_.bos;
    const std::string& eos = special_.eos;
    std::string out;
    switch (format_) {
        case ChatFormat::ChatML: {
            // '<|im_start|>' + role + '\n' + content + '<|im_end|>\n' per message.
            const bool has_system = !messages.empty() && messages.front().role == "system";
            if (!has_system && !messages.empty() && !default_system_.empty())
                out += "<|im_start|>system\n" + default_system_ + "<|im_end|>\n";
            for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
            if (add_generation_prompt) out += "<|im_start|>assistant\n";
            break;
        }
        case ChatFormat::Llama2: {
            // Meta's LLaMA-2 template (models/synthetic.py LLAMA2_TEMPLATE): the system prompt
            // is wrapped in <<SYS>> into the first message; no generation prompt.
            size_t first = 0;
            std::string system;
            if (!messages.empty() && messages.front().role == "system") {
                system = "<<SYS>>\n" + messages.front().content + "\n<</SYS>>\n\n";
                first = 1;
            }
            for (size_t i = first; i < messages.size(); ++i) {
                const auto& m = messages[i];
                const std::string content = (i == first ? system : "") + m.content;
                if (m.role == "user") out += bos + "[INST] " + content + " [/INST]";
                else if (m.role == "assistant") out += " " + content + " " + eos;
            }
            break;
        }
        case ChatFormat::Llama3: {
            // Meta's LLaMA-3 Instruct template: trimmed content, BOS before the first message.
            for (size_t i = 0; i < messages.size(); ++i) {
                const auto& m = messages[i];
                if (i == 0) out += bos;
                out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + trim(m.content) + "<|eot_id|>";
            }
            if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            break;
        }
        case ChatFormat::Mistral: {
            // Mistral-7B-Instruct v0.1/v0.2: BOS, '[INST] ' + user + ' [/INST]', reply + EOS.
            out += bos;
            for (const auto& m : merge_system_into_first_user(messages)) {
                if (m.role == "user") out += "[INST] " + m.content + " [/INST]";
                else if (m.role == "assistant") out += m.content + eos;
            }
            break;
        }
        case ChatFormat::Phi3: {
            // Phi-3-mini: '<|role|>\n' + content + '<|end|>\n'; EOS when no generation prompt.
            for (const auto& m : messages)
                if (m.role == "system" || m.role == "user" || m.role == "assistant")
                    out += "<|" + m.role + "|>\n" + m.content + "<|end|>\n";
            out += add_generation_prompt ? "<|assistant|>\n" : eos;
            break;
        }
        case ChatFormat::Zephyr: {
            // HuggingFaceH4/zephyr-7b-beta (rendered with trim_blocks/lstrip_blocks):
            // '<|role|>\n' + content + EOS + '\n'.
            for (const auto& m : messages)
                if (m.role == "system" || m.role == "user" || m.role == "assistant")
                    out += "<|" + m.role + "|>\n" + m.content + eos + "\n";
            if (add_generation_prompt) out += "<|assistant|>\n";
            break;
        }
        case ChatFormat::Gemma: {
            // Gemma instruct: BOS, '<start_of_turn>' + (user|model) + '\n' + trimmed content +
            // '<end_of_turn>\n'; a system prompt leads the first user turn (Gemma-3 style).
            out += bos;
            for (const auto& m : merge_system_into_first_user(messages)) {
                const std::string role = m.role == "assistant" ? "model" : m.role;
                out += "<start_of_turn>" + role + "\n" + trim(m.content) + "<end_of_turn>\n";
            }
            if (add_generation_prompt) out += "<start_of_turn>model\n";
            break;
        }
    }
    return out;
}

}  // namespace pyllong::chat
