// Generated token bytes -> text safe to show, the C++ twin of pyllong/textstream.py's
// TextAssembler: never releases half a UTF-8 character (a token may end inside one) nor the
// start of a stop string that may still complete. Invalid bytes become U+FFFD, one per
// maximal invalid subpart, as Python's "replace" decoder does.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pyllong::chat {

class TextAssembler {
public:
    explicit TextAssembler(std::vector<std::string> stop = {});

    // Add a token's bytes; return the text that is now final (possibly empty).
    std::string feed(std::string_view bytes);
    // The end: release what was held back (an incomplete UTF-8 tail becomes U+FFFD).
    std::string finish();

    const std::string& text() const { return text_; }               // all released text
    const std::optional<std::string>& stopped() const { return stopped_; }  // the stop string hit

private:
    std::string release(size_t n);
    size_t partial_stop_len() const;

    std::vector<std::string> stop_;
    std::string raw_;       // bytes not decoded yet (an incomplete UTF-8 sequence)
    std::string pending_;   // decoded text not released yet
    std::string text_;
    std::optional<std::string> stopped_;
};

// Decode the complete part of `raw` (valid UTF-8 out, U+FFFD for invalid bytes) and remove it;
// what stays in `raw` is a proper prefix of a valid sequence. `final`: decode everything.
std::string decode_utf8_prefix(std::string& raw, bool final);

}  // namespace pyllong::chat
