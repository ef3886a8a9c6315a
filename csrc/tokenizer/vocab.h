// The vocabulary stored in a GGUF file, validated (hardening item 13). Tokenizers
// (SPM, BPE) are built on top of this; it holds views into the mapped file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pyllong {

class GGUFFile;

enum class VocabType { SPM, BPE };  // tokenizer.ggml.model: "llama" | "gpt2"

// llama.cpp's token types (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
    Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

constexpr size_t kMaxTokenBytes = 64 * 1024;
constexpr size_t kMaxChatTemplateBytes = 256 * 1024;

struct Vocab {
    VocabType type = VocabType::SPM;
    std::string model;  // "llama" | "gpt2"
    std::string pre;    // pre-tokenizer name (BPE), "default" otherwise
    std::vector<std::string_view> tokens;  // (n_vocab,) views into the file
    std::vector<float> scores;             // (n_vocab,) 0 when absent
    std::vector<TokenType> types;          // (n_vocab,) Normal when absent
    std::unordered_map<std::string_view, int32_t> token_to_id;
    std::vector<std::pair<int32_t, int32_t>> merges;  // (n_merges,) rank = index
    int32_t bos = -1, eos = -1, eot = -1, unk = -1, pad = -1, sep = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
    std::string_view chat_template;  // empty when absent

    int32_t n_vocab() const { return static_cast<int32_t>(tokens.size()); }
};

// Pre-tokenizers pyllong implements for BPE vocabularies.
bool is_known_pre_tokenizer(const std::string& pre);
std::string known_pre_tokenizers();

Vocab read_vocab(const GGUFFile& f);

}  // namespace pyllong
