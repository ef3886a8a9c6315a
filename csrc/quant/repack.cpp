#include "quant/repack.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "core/error.h"
#include "quant/formats.h"

namespace pyllong::quant {

namespace {

// Word-interleave nbytes quant bytes (a multiple of 4) of kPackRows rows: row r's word q
// -> dst[32 q + 4 r]. Missing rows (rows[r] == nullptr) are zero.
void interleave_words(const uint8_t* const* rows, size_t offset, size_t nbytes, uint8_t* dst) {
    for (size_t q = 0; q < nbytes / 4; ++q)
        for (int r = 0; r < kPackRows; ++r) {
            uint8_t* o = dst + 32 * q + 4 * r;
            if (rows[r]) std::memcpy(o, rows[r] + offset + 4 * q, 4);
            else std::memset(o, 0, 4);
        }
}

// The 32-element formats (Q4_0, Q4_1, Q8_0): each row's fp16 scale (and min, Q4_1) side by
// side, the quant bytes word-interleaved. The K-quants are specialized below.
template <class Src, class Dst>
void pack_block(const uint8_t* const* rows, int64_t i, Dst& out) {
    const uint8_t* b[kPackRows];
    for (int r = 0; r < kPackRows; ++r) {
        b[r] = rows[r] ? rows[r] + i * sizeof(Src) : nullptr;
        const auto* blk = reinterpret_cast<const Src*>(b[r]);
        out.d[r] = blk ? blk->d : 0;
        if constexpr (std::is_same_v<Dst, BlockQ4_1x8>) out.m[r] = blk ? blk->m : 0;
    }
    interleave_words(b, offsetof(Src, qs), sizeof(out.qs) / kPackRows, reinterpret_cast<uint8_t*>(out.qs));
}

template <>
void pack_block<BlockQ4_K, BlockQ4_Kx8>(const uint8_t* const* rows, int64_t i, BlockQ4_Kx8& out) {
    const uint8_t* b[kPackRows];
    std::memset(&out, 0, offsetof(BlockQ4_Kx8, qs));
    for (int r = 0; r < kPackRows; ++r) {
        b[r] = rows[r] ? rows[r] + i * sizeof(BlockQ4_K) : nullptr;
        if (!b[r]) continue;
        const auto& blk = *reinterpret_cast<const BlockQ4_K*>(b[r]);
        out.d[r] = blk.d;
        out.dmin[r] = blk.dmin;
        for (int j = 0; j < 8; ++j) {
            uint8_t sc, m;
            k4_scale_min(j, blk.scales, &sc, &m);
            out.sc[j][r] = sc;
            out.m2[j / 2][r][j % 2] = m;
        }
    }
    interleave_words(b, offsetof(BlockQ4_K, qs), sizeof(out.qs) / kPackRows, out.qs);
}

template <>
void pack_block<BlockQ6_K, BlockQ6_Kx8>(const uint8_t* const* rows, int64_t i, BlockQ6_Kx8& out) {
    const uint8_t* b[kPackRows];
    for (int r = 0; r < kPackRows; ++r) {
        b[r] = rows[r] ? rows[r] + i * sizeof(BlockQ6_K) : nullptr;
        const auto* blk = reinterpret_cast<const BlockQ6_K*>(b[r]);
        out.d[r] = blk ? blk->d : 0;
        for (int j = 0; j < 16; ++j) out.sc[j][r] = blk ? blk->scales[j] : 0;
    }
    for (int h = 0; h < 2; ++h)
        for (int c = 0; c < 8; ++c) {
            interleave_words(b, offsetof(BlockQ6_K, ql) + 4 * (16 * h + c), 4, out.w[8 * h + c][0]);
            interleave_words(b, offsetof(BlockQ6_K, ql) + 4 * (16 * h + 8 + c), 4, out.w[8 * h + c][1]);
            interleave_words(b, offsetof(BlockQ6_K, qh) + 4 * (8 * h + c), 4, out.w[8 * h + c][2]);
        }
}

template <class Src, class Dst>
void repack_groups(const uint8_t* src, size_t row_stride, int64_t blocks, int64_t n_out, uint8_t* dst, int64_t g0,
                   int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
        const uint8_t* rows[kPackRows];
        for (int r = 0; r < kPackRows; ++r) {
            const int64_t row = g * kPackRows + r;
            rows[r] = row < n_out ? src + static_cast<size_t>(row) * row_stride : nullptr;
        }
        auto* out = reinterpret_cast<Dst*>(dst + static_cast<size_t>(g) * blocks * sizeof(Dst));
        for (int64_t i = 0; i < blocks; ++i) pack_block<Src, Dst>(rows, i, out[i]);
    }
}

}  // namespace

