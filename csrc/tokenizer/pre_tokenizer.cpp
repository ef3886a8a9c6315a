#include "tokenizer/pre_tokenizer.h"

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace pyllong {

namespace {

using unicode::is_letter;
using unicode::is_number;
using unicode::is_whitespace;

// A char the regex class [^\s\p{L}\p{N}] accepts.
bool is_other(uint32_t c) { return !is_whitespace(c) && !is_letter(c) && !is_number(c); }
bool is_newline(uint32_t c) { return c == '\r' || c == '\n'; }
uint32_t ascii_lower(uint32_t c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Length of the English contraction ('s 't 're 've 'm 'll 'd) at `pos`, or 0.
size_t contraction_length(const std::vector<uint32_t>& t, size_t pos, size_t end, bool ignore_case) {
    if (t[pos] != '\'' || pos + 1 >= end) return 0;
    const auto fold = [&](size_t i) { return ignore_case ? ascii_lower(t[i]) : t[i]; };
    const uint32_t a = fold(pos + 1);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (pos + 2 >= end) return 0;
    const uint32_t b = fold(pos + 2);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

// Length of the run of whitespace at `pos` that the trailing alternatives
// `\s+(?!\S)|\s+` take: a run followed by a non-space gives its last char back, so that
// the char can prefix the next word (" word").
size_t whitespace_run_length(const std::vector<uint32_t>& t, size_t pos, size_t end) {
    size_t n = 0;
    while (pos + n < end && is_whitespace(t[pos + n])) ++n;
    if (n > 1 && pos + n < end) return n - 1;
    return n;
}

template <typename Pred>
size_t run_length(const std::vector<uint32_t>& t, size_t pos, size_t end, Pred pred) {
    size_t n = 0;
    while (pos + n < end && pred(t[pos + n])) ++n;
    return n;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out) {
    for (size_t pos = in.begin; pos < in.end;) {
        size_t len = contraction_length(t, pos, in.end, /*ignore_case=*/false);
        if (len == 0) {
            // An optional leading space joins the class run of the char after it.
            const size_t lead = (t[pos] == ' ' && pos + 1 < in.end) ? 1 : 0;
            const uint32_t c = t[pos + lead];
            if (is_letter(c)) len = lead + run_length(t, pos + lead, in.end, is_letter);
            else if (is_number(c)) len = lead + run_length(t, pos + lead, in.end, is_number);
            else if (is_other(c)) len = lead + run_length(t, pos + lead, in.end, is_other);
            else len = whitespace_run_length(t, pos, in.end);
        }
        out.push_back({pos, pos + len});
        pos += len;
    }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out) {
    for (size_t pos = in.begin; pos < in.end;) {
        const uint32_t c = t[pos];
        size_t len = contraction_length(t, pos, in.end, /*ignore_case=*/true);
        if (len == 0 && !is_newline(c) && !is_number(c)) {
            // One optional char that is neither letter nor number, then letters.
            const size_t lead = is_letter(c) ? 0 : 1;
            if (pos + lead < in.end && is_letter(t[pos + lead]))
                len = lead + run_length(t, pos + lead, in.end, is_letter);
        }
        if (len == 0 && is_number(c)) len = std::min<size_t>(3, run_length(t, pos, in.end, is_number));
        if (len == 0) {
            const size_t lead = (c == ' ' && pos + 1 < in.end) ? 1 : 0;
            if (is_other(t[pos + lead])) {
                len = lead + run_length(t, pos + lead, in.end, is_other);
                len += run_length(t, pos + len, in.end, is_newline);
            }
        }
        if (len == 0) {
            // \s*[\r\n]+ : the whitespace run up to its last newline, if it has one.
            const size_t ws = run_length(t, pos, in.end, is_whitespace);
            for (size_t i = ws; i > 0; --i)
                if (is_newline(t[pos + i - 1])) {
                    len = i;
                    break;
                }
            if (len == 0) len = whitespace_run_length(t, pos, in.end);
        }
        if (len == 0) len = 1;  // unreachable: every char is letter, number, other or space
        out.push_back({pos, pos + len});
        pos += len;
    }
}

// Regex-iterator semantics for a pattern that matches runs of chars of one class: every
// match becomes a word and so does every gap between matches. `chunk` = 0 takes whole
// runs (X+); chunk = k takes exactly k chars per match (X{k}), leaving a shorter tail of
// a run in the gap.
template <typename Pred>
void isolate_runs(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out, Pred pred,
                  size_t chunk) {
    size_t gap = in.begin;
    auto flush_gap = [&](size_t to) {
        if (to > gap) out.push_back({gap, to});
    };
    for (size_t pos = in.begin; pos < in.end;) {
        const size_t run = run_length(t, pos, in.end, pred);
        if (run == 0) {
            ++pos;
            continue;
        }
        const size_t take = chunk == 0 ? run : run - run % chunk;
        if (take > 0) {
            flush_gap(pos);
            for (size_t i = 0; i < take; i += (chunk == 0 ? take : chunk))
                out.push_back({pos + i, pos + i + (chunk == 0 ? take : chunk)});
            gap = pos + take;
        }
        pos += run;
    }
    flush_gap(in.end);
}

using Step = void (*)(const std::vector<uint32_t>&, WordSpan, std::vector<WordSpan>&);

void isolate_each_number(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out) {
    isolate_runs(t, in, out, is_number, 1);  // \p{N}
}
void isolate_number_runs(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out) {
    isolate_runs(t, in, out, is_number, 0);  // \p{N}+
}
void isolate_ascii_digit_triples(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out) {
    isolate_runs(t, in, out, [](uint32_t c) { return c >= '0' && c <= '9'; }, 3);  // [0-9][0-9][0-9]
}
void isolate_punctuation_runs(const std::vector<uint32_t>& t, WordSpan in, std::vector<WordSpan>& out) {
    // [\p{P}\$\+<=>\^~\|]+
    const auto pred = [](uint32_t c) {
        return unicode::is_punctuation(c) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
               c == '^' || c == '~' || c == '|';
    };
    isolate_runs(t, in, out, pred, 0);
}

std::vector<Step> steps_of(PreTokenizer p) {
    switch (p) {
        case PreTokenizer::Gpt2: return {split_gpt2};
        case PreTokenizer::Llama3: return {split_llama3};
        case PreTokenizer::SmolLM: return {isolate_each_number, split_gpt2};
        case PreTokenizer::Default:
            return {isolate_punctuation_runs, split_gpt2, isolate_number_runs, isolate_ascii_digit_triples};
    }
    return {};
}

}  // namespace

PreTokenizer pre_tokenizer_from_name(const std::string& name) {
    if (name == "gpt-2" || name == "phi-2") return PreTokenizer::Gpt2;
    if (name == "llama-bpe" || name == "llama3") return PreTokenizer::Llama3;
    if (name == "smollm") return PreTokenizer::SmolLM;
    if (name == "default") return PreTokenizer::Default;
    throw InvalidArgument("pre-tokenizer '" + name + "' is not supported");
}

bool pre_tokenizer_ignores_merges(PreTokenizer p) { return p == PreTokenizer::Llama3; }

std::vector<WordSpan> pre_tokenize(PreTokenizer p, const std::vector<uint32_t>& cpts) {
    std::vector<WordSpan> words;
    if (cpts.empty()) return words;
    words.push_back({0, cpts.size()});
    std::vector<WordSpan> next;
    for (Step step : steps_of(p)) {
        next.clear();
        next.reserve(words.size() * 2);
        for (const WordSpan& w : words) step(cpts, w, next);
        words.swap(next);
    }
    return words;
}

}  // namespace pyllong
