#include "tokenizer/vocab.h"

#include <cstring>

#include "core/error.h"
#include "gguf/gguf.h"

namespace pyllong {

namespace {

const char* const kPreTokenizers[] = {"default", "llama-bpe", "llama3", "smollm", "gpt-2", "phi-2"};

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// "<0xNN>" -> NN, or -1 when malformed.
int parse_byte_token(std::string_view t) {
    if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
    const int hi = hexval(t[3]), lo = hexval(t[4]);
    return (hi < 0 || lo < 0) ? -1 : hi * 16 + lo;
}

}  // namespace

bool is_known_pre_tokenizer(const std::string& pre) {
    for (const char* p : kPreTokenizers)
        if (pre == p) return true;
    return false;
}

std::string known_pre_tokenizers() {
    std::string s;
    for (const char* p : kPreTokenizers) s += (s.empty() ? "" : ", ") + std::string(p);
    return s;
}

Vocab read_vocab(const GGUFFile& f) {
    Vocab v;
    auto fail = [&](const char* key, const std::string& msg) -> void {
        const GGUFKV* kv = f.find(key);
        throw GGUFError(f.where(std::string("metadata key '") + key + "'", kv ? kv->offset : 0) + ": " + msg);
    };

    auto model = f.get_string("tokenizer.ggml.model");
    if (!model) throw GGUFError(f.path() + ": required metadata key 'tokenizer.ggml.model' is missing");
    v.model = std::string(*model);
    if (v.model == "llama") v.type = VocabType::SPM;
    else if (v.model == "gpt2") v.type = VocabType::BPE;
    else fail("tokenizer.ggml.model", "tokenizer model '" + v.model + "' is not supported (supported: llama, gpt2)");

    v.pre = "default";
    if (auto pre = f.get_string("tokenizer.ggml.pre")) v.pre = std::string(*pre);
    if (v.type == VocabType::BPE && !is_known_pre_tokenizer(v.pre))
        fail("tokenizer.ggml.pre", "pre-tokenizer '" + v.pre + "' is not supported (supported: " +
                                       known_pre_tokenizers() + ")");

    const GGUFValue* toks = f.get_array("tokenizer.ggml.tokens", ValueType::STRING);
    if (!toks) throw GGUFError(f.path() + ": required metadata key 'tokenizer.ggml.tokens' is missing");
    const size_t n = toks->strings.size();
    if (n == 0 || n > (size_t(1) << 22)) fail("tokenizer.ggml.tokens", "token count " + std::to_string(n) + " is out of range");
    v.tokens = toks->strings;
    v.token_to_id.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        if (v.tokens[i].size() > kMaxTokenBytes)
            fail("tokenizer.ggml.tokens", "token " + std::to_string(i) + " is " + std::to_string(v.tokens[i].size()) +
                                              " bytes, over the cap of " + std::to_string(kMaxTokenBytes));
        if (!v.token_to_id.emplace(v.tokens[i], static_cast<int32_t>(i)).second)
            fail("tokenizer.ggml.tokens", "token " + std::to_string(i) + " duplicates token " +
                                              std::to_string(v.token_to_id[v.tokens[i]]));
    }

    // Check element type and count before reading the raw arrays (item 11).
    v.scores.assign(n, 0.0f);
    if (const GGUFValue* s = f.get_array("tokenizer.ggml.scores", ValueType::F32)) {
        if (s->count != n)
            fail("tokenizer.ggml.scores", "has " + std::to_string(s->count) + " entries for " + std::to_string(n) + " tokens");
        std::memcpy(v.scores.data(), s->data, n * sizeof(float));
    } else if (v.type == VocabType::SPM) {
        throw GGUFError(f.path() + ": required metadata key 'tokenizer.ggml.scores' is missing (SPM vocabulary)");
    }
    v.types.assign(n, TokenType::Normal);
    if (const GGUFValue* t = f.get_array("tokenizer.ggml.token_type", ValueType::I32)) {
        if (t->count != n)
            fail("tokenizer.ggml.token_type", "has " + std::to_string(t->count) + " entries for " + std::to_string(n) + " tokens");
        for (size_t i = 0; i < n; ++i) {
            int32_t x;
            std::memcpy(&x, t->data + 4 * i, 4);
            if (x < 0 || x > 6)
                fail("tokenizer.ggml.token_type", "token " + std::to_string(i) + " has type " + std::to_string(x) + " (valid: 0..6)");
            v.types[i] = static_cast<TokenType>(x);
        }
    }

