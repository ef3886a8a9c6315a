// SentencePiece-style BPE (tokenizer.ggml.model "llama"), llama.cpp's algorithm: start
// from the characters, repeatedly merge the adjacent pair whose concatenation is the
// highest-scoring token, and spell characters the vocabulary lacks as <0xNN> byte tokens.
// Equal to `sentencepiece` for BPE models with byte_fallback. Immutable after
// construction.
#pragma once
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace pyllong {

class SpmModel {
public:
    // Keeps a reference to `vocab`, which must outlive this model.
    explicit SpmModel(const Vocab& vocab);

    // Appends the tokens of `text` to `out`. `text` is already escaped (spaces are U+2581,
    // the space prefix added). Characters are cut by their lead byte alone, as llama.cpp
    // does, so malformed UTF-8 makes a few odd characters that reach the byte fallback
    // unchanged (the bytes always round-trip).
    //
    // A character outside the vocabulary becomes its <0xNN> byte tokens; in a vocabulary
    // without byte tokens a run of such characters becomes one unknown token, as in
    // sentencepiece (nothing if the vocabulary has no unknown token).
    void encode(std::string_view text, std::vector<int32_t>& out) const;

private:
    // Appends the tokens of an unmatched character; returns whether it was spelled as the
    // unknown token (so that the next unmatched one is folded into it).
    bool append_unknown(std::string_view chars, bool after_unknown, std::vector<int32_t>& out) const;

    const Vocab& vocab_;
    std::array<int32_t, 256> byte_token_{};  // <0xNN> ids, -1 when absent
};

}  // namespace pyllong
