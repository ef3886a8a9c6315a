#include "quant/formats.h"

#include <cctype>

#include "core/error.h"

namespace pyllong::quant {

namespace {
constexpr GGMLType kImplemented[] = {
    GGMLType::F32,  GGMLType::F16,  GGMLType::BF16, GGMLType::Q4_0, GGMLType::Q4_1,
    GGMLType::Q5_0, GGMLType::Q5_1, GGMLType::Q8_0, GGMLType::Q2_K, GGMLType::Q3_K,
    GGMLType::Q4_K, GGMLType::Q5_K, GGMLType::Q6_K,
};

const TypeTraits& traits_or_throw(GGMLType t) {
    const TypeTraits* tt = is_implemented(t) ? type_traits(t) : nullptr;
    if (!tt) throw InvalidArgument(std::string("unsupported tensor type ") + type_name(static_cast<uint32_t>(t)));
    return *tt;
}
}  // namespace

bool is_implemented(GGMLType t) {
    for (GGMLType k : kImplemented)
        if (k == t) return true;
    return false;
}

GGMLType type_from_name(const std::string& name) {
    std::string upper;
    for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    for (GGMLType k : kImplemented)
        if (upper == type_traits(k)->name) return k;
    throw InvalidArgument("unknown quantization type '" + name + "'");
}

const char* name_of(GGMLType t) { return traits_or_throw(t).name; }
int64_t block_elems(GGMLType t) { return traits_or_throw(t).block_size; }
size_t block_bytes(GGMLType t) { return traits_or_throw(t).type_size; }

size_t row_bytes(GGMLType t, int64_t n) {
    const TypeTraits& tt = traits_or_throw(t);
    if (n < 0 || n % tt.block_size != 0)
        throw InvalidArgument("row of " + std::to_string(n) + " elements is not a whole number of " +
                              tt.name + " blocks (" + std::to_string(tt.block_size) + " each)");
    return static_cast<size_t>(n / tt.block_size) * tt.type_size;
}

}  // namespace pyllong::quant
