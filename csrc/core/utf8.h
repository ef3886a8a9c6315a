// UTF-8 validation (strict: no overlongs, no surrogates, max U+10FFFF).
#pragma once
#include <cstddef>
#include <string_view>

namespace pyllong {

// What a lead byte announces: the sequence length (1 for ASCII, 0 if the byte cannot
// start a sequence) and the allowed range of the second byte (which excludes overlongs,
// surrogates and code points above U+10FFFF).
struct Utf8Lead {
    size_t len;
    unsigned lo, hi;
};

inline Utf8Lead utf8_lead(unsigned char c) {
    if (c < 0x80) return {1, 0x80, 0xbf};
    if (c >= 0xc2 && c <= 0xdf) return {2, 0x80, 0xbf};
    if (c == 0xe0) return {3, 0xa0, 0xbf};
    if (c == 0xed) return {3, 0x80, 0x9f};
    if (c >= 0xe1 && c <= 0xef) return {3, 0x80, 0xbf};
    if (c == 0xf0) return {4, 0x90, 0xbf};
    if (c >= 0xf1 && c <= 0xf3) return {4, 0x80, 0xbf};
    if (c == 0xf4) return {4, 0x80, 0x8f};
    return {0, 0, 0};
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is invalid.
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const Utf8Lead lead = utf8_lead(b(i));
    const size_t n = lead.len;
    if (n <= 1) return n;
    if (i + n > s.size()) return 0;
    if (b(i + 1) < lead.lo || b(i + 1) > lead.hi) return 0;
    for (size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
    return n;
}

inline bool is_valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

}  // namespace pyllong
