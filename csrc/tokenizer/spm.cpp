#include "tokenizer/spm.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "tokenizer/unicode.h"

namespace pyllong {

SpmModel::SpmModel(const Vocab& vocab) : vocab_(vocab) {
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        auto it = vocab.token_to_id.find(std::string_view(name, 6));
        byte_token_[b] = (it != vocab.token_to_id.end() && vocab.types[it->second] == TokenType::Byte) ? it->second : -1;
    }
}

bool SpmModel::append_unknown(std::string_view chars, bool after_unknown, std::vector<int32_t>& out) const {
    if (byte_token_[uint8_t(chars[0])] >= 0) {
        for (char c : chars) out.push_back(byte_token_[uint8_t(c)]);  // all 256 exist (Vocab checks)
        return false;
    }
    if (vocab_.unk >= 0 && !after_unknown) out.push_back(vocab_.unk);
    return true;
}

void SpmModel::encode(std::string_view text, std::vector<int32_t>& out) const {
    if (text.empty()) return;

    // Symbols are contiguous byte ranges of `text`; a merge grows the left one over the
    // right one, so a symbol's text is always text.substr(off, len).
    struct Symbol {
        size_t off, len;  // len == 0: merged away
        int32_t prev, next;
    };
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        const size_t len = std::min(unicode::sequence_length(uint8_t(text[pos])), text.size() - pos);
        const int32_t i = int32_t(sym.size());
        sym.push_back({pos, len, i - 1, -1});
        if (i > 0) sym[i - 1].next = i;
        pos += len;
    }

    // Highest score first, then leftmost. A candidate is stale when either side changed,
    // which its recorded byte size detects (sizes only grow).
    struct Candidate {
        float score;
        int32_t left, right;
        size_t size;
        bool operator<(const Candidate& o) const {
            return score != o.score ? score < o.score : left > o.left;
        }
    };
    std::priority_queue<Candidate> queue;
    auto consider = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const size_t size = sym[l].len + sym[r].len;
        auto it = vocab_.token_to_id.find(text.substr(sym[l].off, size));
        if (it == vocab_.token_to_id.end()) return;
        queue.push({vocab_.scores[it->second], l, r, size});
    };
    for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) consider(i, i + 1);

    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol& l = sym[c.left];
        Symbol& r = sym[c.right];
        if (l.len == 0 || r.len == 0 || l.next != c.right || l.len + r.len != c.size) continue;
        l.len += r.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = c.left;
        consider(l.prev, c.left);
        consider(c.left, l.next);
    }

    bool after_unknown = false;
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const std::string_view piece = text.substr(sym[i].off, sym[i].len);
        auto it = vocab_.token_to_id.find(piece);
        if (it != vocab_.token_to_id.end()) {
            out.push_back(it->second);
            after_unknown = false;
        } else {
            after_unknown = append_unknown(piece, after_unknown, out);  // only single chars are left unmatched
        }
    }
}

}  // namespace pyllong
