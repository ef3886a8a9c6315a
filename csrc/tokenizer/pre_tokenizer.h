// Pre-tokenizers of byte-level BPE vocabularies: split text into the "words" that BPE
// merges never cross. Each supported `tokenizer.ggml.pre` value is a chain of splitting
// steps equal to the regexes llama.cpp and the HF tokenizer.json of that model use; the
// regexes are implemented as hand-written matchers over code points (no regex engine).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pyllong {

enum class PreTokenizer {
    Gpt2,     // "gpt-2", "phi-2": the GPT-2 regex
    Llama3,   // "llama-bpe", "llama3": the LLaMA-3 regex (digits in groups of three)
    SmolLM,   // "smollm": every \p{N} alone, then the GPT-2 regex
    Default,  // "default": llama.cpp's fallback chain (punctuation runs, GPT-2, numbers, 3 digits)
};

// Throws InvalidArgument for a name outside the supported set.
PreTokenizer pre_tokenizer_from_name(const std::string& name);

// Whether whole words found in the vocabulary skip the merges (LLaMA-3 does, as in HF's
// `ignore_merges` and llama.cpp).
bool pre_tokenizer_ignores_merges(PreTokenizer p);

// Half-open range [begin, end) of code point indices.
struct WordSpan {
    size_t begin, end;
};

// Splits `cpts` into consecutive non-empty words covering all of it.
std::vector<WordSpan> pre_tokenize(PreTokenizer p, const std::vector<uint32_t>& cpts);

}  // namespace pyllong
