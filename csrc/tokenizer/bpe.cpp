#include "tokenizer/bpe.h"

#include <queue>
#include <string>

#include "tokenizer/unicode.h"

namespace pyllong {

BpeModel::BpeModel(const Vocab& vocab, bool ignore_merges) : vocab_(vocab), ignore_merges_(ignore_merges) {
    for (int b = 0; b < 256; ++b) {
        std::string ch;
        unicode::append_utf8(unicode::byte_to_codepoint(uint8_t(b)), ch);
        auto it = vocab.token_to_id.find(ch);
        byte_token_[b] = it == vocab.token_to_id.end() ? -1 : it->second;
    }
    merges_.reserve(vocab.merges.size());
    std::string joined;
    for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
        const auto [a, b] = vocab.merges[rank];
        joined.assign(vocab.tokens[a]);
        joined.append(vocab.tokens[b]);
        auto it = vocab.token_to_id.find(joined);
        // A merge whose result is not a token could never be emitted; HF refuses such a
        // vocabulary, we ignore the merge. A repeated pair keeps its first (lowest) rank.
        if (it == vocab.token_to_id.end()) continue;
        merges_.emplace(pair_key(a, b), Merge{int32_t(rank), it->second});
    }
}

const BpeModel::Merge* BpeModel::find_merge(int32_t left, int32_t right) const {
    if (left < 0 || right < 0) return nullptr;
    auto it = merges_.find(pair_key(left, right));
    return it == merges_.end() ? nullptr : &it->second;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        std::string text;
        for (char c : word) unicode::append_utf8(unicode::byte_to_codepoint(uint8_t(c)), text);
        auto it = vocab_.token_to_id.find(text);
        if (it != vocab_.token_to_id.end()) {
            out.push_back(it->second);
            return;
        }
    }

    // A doubly linked list of symbols, one per byte to start with; a merge folds the
    // right symbol into the left one.
    struct Symbol {
        int32_t id;  // -1: a byte missing from the vocabulary
        int32_t prev, next;
        bool alive;
    };
    const int32_t n = int32_t(word.size());
    std::vector<Symbol> sym(n);
    for (int32_t i = 0; i < n; ++i) sym[i] = {byte_token_[uint8_t(word[i])], i - 1, i + 1 < n ? i + 1 : -1, true};

    // Candidate merges, lowest rank first, then leftmost. An entry is stale once either
    // symbol changed; it remembers both ids to tell.
    struct Candidate {
        int32_t rank, left, right, left_id, right_id, result;
        bool operator<(const Candidate& o) const {  // priority_queue pops the "largest"
            return rank != o.rank ? rank > o.rank : left > o.left;
        }
    };
    std::priority_queue<Candidate> queue;
    auto consider = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        if (const Merge* m = find_merge(sym[l].id, sym[r].id))
            queue.push({m->rank, l, r, sym[l].id, sym[r].id, m->result});
    };
    for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);

    while (!queue.empty()) {
        const Candidate c = queue.top();
        queue.pop();
        Symbol& l = sym[c.left];
        Symbol& r = sym[c.right];
        if (!l.alive || !r.alive || l.next != c.right || l.id != c.left_id || r.id != c.right_id) continue;
        l.id = c.result;
        l.next = r.next;
        r.alive = false;
        if (r.next >= 0) sym[r.next].prev = c.left;
        consider(l.prev, c.left);
        consider(c.left, l.next);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (sym[i].id >= 0) out.push_back(sym[i].id);
}

}  // namespace pyllong
