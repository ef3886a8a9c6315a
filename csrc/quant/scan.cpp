#include "quant/scan.h"

#include <cstring>

#include "gguf/types.h"

namespace pyllong {

namespace {
// fp16 with all exponent bits set is Inf or NaN.
inline bool fp16_nonfinite(const uint8_t* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return (h & 0x7c00u) == 0x7c00u;
}
}  // namespace

int64_t first_nonfinite_scale_block(uint32_t type, const uint8_t* data, int64_t n_blocks) {
    // Byte offsets of the fp16 scales inside one block (ggml's block structs); -1 = none.
    int d_off = -1, m_off = -1;
    switch (static_cast<GGMLType>(type)) {
        case GGMLType::Q4_0: case GGMLType::Q5_0: case GGMLType::Q8_0: d_off = 0; break;
        case GGMLType::Q4_1: case GGMLType::Q5_1: case GGMLType::Q4_K: case GGMLType::Q5_K: d_off = 0; m_off = 2; break;
        case GGMLType::Q2_K: d_off = 80; m_off = 82; break;
        case GGMLType::Q3_K: d_off = 108; break;
        case GGMLType::Q6_K: d_off = 208; break;
        default: return -1;
    }
    const TypeTraits* tt = type_traits(type);
    const size_t bs = tt->type_size;
    for (int64_t b = 0; b < n_blocks; ++b) {
        const uint8_t* blk = data + static_cast<size_t>(b) * bs;
        if (fp16_nonfinite(blk + d_off) || (m_off >= 0 && fp16_nonfinite(blk + m_off))) return b;
    }
    return -1;
}

int64_t first_nonfinite_f32(const uint8_t* data, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        uint32_t u;
        std::memcpy(&u, data + 4 * i, 4);
        if ((u & 0x7f800000u) == 0x7f800000u) return i;
    }
    return -1;
}

}  // namespace pyllong
