#include "apps/chat/eviction.h"

#include <algorithm>
#include <string>

#include "core/error.h"

namespace pyllong::chat {

std::pair<int64_t, int64_t> check_eviction(int64_t n_keep, int64_t n_discard, int64_t n_cached, int64_t n_pinned) {
    if (!(0 <= n_pinned && n_pinned <= n_keep && n_discard >= 1 && n_keep + n_discard <= n_cached))
        throw Error("internal error: eviction of [" + std::to_string(n_keep) + ", " + std::to_string(n_keep + n_discard) +
                    ") from " + std::to_string(n_cached) + " cached tokens with " + std::to_string(n_pinned) +
                    " pinned is out of range; please report it");
    return {n_keep, n_discard};
}

std::optional<std::pair<int64_t, int64_t>> plan_eviction(const std::vector<int32_t>& cached,
                                                         const std::vector<int32_t>& next, int64_t n_pinned) {
    const auto nc = static_cast<int64_t>(cached.size()), nn = static_cast<int64_t>(next.size());
    int64_t k = 0;
    while (k < std::min(nc, nn) && cached[k] == next[k]) ++k;
    if (k < n_pinned || k == nc) return std::nullopt;
    for (int64_t d = 1; d <= nc - k; ++d) {
        const int64_t rest = nc - d;  // tokens left in the cache
        if (rest >= nn) continue;     // the last prompt token must be evaluated for its logits
        if (std::equal(cached.begin() + k + d, cached.end(), next.begin() + k))
            return check_eviction(k, d, nc, n_pinned);
    }
    return std::nullopt;
}

}  // namespace pyllong::chat