bool repack_enabled() {
    static const bool on = [] {
        const char* e = std::getenv("PYLLONG_REPACK");
        return !(e && std::string(e) == "0");
    }();
    return on;
}

bool has_packed_layout(GGMLType t) {
    return t == GGMLType::Q4_0 || t == GGMLType::Q4_1 || t == GGMLType::Q8_0 || t == GGMLType::Q4_K ||
           t == GGMLType::Q6_K;
}

size_t packed_group_bytes(GGMLType t, int64_t n_in) {
    const size_t rb = row_bytes(t, n_in);  // validates n_in
    if (!has_packed_layout(t)) throw InvalidArgument(std::string("no packed layout for ") + name_of(t));
    const size_t blocks = rb / block_bytes(t);
    switch (t) {
        case GGMLType::Q4_0: return blocks * sizeof(BlockQ4_0x8);
        case GGMLType::Q4_1: return blocks * sizeof(BlockQ4_1x8);
        case GGMLType::Q8_0: return blocks * sizeof(BlockQ8_0x8);
        case GGMLType::Q4_K: return blocks * sizeof(BlockQ4_Kx8);
        case GGMLType::Q6_K: return blocks * sizeof(BlockQ6_Kx8);
        default: return 0;
    }
}

size_t packed_bytes(GGMLType t, int64_t n_in, int64_t n_out) {
    return packed_group_bytes(t, n_in) * static_cast<size_t>((n_out + kPackRows - 1) / kPackRows);
}

void repack_rows(GGMLType t, const void* src, size_t row_stride, int64_t n_in, int64_t n_out, void* dst, int64_t g0,
                 int64_t g1) {
    const size_t rb = row_bytes(t, n_in);
    if (row_stride == 0) row_stride = rb;
    if (row_stride < rb) throw InvalidArgument("repack: row stride smaller than a row");
    const int64_t n_groups = (n_out + kPackRows - 1) / kPackRows;
    if (g1 < 0) g1 = n_groups;
    g0 = std::clamp<int64_t>(g0, 0, n_groups);
    g1 = std::clamp<int64_t>(g1, g0, n_groups);
    const auto* s = static_cast<const uint8_t*>(src);
    auto* d = static_cast<uint8_t*>(dst);
    const auto nb = static_cast<int64_t>(rb / block_bytes(t));
    switch (t) {
        case GGMLType::Q4_0: return repack_groups<BlockQ4_0, BlockQ4_0x8>(s, row_stride, nb, n_out, d, g0, g1);
        case GGMLType::Q4_1: return repack_groups<BlockQ4_1, BlockQ4_1x8>(s, row_stride, nb, n_out, d, g0, g1);
        case GGMLType::Q8_0: return repack_groups<BlockQ8_0, BlockQ8_0x8>(s, row_stride, nb, n_out, d, g0, g1);
        case GGMLType::Q4_K: return repack_groups<BlockQ4_K, BlockQ4_Kx8>(s, row_stride, nb, n_out, d, g0, g1);
        case GGMLType::Q6_K: return repack_groups<BlockQ6_K, BlockQ6_Kx8>(s, row_stride, nb, n_out, d, g0, g1);
        default: throw InvalidArgument(std::string("no packed layout for ") + name_of(t));
    }
}

}  // namespace pyllong::quant
