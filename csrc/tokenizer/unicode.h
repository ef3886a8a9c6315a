// UTF-8 and Unicode-class helpers for the tokenizers. Pure functions, no state.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pyllong::unicode {

constexpr uint32_t kReplacementChar = 0xFFFD;

// Length of the well-formed UTF-8 sequence starting at text[pos], or 0 if the bytes there
// are not one (stray continuation byte, truncated sequence, overlong form, surrogate,
// code point above U+10FFFF). `*cpt` receives the code point when the result is > 0.
size_t decode_one(std::string_view text, size_t pos, uint32_t* cpt);

// Length of a UTF-8 sequence as its lead byte announces it (1 for a continuation byte,
// 4 for 0xF8..0xFF), without checking what follows.
inline size_t sequence_length(uint8_t lead) {
    return lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Code points of `text`. Each byte that does not start a well-formed sequence becomes
// U+FFFD on its own, as llama.cpp does, so arbitrary bytes never fail.
std::vector<uint32_t> decode_utf8_lossy(std::string_view text);

void append_utf8(uint32_t cpt, std::string& out);

// Regex classes of the BPE pre-tokenizers (tables generated from Unicode data).
bool is_letter(uint32_t cpt);       // \p{L}
bool is_number(uint32_t cpt);       // \p{N}
bool is_punctuation(uint32_t cpt);  // \p{P}
bool is_whitespace(uint32_t cpt);   // \s (White_Space)

// GPT-2's byte-level alphabet: every byte is shown as one printable code point, so that a
// vocabulary of strings can hold arbitrary bytes (printable Latin-1 bytes map to
// themselves, the other 68 to U+0100..U+0143 in byte order).
uint32_t byte_to_codepoint(uint8_t byte);
// Inverse of byte_to_codepoint; -1 for a code point outside the alphabet.
int codepoint_to_byte(uint32_t cpt);

}  // namespace pyllong::unicode
