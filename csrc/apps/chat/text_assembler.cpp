#include "apps/chat/text_assembler.h"

#include <algorithm>

#include "core/utf8.h"

namespace pyllong::chat {

namespace {

constexpr const char* kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// How many bytes at s[i] are a valid-so-far prefix of some UTF-8 sequence (>= 1), and
// whether the whole sequence could still complete with more bytes.
size_t valid_prefix_len(std::string_view s, size_t i, bool& could_complete) {
    const Utf8Lead lead = utf8_lead(static_cast<unsigned char>(s[i]));
    const size_t n = lead.len;
    const unsigned lo = lead.lo, hi = lead.hi;
    could_complete = false;
    if (n == 0) return 1;
    size_t k = 1;
    while (k < n && i + k < s.size()) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
        if (!ok) return k;
        ++k;
    }
    could_complete = k < n;  // ran out of input inside a valid-so-far sequence
    return k;
}

}  // namespace

std::string decode_utf8_prefix(std::string& raw, bool final) {
    std::string out;
    size_t i = 0;
    while (i < raw.size()) {
        const size_t n = utf8_sequence_length(raw, i);
        if (n > 0) {
            out.append(raw, i, n);
            i += n;
            continue;
        }
        bool could_complete = false;
        const size_t k = valid_prefix_len(raw, i, could_complete);
        if (could_complete && !final) break;  // wait for the rest of this character
        out += kReplacement;
        i += k;
    }
    raw.erase(0, i);
    return out;
}

TextAssembler::TextAssembler(std::vector<std::string> stop) {
    for (auto& s : stop)
        if (!s.empty()) stop_.push_back(std::move(s));
}

std::string TextAssembler::release(size_t n) {
    std::string out = pending_.substr(0, n);
    pending_.erase(0, n);
    text_ += out;
    return out;
}

// Bytes at the end of pending_ that are a proper prefix of a stop string. A stop string
// starts with a whole character, so the match starts on a character boundary.
size_t TextAssembler::partial_stop_len() const {
    size_t best = 0;
    for (const auto& s : stop_) {
        const size_t max_n = std::min(pending_.size(), s.size() - 1);
        for (size_t n = max_n; n > best; --n)
            if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
                best = n;
                break;
            }
    }
    return best;
}

std::string TextAssembler::feed(std::string_view bytes) {
    if (stopped_) return "";
    raw_.append(bytes);
    pending_ += decode_utf8_prefix(raw_, false);
    if (stop_.empty()) return release(pending_.size());
    size_t hit = std::string::npos;
    const std::string* which = nullptr;
    for (const auto& s : stop_) {
        const size_t at = pending_.find(s);
        if (at != std::string::npos && (hit == std::string::npos || at < hit)) hit = at, which = &s;
    }
    if (which) {
        stopped_ = *which;
        std::string out = release(hit);
        pending_.clear();
        return out;
    }
    return release(pending_.size() - partial_stop_len());
}

std::string TextAssembler::finish() {
    if (stopped_) return "";
    pending_ += decode_utf8_prefix(raw_, true);
    return release(pending_.size());
}

}  // namespace pyllong::chat
