#include "tokenizer/unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "tokenizer/unicode_tables.h"

namespace pyllong::unicode {

namespace {

using unicode_tables::CodepointRange;

template <size_t N>
bool in_table(const CodepointRange (&table)[N], uint32_t cpt) {
    const CodepointRange* end = table + N;
    const CodepointRange* it = std::upper_bound(table, end, cpt,
        [](uint32_t c, const CodepointRange& r) { return c < r.first; });
    return it != table && cpt <= std::prev(it)->last;
}

bool is_printable_latin1(int b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

// The alphabet spans U+0000..U+0143: 188 printable bytes as themselves, 68 others after 0xFF.
constexpr uint32_t kAlphabetEnd = 256 + 68;

struct ByteAlphabet {
    std::array<uint32_t, 256> to_cpt{};
    std::array<int16_t, kAlphabetEnd> to_byte{};  // -1 where no byte maps
    ByteAlphabet() {
        to_byte.fill(-1);
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            to_cpt[b] = is_printable_latin1(b) ? uint32_t(b) : next++;
            to_byte[to_cpt[b]] = int16_t(b);
        }
    }
};

// Immutable after construction (C++11 guarantees thread-safe initialization).
const ByteAlphabet& byte_alphabet() {
    static const ByteAlphabet alphabet;
    return alphabet;
}

}  // namespace

size_t decode_one(std::string_view s, size_t pos, uint32_t* cpt) {
    const size_t n = s.size() - pos;
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(s[pos + i]); };
    const auto cont = [&](size_t i) { return i < n && (byte(i) & 0xC0) == 0x80; };
    const uint8_t b0 = byte(0);
    if (b0 < 0x80) {
        *cpt = b0;
        return 1;
    }
    if (b0 >= 0xC2 && b0 <= 0xDF && cont(1)) {
        *cpt = (uint32_t(b0 & 0x1F) << 6) | (byte(1) & 0x3F);
        return 2;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF && cont(1) && cont(2)) {
        const uint32_t c = (uint32_t(b0 & 0x0F) << 12) | (uint32_t(byte(1) & 0x3F) << 6) | (byte(2) & 0x3F);
        if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return 0;  // overlong or surrogate
        *cpt = c;
        return 3;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4 && cont(1) && cont(2) && cont(3)) {
        const uint32_t c = (uint32_t(b0 & 0x07) << 18) | (uint32_t(byte(1) & 0x3F) << 12) |
                           (uint32_t(byte(2) & 0x3F) << 6) | (byte(3) & 0x3F);
        if (c < 0x10000 || c > 0x10FFFF) return 0;
        *cpt = c;
        return 4;
    }
    return 0;
}

std::vector<uint32_t> decode_utf8_lossy(std::string_view text) {
    std::vector<uint32_t> out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        uint32_t c;
        const size_t len = decode_one(text, pos, &c);
        out.push_back(len ? c : kReplacementChar);
        pos += len ? len : 1;
    }
    return out;
}

void append_utf8(uint32_t c, std::string& out) {
    if (c < 0x80) {
        out += char(c);
    } else if (c < 0x800) {
        out += char(0xC0 | (c >> 6));
        out += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += char(0xE0 | (c >> 12));
        out += char(0x80 | ((c >> 6) & 0x3F));
        out += char(0x80 | (c & 0x3F));
    } else {
        out += char(0xF0 | (c >> 18));
        out += char(0x80 | ((c >> 12) & 0x3F));
        out += char(0x80 | ((c >> 6) & 0x3F));
        out += char(0x80 | (c & 0x3F));
    }
}

bool is_letter(uint32_t c) {
    if (c < 0x80) return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
    return in_table(unicode_tables::kLetter, c);
}

bool is_number(uint32_t c) {
    if (c < 0x80) return c >= '0' && c <= '9';
    return in_table(unicode_tables::kNumber, c);
}

bool is_punctuation(uint32_t c) { return in_table(unicode_tables::kPunctuation, c); }

bool is_whitespace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D);
    return in_table(unicode_tables::kWhitespace, c);
}

uint32_t byte_to_codepoint(uint8_t byte) { return byte_alphabet().to_cpt[byte]; }

int codepoint_to_byte(uint32_t cpt) { return cpt < kAlphabetEnd ? byte_alphabet().to_byte[cpt] : -1; }

}  // namespace pyllong::unicode
