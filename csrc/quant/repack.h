// Row-interleaved ("repacked") weight layouts for the x86 GEMM/GEMV kernels. A matrix is
// cut into groups of kPackRows consecutive rows; a group is the row's blocks in order, each
// block holding the same block of all kPackRows rows, with the quant bytes interleaved in
// 4-byte words: word q of row r lies at qs[32 * q + 4 * r]. One 256-bit load then gives
// 4 consecutive quant bytes of each of 8 rows, so a SIMD lane is an output row: the
// integer dot product of a broadcast 4-byte activation word with it (vpdpbusd, or maddubs
// + madd) accumulates 8 rows at once, the block scales are applied to 8 rows with one
// multiply, and no horizontal sum remains. Rows past n_out in the last group are zero
// (scales 0: their results are 0 and never stored).
//
// The layouts are the same bytes as the ggml blocks (the K-quant scales unpacked to one
// byte each), so a repacked matrix costs about the memory of the original. Repacking is
// plain byte shuffling, portable; the kernels that read the layouts are per ISA
// (repack_x86_impl.h), listed in DotTable::packed.
#pragma once
#include <cstddef>
#include <cstdint>

#include "gguf/types.h"
#include "quant/blocks.h"

namespace pyllong::quant {

constexpr int kPackRows = 8;

// Q4_0 x 8 rows: nibbles as in BlockQ4_0 (element l < 16: low nibble of qs[l], 16 + l: high).
struct BlockQ4_0x8 { uint16_t d[kPackRows]; uint8_t qs[kPackRows * kQK32 / 2]; };
// Q4_1 x 8 rows: as Q4_0, with each row's min m beside its scale d (x = d q + m).
struct BlockQ4_1x8 { uint16_t d[kPackRows], m[kPackRows]; uint8_t qs[kPackRows * kQK32 / 2]; };
// Q8_0 x 8 rows.
struct BlockQ8_0x8 { uint16_t d[kPackRows]; int8_t qs[kPackRows * kQK32]; };
// Q4_K x 8 rows: sc[j][r] / m[j][r] are the 6-bit scale and min of sub-block j of row r;
// mins are stored as pairs m2[p][r][e] = m[2p + e][r] (two sub-blocks per 16-bit pair).
struct BlockQ4_Kx8 {
    uint16_t d[kPackRows], dmin[kPackRows];
    uint8_t sc[8][kPackRows];
    uint8_t m2[4][kPackRows][2];
    uint8_t qs[kPackRows * kQKK / 2];
};
// Q6_K x 8 rows: sc[j][r] the int8 scale of sub-block j (of 16) of row r; the quant words
// in the order the kernels read them: w[8h + c] = {ql word 16h + c, ql word 16h + 8 + c,
// qh word 8h + c} (h < 2, c < 8), each interleaved over the 8 rows like qs (a triple holds
// the levels of elements 128h + 32k + 4c .. + 4, k < 4). Reading ql and qh in file order
// jumped back and forth inside the block and the GEMV stalled on its loads.
struct BlockQ6_Kx8 {
    uint16_t d[kPackRows];
    int8_t sc[16][kPackRows];
    uint8_t w[16][3][4 * kPackRows];
};

static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0) && sizeof(BlockQ4_1x8) == 8 * sizeof(BlockQ4_1) &&
                  sizeof(BlockQ8_0x8) == 8 * sizeof(BlockQ8_0),
              "legacy packed blocks are the rows' bytes");
static_assert(sizeof(BlockQ4_Kx8) == 8 * sizeof(BlockQ4_K) + 32 && sizeof(BlockQ6_Kx8) == 8 * sizeof(BlockQ6_K),
              "K-quant packed blocks");

// Whether weights are repacked at load: yes unless the environment has PYLLONG_REPACK=0.
bool repack_enabled();
// Whether t has a repacked layout (the kernels for it are in DotTable::packed, per path).
bool has_packed_layout(GGMLType t);
// Bytes of one group of kPackRows rows of n_in elements (n_in a multiple of the block).
size_t packed_group_bytes(GGMLType t, int64_t n_in);
// Bytes of the whole repacked matrix: ceil(n_out / kPackRows) groups.
size_t packed_bytes(GGMLType t, int64_t n_in, int64_t n_out);
// src: n_out rows of row_bytes(t, n_in) bytes, row_stride apart -> dst (packed_bytes).
// Groups [g0, g1) only (callers may split the work); g1 = -1 means all.
void repack_rows(GGMLType t, const void* src, size_t row_stride, int64_t n_in, int64_t n_out, void* dst,
                 int64_t g0 = 0, int64_t g1 = -1);

}  // namespace pyllong::quant
