// The tokenizer of a GGUF vocabulary: text <-> token ids, behaving as llama.cpp's
// llama_tokenize / llama_token_to_piece do. Picks SPM or byte-level BPE from the vocab,
// splits special tokens out of the text first, adds BOS/EOS per the vocab's flags.
// Immutable after construction: encode/decode from many threads at once is safe.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/spm.h"
#include "tokenizer/vocab.h"

namespace pyllong {

class Tokenizer {
public:
    // Keeps a reference to `vocab` (and through it the mapped file), which must outlive
    // the tokenizer. Throws GGUFError when the vocab asks for BOS/EOS it does not define.
    explicit Tokenizer(const Vocab& vocab);

    // Token ids of `text` (any bytes; malformed UTF-8 never fails, see unicode.h).
    // add_special: prepend BOS / append EOS where the vocabulary's add_bos/add_eos say so.
    // parse_special: text spelling a control token (e.g. "<|im_start|>") becomes that
    //   token; otherwise it is tokenized as plain text. User-defined tokens are always
    //   split out, as in llama.cpp and HF.
    std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

    // The bytes a token stands for (possibly part of a UTF-8 character). Control and
    // unknown tokens give their text when `special`, else nothing; unused/undefined tokens
    // give nothing. Throws InvalidArgument for an id outside [0, n_vocab).
    std::string token_to_piece(int32_t id, bool special) const;

    // The concatenated pieces of `ids`, minus one leading space when the first token is
    // BOS (the space an SPM vocabulary prefixed), like llama-cpp-python's detokenize.
    std::string decode(const std::vector<int32_t>& ids, bool special) const;

    const Vocab& vocab() const { return vocab_; }
    int32_t n_vocab() const { return vocab_.n_vocab(); }

private:
    struct Fragment {
        int32_t token;     // >= 0: a special token; -1: raw text
        size_t off, len;   // the raw text's byte range in the input
    };
    std::vector<Fragment> split_special(std::string_view text, bool parse_special) const;
    void encode_text(std::string_view text, bool after_special, std::vector<int32_t>& out) const;
    void check_id(int32_t id) const;

    const Vocab& vocab_;
    std::vector<int32_t> special_tokens_;  // control/user-defined/unknown, longest text first
    std::vector<std::string> pieces_;      // (n_vocab,) token_to_piece(id, special=true)
    PreTokenizer pre_ = PreTokenizer::Default;
    std::unique_ptr<BpeModel> bpe_;        // exactly one of bpe_ / spm_ is set
    std::unique_ptr<SpmModel> spm_;
};

}  // namespace pyllong