    // SPM byte fallback needs all 256 "<0xNN>" tokens. (Byte-level BPE vocabularies may
    // lack bytes that never occur in UTF-8 text, e.g. 0xC0; the tokenizer handles those.)
    if (v.type == VocabType::SPM) {
        int n_byte = 0;
        bool seen[256] = {};
        for (size_t i = 0; i < n; ++i) {
            if (v.types[i] != TokenType::Byte) continue;
            const int b = parse_byte_token(v.tokens[i]);
            if (b < 0)
                fail("tokenizer.ggml.tokens", "byte token " + std::to_string(i) + " is not of the form <0xNN>");
            if (!seen[b]) ++n_byte;
            seen[b] = true;
        }
        if (n_byte != 0 && n_byte != 256)
            fail("tokenizer.ggml.tokens", "byte-fallback vocabulary has " + std::to_string(n_byte) +
                                              " of the 256 <0xNN> byte tokens");
    }

    if (const GGUFValue* m = f.get_array("tokenizer.ggml.merges", ValueType::STRING)) {
        v.merges.reserve(m->strings.size());
        for (size_t i = 0; i < m->strings.size(); ++i) {
            std::string_view line = m->strings[i];
            const size_t sp = line.find(' ', 1);
            if (sp == std::string_view::npos || sp + 1 >= line.size() || line.find(' ', sp + 1) != std::string_view::npos)
                fail("tokenizer.ggml.merges", "merge " + std::to_string(i) + " is not of the form 'A B'");
            auto a = v.token_to_id.find(line.substr(0, sp)), b = v.token_to_id.find(line.substr(sp + 1));
            if (a == v.token_to_id.end() || b == v.token_to_id.end())
                fail("tokenizer.ggml.merges", "merge " + std::to_string(i) + " references a token not in the vocabulary");
            v.merges.emplace_back(a->second, b->second);
        }
    } else if (v.type == VocabType::BPE) {
        throw GGUFError(f.path() + ": required metadata key 'tokenizer.ggml.merges' is missing (BPE vocabulary)");
    }

    struct Special { const char* key; int32_t* id; };
    const Special specials[] = {
        {"tokenizer.ggml.bos_token_id", &v.bos}, {"tokenizer.ggml.eos_token_id", &v.eos},
        {"tokenizer.ggml.eot_token_id", &v.eot}, {"tokenizer.ggml.unknown_token_id", &v.unk},
        {"tokenizer.ggml.padding_token_id", &v.pad}, {"tokenizer.ggml.seperator_token_id", &v.sep},
    };
    for (const auto& s : specials) {
        const GGUFKV* kv = f.find(s.key);
        if (!kv) continue;
        auto id = f.get_int(s.key);
        if (*id < 0 || *id >= static_cast<int64_t>(n))
            fail(s.key, "token id " + std::to_string(*id) + " is outside the vocabulary [0, " + std::to_string(n) + ")");
        *s.id = static_cast<int32_t>(*id);
    }
    // llama.cpp's defaults when the key is absent: SPM and LLaMA-3 BPE add BOS.
    const bool llama3_pre = v.type == VocabType::BPE && (v.pre == "llama-bpe" || v.pre == "llama3");
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(v.type == VocabType::SPM || llama3_pre);
    v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    v.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix").value_or(v.type == VocabType::SPM);

    if (auto tmpl = f.get_string("tokenizer.chat_template")) {
        if (tmpl->size() > kMaxChatTemplateBytes)
            fail("tokenizer.chat_template", "template of " + std::to_string(tmpl->size()) + " bytes exceeds the cap of " +
                                                std::to_string(kMaxChatTemplateBytes));
        v.chat_template = *tmpl;
    }
    return v;
}

}  // namespace pyllong
