#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace pyllong {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

bool is_special_type(TokenType t) {
    return t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
}

// "<0xNN>" -> NN, or -1.
int parse_byte_token(std::string_view t) {
    auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    const int hi = hex(t[3]), lo = hex(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

// The bytes a byte-level BPE token spells. A char outside the GPT-2 alphabet (only in
// hand-made vocabularies) stands for its own UTF-8.
std::string bpe_token_bytes(std::string_view text) {
    std::string out;
    for (uint32_t c : unicode::decode_utf8_lossy(text)) {
        const int b = unicode::codepoint_to_byte(c);
        if (b >= 0) out += char(b);
        else unicode::append_utf8(c, out);
    }
    return out;
}

std::string spm_token_bytes(std::string_view text) {
    std::string out;
    for (size_t pos = 0; pos < text.size();) {
        if (text.substr(pos, kSpmSpace.size()) == kSpmSpace) {
            out += ' ';
            pos += kSpmSpace.size();
        } else {
            out += text[pos++];
        }
    }
    return out;
}

}  // namespace

Tokenizer::Tokenizer(const Vocab& vocab) : vocab_(vocab) {
    if (vocab.add_bos && vocab.bos < 0)
        throw GGUFError("tokenizer.ggml.add_bos_token is true but tokenizer.ggml.bos_token_id is not set");
    if (vocab.add_eos && vocab.eos < 0)
        throw GGUFError("tokenizer.ggml.add_eos_token is true but tokenizer.ggml.eos_token_id is not set");

    if (vocab.type == VocabType::BPE) {
        pre_ = pre_tokenizer_from_name(vocab.pre);
        bpe_ = std::make_unique<BpeModel>(vocab, pre_tokenizer_ignores_merges(pre_));
    } else {
        spm_ = std::make_unique<SpmModel>(vocab);
    }

    // Empty texts would match everywhere; such tokens cannot be spelled in text.
    for (int32_t id = 0; id < vocab.n_vocab(); ++id)
        if (is_special_type(vocab.types[id]) && !vocab.tokens[id].empty()) special_tokens_.push_back(id);
    std::stable_sort(special_tokens_.begin(), special_tokens_.end(), [&](int32_t a, int32_t b) {
        return vocab.tokens[a].size() > vocab.tokens[b].size();
    });

    pieces_.resize(vocab.n_vocab());
    for (int32_t id = 0; id < vocab.n_vocab(); ++id) {
        const std::string_view text = vocab.tokens[id];
        switch (vocab.types[id]) {
            case TokenType::Normal:
                pieces_[id] = bpe_ ? bpe_token_bytes(text) : spm_token_bytes(text);
                break;
            case TokenType::Byte: {
                const int b = parse_byte_token(text);
                pieces_[id] = b >= 0 ? std::string(1, char(b)) : std::string(text);
                break;
            }
            case TokenType::Control:
            case TokenType::Unknown:
            case TokenType::UserDefined:
                pieces_[id] = std::string(text);
                break;
            case TokenType::Unused:
            case TokenType::Undefined:
                break;  // rendered as nothing, as llama.cpp does
        }
    }
}

std::vector<Tokenizer::Fragment> Tokenizer::split_special(std::string_view text, bool parse_special) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back({-1, 0, text.size()});
    // Longest special tokens claim their occurrences first; each later (shorter) one is
    // searched only in the raw text still left between them.
    std::vector<Fragment> next;
    for (int32_t id : special_tokens_) {
        const TokenType type = vocab_.types[id];
        if (!parse_special && type != TokenType::UserDefined) continue;
        const std::string_view needle = vocab_.tokens[id];
        next.clear();
        bool found = false;
        for (const Fragment& f : frags) {
            if (f.token >= 0) {
                next.push_back(f);
                continue;
            }
            const std::string_view raw = text.substr(f.off, f.len);
            size_t start = 0;
            for (size_t hit; (hit = raw.find(needle, start)) != std::string_view::npos; start = hit + needle.size()) {
                if (hit > start) next.push_back({-1, f.off + start, hit - start});
                next.push_back({id, f.off + hit, needle.size()});
                found = true;
            }
            if (start < raw.size()) next.push_back({-1, f.off + start, raw.size() - start});
        }
        if (found) frags.swap(next);
    }
    return frags;
}

void Tokenizer::encode_text(std::string_view text, bool after_special, std::vector<int32_t>& out) const {
    if (bpe_) {
        const std::vector<uint32_t> cpts = unicode::decode_utf8_lossy(text);
        std::string word;
        for (const WordSpan& w : pre_tokenize(pre_, cpts)) {
            word.clear();
            for (size_t i = w.begin; i < w.end; ++i) unicode::append_utf8(cpts[i], word);
            bpe_->encode_word(word, out);
        }
        return;
    }
    // SPM: llama.cpp prefixes a space to the text at the start and after every special
    // token (when add_space_prefix), then spells every space as U+2581.
    std::string escaped;
    escaped.reserve(text.size() * 3 + 3);
    if (vocab_.add_space_prefix && after_special) escaped += kSpmSpace;
    for (char c : text) {
        if (c == ' ') escaped += kSpmSpace;
        else escaped += c;
    }
    spm_->encode(escaped, out);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
    bool after_special = true;  // the text's start counts as following a special token
    for (const Fragment& f : split_special(text, parse_special)) {
        if (f.token >= 0) {
            out.push_back(f.token);
            after_special = true;
        } else {
            encode_text(text.substr(f.off, f.len), after_special, out);
            after_special = false;
        }
    }
    if (add_special && vocab_.add_eos) out.push_back(vocab_.eos);
    return out;
}

void Tokenizer::check_id(int32_t id) const {
    if (id < 0 || id >= vocab_.n_vocab())
        throw InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                              std::to_string(vocab_.n_vocab()) + ")");
}

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
    check_id(id);
    const TokenType t = vocab_.types[id];
    if (!special && (t == TokenType::Control || t == TokenType::Unknown)) return {};
    return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool special) const {
    for (int32_t id : ids) check_id(id);  // validate all before building anything
    std::string out;
    for (int32_t id : ids) out += token_to_piece(id, special);
    if (!ids.empty() && ids[0] == vocab_.bos && !out.empty() && out[0] == ' ') out.erase(0, 1);
    return out;
}

}  // namespace pyllong
