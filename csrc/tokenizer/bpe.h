// Byte-level BPE (tokenizer.ggml.model "gpt2"): GPT-2 byte alphabet, merges applied by
// rank. Encodes one pre-tokenized word at a time; immutable after construction, so one
// instance serves many threads.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/vocab.h"

namespace pyllong {

class BpeModel {
public:
    // Keeps a reference to `vocab`, which must outlive this model.
    BpeModel(const Vocab& vocab, bool ignore_merges);

    // Appends the tokens of `word` (raw UTF-8 bytes of one pre-tokenized word) to `out`.
    //
    // A byte whose alphabet char is not in the vocabulary (real vocabularies lack e.g.
    // 0xC0 and 0xC1, which never occur in UTF-8) cannot start a merge and is dropped from
    // the output, as llama.cpp and HF `tokenizers` (BPE without unk_token) both do.
    void encode_word(std::string_view word, std::vector<int32_t>& out) const;

    // The token of one byte's alphabet char, -1 if the vocabulary lacks it.
    int32_t byte_token(uint8_t b) const { return byte_token_[b]; }

private:
    struct Merge {
        int32_t rank;    // index in tokenizer.ggml.merges: lower merges first
        int32_t result;  // token id of the concatenation
    };
    static uint64_t pair_key(int32_t left, int32_t right) {
        return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
    }
    const Merge* find_merge(int32_t left, int32_t right) const;

    const Vocab& vocab_;
    bool ignore_merges_;
    std::array<int32_t, 256> byte_token_{};
    std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
};

}  // namespace pyllong
