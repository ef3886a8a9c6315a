// SelfExtend (Jin et al. 2024) as a policy of the one attention loop: for a query at
// position i and a key at j, neighbours (i - j < W) use their true positions, all other
// pairs use grouped positions, query at i//G + W - W//G and key at j//G, so no pair sees a
// relative distance beyond the reach. See ../shared/spec/self-extend.md.
//
// Keys are written once, twice rotated: at j (neighbour use) and at j//G (grouped use);
// the query is rotated at i and at its grouped position. Each pair then costs one dot
// product, and the cache grows with N (1.5x plain K+V), not with G*N.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace pyllong {

struct SelfExtend {
    int64_t group = 1;   // G
    int64_t window = 0;  // W; 0 = SelfExtend off

    bool enabled() const { return window > 0; }
    int32_t key_pos(int32_t j) const { return static_cast<int32_t>(j / group); }
    int32_t query_pos(int32_t i) const { return static_cast<int32_t>(i / group + window - window / group); }
    bool grouped(int32_t i, int32_t j) const { return enabled() && i - j >= window; }
    // Largest N whose effective distances stay below n_ctx_train: (L - W) * G + W.
    int64_t reach(int64_t n_ctx_train) const { return (n_ctx_train - window) * group + window; }
};

inline SelfExtend make_self_extend(int64_t group, int64_t window) {
    if (group < 1) throw InvalidArgument("self_extend: group size G must be >= 1, got " + std::to_string(group));
    if (window < 1) throw InvalidArgument("self_extend: window W must be >= 1, got " + std::to_string(window));
    if (window % group != 0)
        throw InvalidArgument("self_extend: window W (" + std::to_string(window) +
                              ") must be a multiple of the group size G (" + std::to_string(group) + ")");
    return SelfExtend{group, window};
}

}  // namespace pyllong
