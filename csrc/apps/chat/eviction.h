// Turn-boundary eviction by context shift, the C++ twin of pyllong/session.py's
// plan_eviction / check_eviction (mirror changes in both).
#pragma once
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace pyllong::chat {

// (n_keep, n_discard) such that cutting cached[n_keep, n_keep + n_discard) out leaves a prefix
// of `next` that keeps the first n_pinned tokens and leaves next's last token to evaluate;
// nullopt when no cut does (the prompt is then rebuilt).
std::optional<std::pair<int64_t, int64_t>> plan_eviction(const std::vector<int32_t>& cached,
                                                         const std::vector<int32_t>& next, int64_t n_pinned);

// Throws (an internal error) unless 0 <= n_pinned <= n_keep, n_discard >= 1 and
// n_keep + n_discard <= n_cached: llama.cpp once wrote out of bounds from a negative count.
std::pair<int64_t, int64_t> check_eviction(int64_t n_keep, int64_t n_discard, int64_t n_cached, int64_t n_pinned);

}  // namespace pyllong::chat
